import warnings

import numpy as np
import pytest

from sae.train import data
from sae.errors import InputError
from tests.tiny import write_corpus


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


def test_residual_dataset_crops_image_and_lower_together(tmp_path):
  write_corpus(tmp_path, [(70, 90), (64, 80)])
  ds = data.residual_training_dataset(tmp_path, 64, 3, lambda img: img * 0.5,
                                      seed=0)
  batch = next(iter(ds)).numpy()
  assert batch.shape == (3, 64, 64, 6)
  np.testing.assert_array_equal(batch[..., 3:], batch[..., :3] * 0.5)
  assert data.residual_dataset_bytes(tmp_path, 64) == (70 * 90 + 64 * 80) * 24
