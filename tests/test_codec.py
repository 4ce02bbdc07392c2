"""sae.codec: the stream version it writes, pixel limits, bounded decoding."""

import pathlib

import numpy as np
import pytest
import tensorflow as tf

from sae.stream import bitstream
from sae import codec
from sae.errors import InputError

ROOT = pathlib.Path(__file__).resolve().parent.parent
# Made by the project's fuzzer with the shipped MSE weights (see
# tests/data/README.md): tfc's range decoder never returns on it.
HANG_V1 = ROOT / "tests" / "data" / "hang-v1-mse.sae"


def image(height=40, width=24, seed=0):
  return np.random.default_rng(seed).integers(0, 256, (height, width, 3),
                                              dtype=np.uint8)


def test_the_encoder_writes_version_2(tiny_model):
  assert bitstream.unpack(codec.encode(tiny_model, image(), 2)).version == 2


def test_decode_equals_the_models_reconstruction(tiny_model):
  x = image(33, 17, seed=4)
  want = tiny_model.reconstructions(tf.cast(x, tf.float32)[None])
  for k in range(1, tiny_model.num_layers + 1):
    got = codec.decode(tiny_model, codec.encode(tiny_model, x, k))
    np.testing.assert_array_equal(
        got, tf.saturate_cast(tf.round(want[k - 1][0]), tf.uint8))


def test_a_pixel_limit_refuses_larger_streams(tiny_model):
  data = codec.encode(tiny_model, image(40, 24), 1)
  assert codec.decode(tiny_model, data, max_pixels=40 * 24).shape == (40, 24, 3)
  with pytest.raises(InputError, match="more than the limit of 959"):
    codec.decode(tiny_model, data, max_pixels=40 * 24 - 1)


@pytest.mark.skipif(not HANG_V1.is_file(), reason=f"needs {HANG_V1}")
def test_its_payload_as_version_2_never_reaches_tfcs_decoder(monkeypatch):
  """Version 2 is decoded by sae.entropy.rangecode, bounded by the symbol
  count (tests/test_rangecode.py): tfc's decoder, which never returns on
  this payload, is not entered."""
  from sae import checkpoints
  from sae.stream import legacy

  def entered(*args):
    raise AssertionError("a version-2 stream reached the legacy decoder")

  monkeypatch.setattr(legacy, "_with_deadline", entered)
  old = bitstream.unpack(HANG_V1.read_bytes())
  relabelled = bitstream.pack(old.height, old.width, old.payloads,
                              old.weights_ids, version=2)
  model = checkpoints.load_model(ROOT / "weights" / "mse", old.num_layers)
  try:
    decoded = codec.decode(model, relabelled)
  except InputError as e:
    assert "does not decode" in str(e)
  else:
    assert decoded.shape == (old.height, old.width, 3)
