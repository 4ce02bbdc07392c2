"""The facade in sae/__init__.py: load, encode, decode, truncate, info and
decode_progressively, on the tiny weights.

Each call must give what the modules under it give (sae.codec,
sae.stream.bitstream, sae.progressive), refuse bad input with one line, and
``import sae`` and ``sae.truncate`` must not import TensorFlow.
"""

import pathlib
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import sae
from sae.stream import bitstream
from sae import checkpoints, codec
from sae.errors import InputError
from tiny import random_image

ROOT = pathlib.Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def image():
  return random_image(19, 27, seed=7)


@pytest.fixture(scope="module")
def stream(tiny_weights, image):
  """Every layer of ``image``, coded through the facade."""
  return sae.encode(image, weights=tiny_weights)


def refused(match, call, *args, **kwargs):
  """Asserts that the call raises InputError with a one-line message
  containing ``match``."""
  with pytest.raises(InputError, match=match) as caught:
    call(*args, **kwargs)
  assert "\n" not in str(caught.value)


def test_load_is_cached_per_folder(tiny_weights, tiny_model):
  # The CLI's cache (the tiny_model fixture): one model per folder.
  assert sae.load(tiny_weights) is tiny_model
  assert sae.load(str(tiny_weights)) is tiny_model


def test_load_defaults_to_the_shipped_folder(tiny_weights, tiny_model,
                                             monkeypatch, tmp_path):
  monkeypatch.setattr(checkpoints, "DEFAULT_WEIGHTS", tiny_weights)
  assert sae.load() is tiny_model
  monkeypatch.setattr(checkpoints, "DEFAULT_WEIGHTS", tmp_path / "gone")
  refused("weights folder .*gone' does not exist", sae.load)


def test_round_trip_is_sae_codec(tiny_model, tiny_weights, image, stream):
  assert stream == codec.encode(tiny_model, image, tiny_model.num_layers)
  decoded = sae.decode(stream, weights=tiny_weights)
  assert decoded.dtype == np.uint8 and decoded.shape == image.shape
  np.testing.assert_array_equal(decoded, codec.decode(tiny_model, stream))


def test_truncate_then_decode_is_decoding_k_layers(tiny_model, tiny_weights,
                                                   image, stream):
  for k in range(1, tiny_model.num_layers + 1):
    cut = sae.truncate(stream, k)
    assert cut == sae.encode(image, layers=k, weights=tiny_weights)
    assert bitstream.unpack(cut).num_layers == k
    np.testing.assert_array_equal(
        sae.decode(cut, weights=tiny_weights),
        sae.decode(stream, layers=k, weights=tiny_weights))
    np.testing.assert_array_equal(sae.decode(cut, weights=tiny_weights),
                                  codec.decode(tiny_model, stream, k))


def test_images_and_streams_in_every_form(tiny_weights, image, stream,
                                          tmp_path):
  png = tmp_path / "in.png"
  Image.fromarray(image).save(png)
  for form in (png, str(png), Image.fromarray(image)):
    assert sae.encode(form, weights=tiny_weights) == stream
  path = tmp_path / "s.sae"
  path.write_bytes(stream)
  for form in (path, str(path), bytearray(stream), memoryview(stream)):
    assert sae.truncate(form, 2) == sae.truncate(stream, 2)
    assert sae.info(form) == sae.info(stream)
  np.testing.assert_array_equal(sae.decode(path, 1, tiny_weights),
                                sae.decode(stream, 1, tiny_weights))
  assert sae.truncate(stream, np.int64(2)) == sae.truncate(stream, 2)


def test_other_modes_are_coded_as_rgb(tiny_weights, image):
  gray = Image.fromarray(image).convert("L")
  assert sae.encode(gray, 1, tiny_weights) == sae.encode(
      np.asarray(gray.convert("RGB")), 1, tiny_weights)
  rgba = Image.fromarray(image).convert("RGBA")
  with pytest.warns(UserWarning, match="alpha channel dropped"):
    assert sae.encode(rgba, 1, tiny_weights) == sae.encode(image, 1,
                                                           tiny_weights)


def test_info_without_a_model(tiny_model, stream):
  described = sae.info(stream)
  assert (described["width"], described["height"]) == (27, 19)
  assert described["layers"] == tiny_model.num_layers
  assert described["weights_id"] == tiny_model.weights_ids()[-1].hex()
  cut = sae.info(stream[:-1])  # an interrupted download
  assert (cut["layers"], cut["declared_layers"], cut["cut"]) == (3, 4, True)


