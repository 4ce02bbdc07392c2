"""The training input pipeline (tf.data); image files: sae.images."""

import warnings
from typing import Sequence

import numpy as np
from PIL import Image
import tensorflow as tf

from sae.errors import InputError
# Re-exported: callers that build datasets also list and read images.
from sae.images import IMAGE_SUFFIXES, list_images, load_image, save_png  # noqa: F401


def _usable_images(paths: Sequence[str], patch_size: int) -> list:
  usable, small = [], []
  for p in paths:
    try:
      with Image.open(p) as img:
        w, h = img.size
        img.load()  # a damaged file must fail here, not in the trainer
    except (OSError, ValueError, Image.DecompressionBombError):
      small.append(f"{p} (unreadable)")
      continue
    (usable if min(w, h) >= patch_size else small).append(p)
  if small:
    warnings.warn(f"skipping {len(small)} unreadable image(s) or image(s) "
                  f"smaller than the {patch_size}x{patch_size} crop: "
                  + ", ".join(small),
                  stacklevel=2)
  return usable


def check_corpus(folder, patch_size: int) -> None:
  """Raises InputError unless ``folder`` holds training images of at least
  ``patch_size`` on a side (before a run creates anything)."""
  _checked_paths(folder, patch_size)


def _checked_paths(folder, patch_size: int) -> list:
  paths = list_images(folder)
  if not paths:
    raise InputError(f"no PNG/JPEG images in {str(folder)!r}")
  paths = _usable_images(paths, patch_size)
  if not paths:
    raise InputError(f"no image in {str(folder)!r} is at least "
                     f"{patch_size}x{patch_size}")
  return paths


def _random_crops(images: tf.data.Dataset, count: int, patch_size: int,
                  batch_size: int, channels: int, seed) -> tf.data.Dataset:
  def crop(img):
    return tf.cast(tf.image.random_crop(img, (patch_size, patch_size, channels),
                                        seed=seed), tf.float32)

  ds = images.shuffle(count, seed=seed, reshuffle_each_iteration=True)
  ds = ds.repeat().map(crop, num_parallel_calls=tf.data.AUTOTUNE)
  return ds.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)


def training_dataset(folder, patch_size: int, batch_size: int,
                     seed=None, cache: bool = True) -> tf.data.Dataset:
  """Random crops from every image under ``folder``, endlessly.

  Images are decoded once, in parallel, and kept in memory (the training set
  is small next to RAM); each step only crops, so the trainer never waits
  for PNG decoding.  ``cache=False`` decodes every time (for benchmarks, or
  corpora larger than memory).

  Raises:
    InputError: the folder is missing or has no image at least patch_size.
  """
  paths = _checked_paths(folder, patch_size)

  def decode(path):
    img = tf.io.decode_image(tf.io.read_file(path), channels=3,
                             expand_animations=False)
    return tf.image.convert_image_dtype(img, tf.uint8, saturate=True)

  ds = tf.data.Dataset.from_tensor_slices(paths)
  ds = ds.map(decode, num_parallel_calls=tf.data.AUTOTUNE)
  if cache:
    ds = ds.cache()
  return _random_crops(ds, len(paths), patch_size, batch_size, 3, seed)


def validation_batches(folder, patch_size: int, batch_size: int,
                       count: int = 16) -> list:
  """Fixed centre crops of ``count`` images spread over the corpus."""
  paths = _checked_paths(folder, patch_size)
  chosen = paths[::max(1, len(paths) // count)][:count]
  crops = []
  for p in chosen:
    img = load_image(p)
    top = (img.shape[0] - patch_size) // 2
    left = (img.shape[1] - patch_size) // 2
    crops.append(img[top:top + patch_size, left:left + patch_size])
  crops = np.stack(crops).astype(np.float32)
  return [tf.constant(crops[i:i + batch_size])
          for i in range(0, len(crops), batch_size)]


def residual_dataset_bytes(folder, patch_size: int) -> int:
  """Memory that ``residual_training_dataset`` needs for ``folder``.

  Reads image headers only (the dataset itself decodes every image once and
  skips damaged ones), so it costs milliseconds, not a second corpus scan.
  """
  total = 0
  for p in list_images(folder):
    try:
      with Image.open(p) as img:
        w, h = img.size
    except (OSError, ValueError, Image.DecompressionBombError):
      continue
    if min(w, h) >= patch_size:
      total += w * h * 6 * 4
  return total


def residual_training_dataset(folder, patch_size: int, batch_size: int,
                              lower_fn, seed=None,
                              progress: bool = False) -> tf.data.Dataset:
  """Random crops of [image, reconstruction of the layers below] (6 channels).

  The frozen lower layers code every *whole* training image once, up front,
  so an enhancement layer trains on crops of exactly the residuals it will
  code at test time, and each step runs only the layer being trained.

  Args:
    lower_fn: float (H, W, 3) image -> float (H, W, 3) lower reconstruction.
  """
  import tqdm
  paths = _checked_paths(folder, patch_size)
  pairs = []
  for p in tqdm.tqdm(paths, desc="code training images with lower layers",
                     disable=not progress):
    img = load_image(p).astype(np.float32)
    pairs.append(np.concatenate([img, np.asarray(lower_fn(img))], axis=-1))
  ds = tf.data.Dataset.from_generator(
      lambda: iter(pairs),
      output_signature=tf.TensorSpec((None, None, 6), tf.float32))
  return _random_crops(ds, len(pairs), patch_size, batch_size, 6, seed)


def num_training_images(folder, patch_size: int) -> int:
  return len(_usable_images(list_images(folder), patch_size))

