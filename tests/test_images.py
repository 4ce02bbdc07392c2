"""sae.images: image files in and out, upright, without TensorFlow."""

import subprocess
import sys

import numpy as np
from PIL import Image
import pytest

from sae import images
from sae.errors import InputError
from tests.tiny import random_image


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
      out = images.load_image(path)
  else:
    out = images.load_image(path)
  assert out.shape == (9, 13, 3) and out.dtype == np.uint8
  if mode in ("RGB", "RGBA"):
    np.testing.assert_array_equal(out, rgb)
  if mode == "I;16":
    np.testing.assert_array_equal(out[..., 0], rgb[..., 0])


def test_load_image_refuses_non_images(tmp_path):
  (tmp_path / "a.png").write_bytes(b"not an image")
  with pytest.raises(InputError, match="cannot read"):
    images.load_image(tmp_path / "a.png")
  with pytest.raises(InputError, match="does not exist"):
    images.load_image(tmp_path / "b.png")


def test_save_png_is_atomic_and_checks_folder(tmp_path):
  img = random_image(5, 7)
  images.save_png(img, tmp_path / "o.png")
  np.testing.assert_array_equal(images.load_image(tmp_path / "o.png"), img)
  with pytest.raises(InputError, match="output directory"):
    images.save_png(img, tmp_path / "missing" / "o.png")
  assert sorted(p.name for p in tmp_path.iterdir()) == ["o.png"]


def test_exif_orientation_is_applied(tmp_path):
  # A phone photo held sideways: the sensor's pixels are landscape (W > H)
  # and the EXIF orientation 6 says "rotate 90 degrees clockwise to view".
  sensor = np.zeros((20, 40, 3), np.uint8)
  sensor[:, :20] = (255, 0, 0)  # left half red, right half blue
  sensor[:, 20:] = (0, 0, 255)
  exif = Image.Exif()
  exif[0x0112] = 6  # Orientation
  path = tmp_path / "phone.jpg"
  Image.fromarray(sensor).save(path, exif=exif, quality=95)
  upright = images.load_image(path)
  assert upright.shape == (40, 20, 3)  # portrait, as a viewer shows it
  # Rotated clockwise, the sensor's left (red) is at the top.
  assert upright[5, 10, 0] > 200 and upright[5, 10, 2] < 60
  assert upright[35, 10, 2] > 200 and upright[35, 10, 0] < 60


def test_reading_images_needs_no_tensorflow():
  code = ("import sys, sae.images, sae.eval.kodak, sae.eval.report, sae.eval.curves; "
          "sys.exit('tensorflow' in sys.modules)")
  assert subprocess.run([sys.executable, "-c", code]).returncode == 0