def test_progressive_images_are_the_k_layer_decodes(tiny_weights, stream):
  pieces = [stream[i:i + 7] for i in range(0, len(stream), 7)]
  steps = list(sae.decode_progressively(pieces, weights=tiny_weights))
  assert [layers for layers, _ in steps] == [1, 2, 3, 4]
  for layers, image in steps:
    np.testing.assert_array_equal(
        image, sae.decode(stream, layers=layers, weights=tiny_weights))
  # One bytes object is one piece, not an iterable of ints.
  whole = list(sae.decode_progressively(stream, weights=tiny_weights))
  np.testing.assert_array_equal(whole[-1][1], steps[-1][1])


def test_progressive_yields_the_complete_layers_of_a_cut_stream(
    tiny_weights, stream):
  two = len(sae.truncate(stream, 2)) - bitstream.HEADER_BYTES
  cut = stream[:bitstream.HEADER_BYTES + two + 5]  # 5 bytes into layer 3
  got = []
  with pytest.raises(InputError, match="cut in layer 3 of 4"):
    for layers, _ in sae.decode_progressively([cut], weights=tiny_weights):
      got.append(layers)
  assert got == [1, 2]


def test_bad_streams_are_refused(tiny_weights, stream, tmp_path):
  for call in (sae.decode, sae.truncate, sae.info):
    args = (1,) if call is sae.truncate else ()
    refused("not an SAE stream", call, b"hello, world", *args)
    if call is not sae.info:  # which describes a cut file
      refused("cut in layer 4 of 4", call, stream[:-1], *args)
    refused("no.sae' does not exist", call, tmp_path / "no.sae", *args)
    refused("must be bytes or a path", call, 12, *args)
  refused("not an SAE stream", list,
          sae.decode_progressively([b"hello"], weights=tiny_weights))


def test_other_weights_are_named(tiny_weights, stream):
  parsed = bitstream.unpack(stream)
  foreign = bitstream.pack(parsed.height, parsed.width, parsed.payloads,
                           (b"\0\0\0\0",) + parsed.weights_ids[1:])
  for call in (sae.decode, lambda d, weights: list(
      sae.decode_progressively(d, weights=weights))):
    refused("base was coded with weights 00000000", call, foreign,
            weights=tiny_weights)


@pytest.mark.parametrize("layers,match", [
    (5, "must be in 1..4"), (0, "must be in 1..4"), (-1, "must be in 1..4"),
    ("2", "layers must be an integer, got '2'"), (2.0, "must be an integer"),
    (True, "must be an integer")])
def test_layers_out_of_range_are_refused(tiny_weights, image, stream, layers,
                                         match):
  refused(match, sae.decode, stream, layers, tiny_weights)
  refused(match, sae.truncate, stream, layers)
  refused(match, sae.encode, image, layers, tiny_weights)


def test_bad_images_and_weights_are_refused(tiny_weights, tmp_path):
  (tmp_path / "text.png").write_text("not a picture")
  for bad, match in [
      (np.zeros((4, 4), np.uint8), r"uint8 of shape \(H, W, 3\), got uint8 "
       r"of shape \(4, 4\)"),
      (np.zeros((4, 4, 3), np.float32), "got float32"),
      (b"\x89PNG", "must be a path, a PIL image or a uint8"),
      (tmp_path / "none.png", "none.png' does not exist"),
      (tmp_path / "text.png", "cannot read image"),
      (np.zeros((1, 8193, 3), np.uint8), "1..8192")]:
    refused(match, sae.encode, bad, weights=tiny_weights)
  refused("does not exist", sae.load, tmp_path / "none")
  refused("is not a weights folder", sae.load, tmp_path)


def test_import_and_truncate_do_not_import_tensorflow(stream, tmp_path):
  path = tmp_path / "s.sae"
  path.write_bytes(stream)
  script = ("import sys, sae\n"
            "cut = sae.truncate(sys.argv[1], 2)\n"
            "assert sae.info(cut)['layers'] == 2\n"
            "print(sorted(m for m in ('tensorflow', 'tensorflow_compression')"
            " if m in sys.modules))\n")
  done = subprocess.run([sys.executable, "-c", script, str(path)], cwd=ROOT,
                        capture_output=True, text=True, timeout=120)
  assert done.returncode == 0, done.stderr
  assert done.stdout.strip() == "[]"
