"""The Kodak test set: found in a folder, or downloaded there on first use."""

import pathlib
import urllib.error
import urllib.request

import tqdm

from sae.images import list_images
from sae.errors import InputError
from sae.fileio import atomic_write

NUM_IMAGES = 24
# Where the test scripts, sae.eval.bench and the benchmarks look by default
# (relative to the working directory: the repository's kodak/), and where
# the images come from when it holds none.
DEFAULT_FOLDER = "kodak"
URL = "https://r0k.us/graphics/kodak/kodak/kodim{:02d}.png"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def ensure_images(folder, url_pattern: str = URL, progress: bool = True,
                  complete=None) -> list:
  """Images directly in ``folder``; downloads the 24 Kodak PNGs when it has
  none.  The test scripts and ``sae.eval.bench`` both read their images here.

  With ``complete`` (default: when ``folder`` is DEFAULT_FOLDER) a download
  that was cut short is finished: missing kodimNN.png files are fetched.
  """
  folder = pathlib.Path(folder)
  if complete is None:
    complete = folder.resolve() == pathlib.Path(DEFAULT_FOLDER).resolve()
  folder.mkdir(parents=True, exist_ok=True)
  # Only the folder itself: reconstructions written below it are not inputs.
  images = list_images(folder, recursive=False)
  names = {pathlib.Path(p).name for p in images}
  kodak = {f"kodim{i:02d}.png" for i in range(1, NUM_IMAGES + 1)}
  if images and (not complete or not names <= kodak):
    return images  # a folder of the user's own test images
  missing = sorted(kodak - names)  # resumes a download that was cut short
  for name in tqdm.tqdm(missing, desc="download Kodak", disable=not progress):
    i = int(name[5:7])
    url = url_pattern.format(i)
    try:
      with urllib.request.urlopen(url, timeout=30) as response:
        payload = response.read()
    except (urllib.error.URLError, OSError) as e:
      raise InputError(
          f"cannot download {url} ({getattr(e, 'reason', e)}): put the 24 "
          f"kodimNN.png files in {folder}/ or pass --kodak DIR") from None
    if not payload.startswith(PNG_SIGNATURE):  # e.g. a proxy's error page
      raise InputError(f"{url} did not return a PNG image: put the 24 "
                       f"kodimNN.png files in {folder}/ or pass --kodak DIR")
    atomic_write(folder / name, payload)
  return list_images(folder, recursive=False)
