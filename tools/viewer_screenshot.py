"""figs/viewer.png: the viewer page in headless Chromium, on a Kodak image
coded by the shipped weights.

    python tools/viewer_screenshot.py --image kodak/kodim23.png

Codes the image with every layer of ``--weights`` into a temporary folder,
serves it with ``python -m sae serve`` on a free loopback port, waits until
the page shows every layer, splits the view (base layer left, all layers
right) and saves the screenshot, quantized to 256 colours to stay small.
"""

import argparse
import io
import pathlib
import shutil
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from test_serve import Served  # noqa: E402
from test_viewer_browser import chromium_options, wait_for_page  # noqa: E402


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--image", default=str(ROOT.parent / "shared" / "data" /
                                        "kodak" / "kodim23.png"))
  p.add_argument("--weights", default=str(ROOT / "weights" / "mse"))
  p.add_argument("--out", default=str(ROOT / "figs" / "viewer.png"))
  p.add_argument("--width", type=int, default=820)
  args = p.parse_args(argv)
  from PIL import Image
  from selenium import webdriver
  from selenium.webdriver.chrome.service import Service

  folder = pathlib.Path(tempfile.mkdtemp(prefix="sae-viewer-"))
  profile = tempfile.mkdtemp(prefix="sae-chromium-")
  name = pathlib.Path(args.image).stem + ".sae"
  server = driver = None
  try:
    subprocess.run([sys.executable, "-m", "sae", "compress", args.image,
                    str(folder / name), "--weights", args.weights],
                   cwd=ROOT, check=True)
    server = Served(folder, "--weights", args.weights)
    options = chromium_options(profile)
    options.add_argument(f"--window-size={args.width},1000")
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"),
                              options=options)
    driver.get(f"http://{server.host}:{server.port}/?file={name}")
    wait_for_page(driver, 600)
    driver.execute_script(
        "const s = document.getElementById('layer'); s.value = 1;"
        "s.dispatchEvent(new Event('input'));"
        "document.getElementById('compare').click();")
    height = driver.execute_script(
        "return document.documentElement.scrollHeight")
    driver.set_window_size(args.width, height + 100)
    shot = Image.open(io.BytesIO(driver.get_screenshot_as_png())).convert("RGB")
    shot = shot.crop((0, 0, shot.width, min(shot.height, height + 8)))
    shot.quantize(256, method=Image.Quantize.MEDIANCUT).save(
        args.out, optimize=True)
    print(f"wrote {args.out}: {shot.width}x{shot.height}, "
          f"{pathlib.Path(args.out).stat().st_size} bytes")
  finally:
    if driver is not None:
      driver.quit()
    if server is not None:
      server.stop()
    shutil.rmtree(folder, ignore_errors=True)
    shutil.rmtree(profile, ignore_errors=True)


if __name__ == "__main__":
  main()
