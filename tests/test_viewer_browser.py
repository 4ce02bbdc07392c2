"""The viewer page in a real headless Chromium (Selenium), served by the real
``python -m sae serve`` with the tiny weights.

Needs Debian's chromium and chromium-driver (.ci/run installs them) and
Selenium (requirements.txt); skipped, naming what is missing, without them.
"""

import pathlib
import shutil
import tempfile

import numpy as np
import pytest

from sae.stream import bitstream
from sae import codec
from test_serve import Served
from tiny import random_image

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


def chromium_options(profile):
  """Headless Chromium that never reaches the network on its own."""
  from selenium.webdriver.chrome.options import Options
  options = Options()
  options.binary_location = CHROMIUM
  for flag in ("--headless", "--no-sandbox", "--disable-gpu",
               "--disable-dev-shm-usage", "--disable-background-networking",
               "--disable-component-update", "--disable-sync",
               "--no-first-run", "--disable-extensions",
               "--window-size=1100,1000", f"--user-data-dir={profile}"):
    options.add_argument(flag)
  return options


@pytest.fixture(scope="module")
def browser():
  missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not pathlib.Path(p).exists()]
  if missing:
    pytest.skip(f"{' and '.join(missing)} missing (apt-get install chromium "
                "chromium-driver)")
  try:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
  except ImportError:
    pytest.skip("selenium missing (pip install -r requirements.txt)")
  profile = tempfile.mkdtemp(prefix="sae-chromium-")
  driver = webdriver.Chrome(service=Service(CHROMEDRIVER),
                            options=chromium_options(profile))
  driver.set_page_load_timeout(120)
  yield driver
  driver.quit()
  shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture(scope="module")
def served(tiny_model, tiny_weights, tmp_path_factory):
  folder = tmp_path_factory.mktemp("viewer")
  data = codec.encode(tiny_model, random_image(48, 80, seed=7), 4)
  (folder / "photo.sae").write_bytes(data)
  (folder / "other.sae").write_bytes(bitstream.truncate(data, 2))
  server = Served(folder, "--weights", tiny_weights)
  yield server, data
  server.stop()


def wait_for_page(driver, seconds=240):
  from selenium.webdriver.support.ui import WebDriverWait
  WebDriverWait(driver, seconds, poll_frequency=0.2).until(
      lambda d: d.find_element("tag name", "body").get_attribute("data-state")
      in ("done", "error"))
  state = driver.find_element("tag name", "body").get_attribute("data-state")
  assert state == "done", driver.find_element("id", "error").text


def test_the_page_shows_every_layer_as_it_arrives(browser, served, tiny_model):
  server, data = served
  browser.get(f"http://{server.host}:{server.port}/?file=photo.sae")
  wait_for_page(browser)
  rows = browser.find_elements("css selector", "#layers tbody tr")
  assert len(rows) == 4
  pixels = 48 * 80
  for k, row in enumerate(rows, 1):
    size = len(bitstream.truncate(data, k))
    assert row.get_attribute("data-layer") == str(k)
    # bytes received, counted by the page from the bodies it read
    assert row.get_attribute("data-bytes") == str(size)
    cells = [c.text for c in row.find_elements("tag name", "td")]
    assert cells[1] == str(bitstream.layer_bytes(data)[k - 1])
    assert cells[2] == str(size)
    # Four decimals; JavaScript's toFixed rounds an exact half up where
    # Python rounds it to even (0.78125 -> 0.7813 against 0.7812).
    assert len(cells[3].split(".")[1]) == 4
    assert abs(float(cells[3]) - 8 * size / pixels) <= 0.5e-4 + 1e-12
    assert cells[4] == "decoded"
  images = browser.execute_script(
      "return [...document.querySelectorAll('#layer-images img.layer')]"
      ".map(i => [Number(i.dataset.layer), i.complete, i.naturalWidth,"
      " i.naturalHeight])")
  assert sorted(images) == [[k, True, 80, 48] for k in range(1, 5)]
  # The picture shown is the top layer, pixel for pixel.
  shown = browser.execute_script(
      "const c = document.getElementById('view-a');"
      "return [c.width, c.height, Array.from(c.getContext('2d')"
      ".getImageData(0, 0, c.width, c.height).data)]")
  assert shown[:2] == [80, 48]
  rgba = np.array(shown[2], np.uint8).reshape(48, 80, 4)
  np.testing.assert_array_equal(rgba[..., :3], codec.decode(tiny_model, data))
  assert "4 layers" in browser.find_element("id", "status").text


def test_layers_can_be_compared(browser, served):
  server, data = served
  browser.get(f"http://{server.host}:{server.port}/?file=photo.sae")
  wait_for_page(browser)
  # Back to the base layer with the slider's value, then split against 4.
  browser.execute_script(
      "const s = document.getElementById('layer'); s.value = 1;"
      "s.dispatchEvent(new Event('input'));")
  assert browser.find_element("id", "layer-out").text == "1 of 4"
  base_row = browser.find_element("css selector", "#layers tbody tr.shown")
  assert base_row.get_attribute("data-layer") == "1"
  browser.find_element("id", "compare").click()
  assert browser.find_element("id", "view-b").is_displayed()
  tag_b = browser.find_element("id", "tag-b").text
  info = server.json("/info/photo.sae")
  assert tag_b == f"4 layers, {info['bpp'][3]:.3f} bpp"
  # Another stream from the list.
  from selenium.webdriver.support.ui import Select
  Select(browser.find_element("id", "file")).select_by_value("other.sae")
  wait_for_page(browser)
  assert len(browser.find_elements("css selector", "#layers tbody tr")) == 2
