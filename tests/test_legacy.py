"""sae.stream.legacy: version-1 streams, turned into version 2 under a
deadline, decode to the images they always did."""

import subprocess
import sys
import time

import numpy as np
import pytest

from sae import codec, progressive
from sae.errors import InputError
from sae.stream import bitstream, legacy
# The hostile stream and the image maker, as sae.codec's tests have them.
from tests.test_codec import HANG_V1, ROOT, image
from tests.tiny import random_image


def test_version_1_streams_still_decode_to_the_same_image(tiny_model):
  x = image(37, 53)
  for k in (1, tiny_model.num_layers):
    old = legacy.encode(tiny_model, x, k)
    assert bitstream.unpack(old).version == 1
    np.testing.assert_array_equal(codec.decode(tiny_model, old),
                                  codec.decode(tiny_model, codec.encode(tiny_model, x, k)))


def test_legacy_deadline_grows_with_the_declared_size():
  small = legacy.legacy_deadline(16, 16, 1)
  assert small < legacy.legacy_deadline(4096, 4096, 1) < legacy.legacy_deadline(
      4096, 4096, 4)
  assert small < 10  # the fuzzer's cases are answered in seconds


def test_a_hung_legacy_decode_is_refused_at_its_deadline(monkeypatch):
  """The deadline machinery itself, on a function that never returns."""
  monkeypatch.setattr(legacy, "LEGACY_SECONDS", (0.3, 0.0))

  def spin():  # busy, and long past the deadline
    end = time.monotonic() + 5
    while time.monotonic() < end:
      pass

  t0 = time.monotonic()
  with pytest.raises(legacy.DecodeTimeout, match="within 0.3 s"):
    legacy._with_deadline(spin, (), legacy.legacy_deadline(1, 1, 1))
  assert time.monotonic() - t0 < 4


@pytest.mark.full  # a cold command and its deadline: half a minute
@pytest.mark.skipif(not HANG_V1.is_file(), reason=f"needs {HANG_V1}")
def test_the_stream_that_hung_the_decoder_is_refused_in_seconds(tmp_path):
  out = tmp_path / "out.png"
  t0 = time.monotonic()
  run = subprocess.run(
      [sys.executable, "-m", "sae", "decompress", str(HANG_V1), str(out),
       "--weights", str(ROOT / "weights" / "mse")],
      cwd=ROOT, capture_output=True, text=True, timeout=600)
  assert run.returncode == 2, run.stderr
  assert run.stderr.count("\n") == 1
  assert run.stderr.startswith("error: stream did not decode within")
  assert not out.exists() and list(tmp_path.iterdir()) == []
  assert time.monotonic() - t0 < 300  # cold start included


def test_a_version_1_stream_becomes_the_version_2_stream_of_its_latents(
    tiny_model):
  x = image(21, 35, seed=3)
  old = bitstream.unpack(legacy.encode(tiny_model, x, 3))
  new = bitstream.unpack(codec.encode(tiny_model, x, 3))
  # (the payloads differ only where a latent leaves its table: tfc's
  # escape against rangecode's, tests/test_rangecode.py)
  assert old.version == 1
  assert legacy.upgrade(tiny_model, old) == new
  assert legacy.upgrade(tiny_model, new) is new


def test_legacy_streams_decode_layer_by_layer(tiny_model):
  x = random_image(19, 27, seed=2)
  old = legacy.encode(tiny_model, x, 3)
  steps = list(progressive.decode_progressively(tiny_model, [old[:30], old[30:]]))
  assert [s.layers for s in steps] == [1, 2, 3]
  for s in steps:
    np.testing.assert_array_equal(s.image, codec.decode(tiny_model, old, s.layers))


def test_a_model_version_1_cannot_hold_is_refused():
  from tests.test_nested import nested_model
  model = nested_model()
  with pytest.raises(InputError, match="version 1 cannot hold"):
    legacy.encode(model, image(32, 32), 2)
  stream = bitstream.unpack(codec.encode(model, image(32, 32), 2))
  with pytest.raises(InputError, match="version 1 cannot hold"):
    legacy.upgrade(model, stream._replace(version=1))
