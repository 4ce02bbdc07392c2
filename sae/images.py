"""Image files in and out, without TensorFlow: 8-bit RGB arrays.

Reports, plots, benchmarks and the Kodak helper read PNGs through this
module and so start in a fraction of a second; sae.train.data keeps the tf.data
training pipeline.
"""

import io
import pathlib
import warnings

import numpy as np
from PIL import Image, ImageOps

from sae.errors import InputError
from sae.fileio import atomic_write

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def list_images(folder, suffixes=IMAGE_SUFFIXES, recursive=True) -> list:
  """Sorted image files under ``folder`` (or only directly in it)."""
  root = pathlib.Path(folder)
  if not root.is_dir():
    raise InputError(f"image folder {str(folder)!r} does not exist")
  return sorted(str(p) for p in (root.rglob("*") if recursive else root.iterdir())
                if p.is_file() and p.suffix.lower() in suffixes)


def load_image(path) -> np.ndarray:
  """Reads any image Pillow reads as uint8 HxWx3 RGB, upright.

  The EXIF orientation of a photo (a phone held sideways) is applied, as
  photo viewers do, so the pixels are coded the way the photo is seen.
  Grayscale, palette and 16-bit images are converted; alpha is dropped with
  a warning.
  """
  try:
    with Image.open(path) as img:
      img.load()
      rgb = to_rgb(ImageOps.exif_transpose(img), path, stacklevel=3)
  except FileNotFoundError:
    raise InputError(f"input {str(path)!r} does not exist") from None
  except (OSError, ValueError, Image.DecompressionBombError) as e:
    raise InputError(f"cannot read image {str(path)!r}: {e}") from None
  return rgb


def to_rgb(img: Image.Image, source="image", stacklevel=2) -> np.ndarray:
  """A Pillow image's pixels as they are, as uint8 HxWx3 RGB.

  Grayscale, palette and 16-bit images are converted (16-bit ones scaled,
  not clipped); alpha is dropped with a warning that names ``source``.
  """
  if img.mode in ("I;16", "I;16B", "I;16L", "I"):
    arr = np.asarray(img, np.float64)
    scale = 65535.0 if arr.max() > 255 else 255.0
    img = Image.fromarray(np.round(arr / scale * 255).astype(np.uint8))
  if "A" in img.getbands() or img.info.get("transparency") is not None:
    warnings.warn(f"{source}: alpha channel dropped", stacklevel=stacklevel)
  return np.asarray(img.convert("RGB"), np.uint8)


def save_png(array: np.ndarray, path) -> None:
  """Writes uint8 HxWx3 as PNG, atomically (temporary file, then rename)."""
  buf = io.BytesIO()
  Image.fromarray(np.asarray(array, np.uint8)).save(buf, format="PNG")
  atomic_write(path, buf.getvalue())
