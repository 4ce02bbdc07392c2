"""The Kodak test set: found in a folder, or downloaded there on first use."""

import pathlib
import urllib.error
import urllib.request

import tqdm

from sae.errors import InputError
from sae.fileio import atomic_write

NUM_IMAGES = 24


def ensure_images(folder, url_pattern: str, progress: bool = True,
                  complete: bool = False) -> list:
  """Images in ``folder``; downloads the 24 Kodak PNGs when it has none.

  With ``complete`` (the default Kodak folder) a download that was cut short
  is finished: missing kodimNN.png files are fetched.
  """
  folder = pathlib.Path(folder)
  folder.mkdir(parents=True, exist_ok=True)
  # Only the folder itself: reconstructions written below it are not inputs.
  images = sorted(str(p) for p in folder.glob("*.png"))
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
    atomic_write(folder / name, payload)
  return sorted(str(p) for p in folder.glob("*.png"))
