import warnings

import numpy as np
from PIL import Image
import pytest

from sae import data
from sae.errors import InputError
from tests.tiny import random_image, write_corpus


def test_training_dataset_crops_and_batches(tmp_path):
  write_corpus(tmp_path, [(70, 90), (64, 64), (100, 65)])
  ds = data.training_dataset(tmp_path, 64, 2, seed=0)
  batch = next(iter(ds))
  assert batch.shape == (2, 64, 64, 3) and batch.dtype.name == "float32"
  assert 0 <= float(np.min(batch)) and float(np.max(batch)) <= 255


def test_small_images_are_skipped_by_name(tmp_path):
  write_corpus(tmp_path, [(70, 90), (30, 200)])
  with pytest.warns(UserWarning, match="img1.png"):
    assert data.num_training_images(tmp_path, 64) == 1


def test_empty_or_missing_folder_is_an_error(tmp_path):
  with pytest.raises(InputError, match="no PNG/JPEG"):
    data.training_dataset(tmp_path, 64, 2)
  with pytest.raises(InputError, match="does not exist"):
    data.training_dataset(tmp_path / "nope", 64, 2)
  write_corpus(tmp_path, [(20, 20)])
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    with pytest.raises(InputError, match="at least"):
      data.training_dataset(tmp_path, 64, 2)


@pytest.mark.parametrize("mode", ["L", "P", "RGBA", "I;16", "RGB"])
def test_load_image_converts_to_rgb8(tmp_path, mode):
  rgb = random_image(9, 13)
  img = Image.fromarray(rgb)
  if mode == "I;16":
    img = Image.fromarray((rgb[..., 0].astype(np.uint16) * 257))
  elif mode != "RGB":
    img = img.convert(mode)
  path = tmp_path / "x.png"
  img.save(path)
  if mode == "RGBA":
    with pytest.warns(UserWarning, match="alpha"):
      out = data.load_image(path)
  else:
    out = data.load_image(path)
  assert out.shape == (9, 13, 3) and out.dtype == np.uint8
  if mode in ("RGB", "RGBA"):
    np.testing.assert_array_equal(out, rgb)
  if mode == "I;16":
    np.testing.assert_array_equal(out[..., 0], rgb[..., 0])


def test_load_image_refuses_non_images(tmp_path):
  (tmp_path / "a.png").write_bytes(b"not an image")
  with pytest.raises(InputError, match="cannot read"):
    data.load_image(tmp_path / "a.png")
  with pytest.raises(InputError, match="does not exist"):
    data.load_image(tmp_path / "b.png")


def test_save_png_is_atomic_and_checks_folder(tmp_path):
  img = random_image(5, 7)
  data.save_png(img, tmp_path / "o.png")
  np.testing.assert_array_equal(data.load_image(tmp_path / "o.png"), img)
  with pytest.raises(InputError, match="output directory"):
    data.save_png(img, tmp_path / "missing" / "o.png")
  assert sorted(p.name for p in tmp_path.iterdir()) == ["o.png"]


def test_residual_dataset_crops_image_and_lower_together(tmp_path):
  write_corpus(tmp_path, [(70, 90), (64, 80)])
  ds = data.residual_training_dataset(tmp_path, 64, 3, lambda img: img * 0.5,
                                      seed=0)
  batch = next(iter(ds)).numpy()
  assert batch.shape == (3, 64, 64, 6)
  np.testing.assert_array_equal(batch[..., 3:], batch[..., :3] * 0.5)
  assert data.residual_dataset_bytes(tmp_path, 64) == (70 * 90 + 64 * 80) * 24
