"""The Kodak test set: found in a folder, or downloaded there on first use."""

import pathlib
import urllib.error
import urllib.request

import tqdm

from sae.data import list_images
from sae.errors import InputError
from sae.fileio import atomic_write

NUM_IMAGES = 24


def ensure_images(folder, url_pattern: str, progress: bool = True) -> list:
  """Images in ``folder``; downloads the 24 Kodak PNGs when it has none."""
  folder = pathlib.Path(folder)
  folder.mkdir(parents=True, exist_ok=True)
  images = list_images(folder, suffixes=(".png",))
  if images:
    return images
  for i in tqdm.trange(1, NUM_IMAGES + 1, desc="download Kodak",
                       disable=not progress):
    url = url_pattern.format(i)
    try:
      with urllib.request.urlopen(url, timeout=30) as response:
        payload = response.read()
    except (urllib.error.URLError, OSError) as e:
      raise InputError(
          f"cannot download {url} ({getattr(e, 'reason', e)}): put the 24 "
          f"kodimNN.png files in {folder}/ or pass --kodak DIR") from None
    atomic_write(folder / f"kodim{i:02d}.png", payload)
  return list_images(folder, suffixes=(".png",))
