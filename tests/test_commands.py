"""``python -m sae``: round trips, prefixes, info, and one-line errors.

Most calls go through ``commands.main`` in this process (the model is loaded
once, through the same cache as the ``tiny_model`` fixture); a few run the
real ``python -m sae`` to check the entry point, clean stderr and that
``truncate`` / ``info`` never import TensorFlow.
"""

import json
import pathlib
import struct
import subprocess
import sys
import zlib

import numpy as np
from PIL import Image
import pytest

from sae.stream import bitstream
from cli_helpers import cli, cli_process, read_png, write_png
from tiny import random_image

ROOT = pathlib.Path(__file__).resolve().parent.parent
SIZES = [(1, 1), (17, 31), (517, 765), (765, 517), (40, 24)]


@pytest.fixture(scope="module")
def stream4(tiny_weights, tmp_path_factory):
  """A 4-layer stream of a 17x31 image, written by the CLI."""
  folder = tmp_path_factory.mktemp("stream4")
  src = write_png(folder / "in.png", random_image(17, 31, seed=5))
  status, _, err = cli("compress", src, folder / "s.sae", "--weights",
                       tiny_weights)
  assert status == 0, err
  return folder / "s.sae"


# Round trips.


@pytest.mark.parametrize("height,width", SIZES)
def test_round_trip_at_every_layer_count(tiny_model, tiny_weights, tmp_path,
                                         height, width):
  import tensorflow as tf
  src = write_png(tmp_path / "in.png", random_image(height, width, seed=height))
  full = tmp_path / "full.sae"
  assert cli("compress", src, full, "--weights", tiny_weights) == (0, "", "")
  payloads = bitstream.unpack(full.read_bytes()).payloads
  assert len(payloads) == tiny_model.num_layers
  for k in range(1, tiny_model.num_layers + 1):
    coded, cut = tmp_path / f"c{k}.sae", tmp_path / f"t{k}.sae"
    assert cli("compress", src, coded, "--layers", k, "--weights",
               tiny_weights)[0] == 0
    assert cli("truncate", full, cut, "--layers", k)[0] == 0
    assert cut.read_bytes() == coded.read_bytes()
    png = tmp_path / f"d{k}.png"
    assert cli("decompress", full, png, "--layers", k, "--weights",
               tiny_weights) == (0, "", "")
    decoded = read_png(png)
    assert decoded.shape == (height, width, 3)
    expected = tiny_model.decompress(tf.constant(payloads[:k]),
                                     tf.constant([height, width]))
    np.testing.assert_array_equal(decoded, expected.numpy())


def test_decoding_twice_gives_identical_pixels(tiny_weights, stream4, tmp_path):
  for name in ("a.png", "b.png"):
    assert cli("decompress", stream4, tmp_path / name, "--weights",
               tiny_weights)[0] == 0
  np.testing.assert_array_equal(read_png(tmp_path / "a.png"),
                                read_png(tmp_path / "b.png"))


def test_real_process_round_trip_matches_in_process(tiny_weights, tiny_model,
                                                    tmp_path):
  # Also checks that encoder and decoder processes agree on weights ids and
  # coding tables, that TensorFlow's start-up chatter stays off stderr, and
  # that neither needs an extra of pyproject.toml.
  from sae import codec
  extras = ("starlette", "uvicorn", "apache_beam", "matplotlib", "imagecodecs")
  image = random_image(23, 37, seed=3)
  src = write_png(tmp_path / "in.png", image)
  # One layer: each process builds the coding tables of what it loads.
  done = cli_process("compress", src, tmp_path / "s.sae", "--layers", 1,
                     "--weights", tiny_weights, blocked=extras)
  assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
  data = (tmp_path / "s.sae").read_bytes()
  assert data == codec.encode(tiny_model, image, 1)
  done = cli_process("decompress", tmp_path / "s.sae", tmp_path / "out.png",
                     "--weights", tiny_weights, blocked=extras)
  assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
  np.testing.assert_array_equal(read_png(tmp_path / "out.png"),
                                codec.decode(tiny_model, data))


def test_non_rgb_inputs(tiny_weights, tmp_path):
  rgba = np.dstack([random_image(9, 11), np.full((9, 11), 128, np.uint8)])
  inputs = {
      "rgba.png": Image.fromarray(rgba, "RGBA"),
      "gray16.png": Image.fromarray(
          random_image(9, 11)[..., 0].astype(np.uint16) * 257),
      "palette.png": Image.fromarray(random_image(9, 11)).convert("P"),
      "photo.jpg": Image.fromarray(random_image(9, 11)),
  }
  for name, img in inputs.items():
    img.save(tmp_path / name)
    status, out, err = cli("compress", tmp_path / name, tmp_path / "s.sae",
                           "--weights", tiny_weights)
    assert (status, out) == (0, ""), err
    if name == "rgba.png":
      assert err.count("\n") == 1 and err.startswith("warning: ")
      assert "alpha" in err
    else:
      assert err == ""
    assert cli("decompress", tmp_path / "s.sae", tmp_path / "o.png",
               "--weights", tiny_weights)[0] == 0
    assert read_png(tmp_path / "o.png").shape == (9, 11, 3)


# truncate and info: container only.


def test_info(stream4):
  status, out, err = cli("info", stream4)
  assert (status, err) == (0, "")
  info = json.loads(out)
  data = stream4.read_bytes()
  parsed = bitstream.unpack(data)
  assert (info["width"], info["height"], info["layers"]) == (31, 17, 4)
  assert info["layer_bytes"] == bitstream.layer_bytes(data)
  assert sum(info["layer_bytes"]) == info["bytes"] == len(data)
  assert info["version"] == bitstream.VERSION
  assert info["layer_weights_ids"] == [w.hex() for w in parsed.weights_ids]
  assert info["weights_id"] == info["layer_weights_ids"][-1]


def cli_without_tensorflow(*argv):
  """Runs ``python -m sae`` in a fresh process in which importing TensorFlow
  fails -> CompletedProcess.  A command that succeeds (or refuses cleanly)
  there never needed TensorFlow, the ~5 s of CPU its import costs."""
  script = ("import runpy, sys\n"
            "sys.modules['tensorflow'] = None  # import raises ImportError\n"
            "sys.argv = ['sae'] + sys.argv[1:]\n"
            "runpy.run_module('sae', run_name='__main__')\n")
  return subprocess.run([sys.executable, "-c", script, *map(str, argv)],
                        cwd=ROOT, capture_output=True, text=True, timeout=60)


def test_truncate_and_info_do_not_import_tensorflow(stream4, tmp_path):
  done = cli_without_tensorflow("truncate", stream4, tmp_path / "t.sae",
                                "--layers", 2)
  assert (done.returncode, done.stderr) == (0, "")
  assert bitstream.unpack((tmp_path / "t.sae").read_bytes()).num_layers == 2
  done = cli_without_tensorflow("info", stream4)
  assert (done.returncode, done.stderr) == (0, "")
  assert json.loads(done.stdout)["layers"] == 4


# Errors: exit 2, one line, no output file, an existing output untouched.


def with_ids(data, ids):
  """``data`` as if coded by weights with other ids (checksums redone)."""
  parsed = bitstream.unpack(data)
  return bitstream.pack(parsed.height, parsed.width, parsed.payloads, ids)


def raw_header(height, width, layers=1, version=bitstream.VERSION):
  head = struct.pack(">4sBBHH", bitstream.MAGIC, version, layers, height, width)
  return head + struct.pack(">I", zlib.crc32(head))


BAD_STREAMS = {
    "empty": lambda s: b"",
    "png": lambda s: b"\x89PNG\r\n\x1a\n" + bytes(40),
    "text": lambda s: b"hello, world\n" * 3,
    "magic": lambda s: b"SAE\x1b" + s[4:],
    "version": lambda s: raw_header(17, 31, version=9) + s[14:],
    "cut-header": lambda s: s[:9],
    "cut-chunk": lambda s: s[:-1],
    "cut-layer": lambda s: s[:bitstream.HEADER_BYTES + 5],
    "flip-header": lambda s: flip(s, 8 * 8),
    "flip-id": lambda s: flip(s, 8 * (bitstream.HEADER_BYTES + 5)),
    "flip-payload": lambda s: flip(s, 8 * len(s) - 1),
    "flip-length": lambda s: flip(s, 8 * bitstream.HEADER_BYTES + 3),
    "trailing": lambda s: s + b"\0",
    "other-weights": lambda s: with_ids(s, [b"\xde\xad\xbe\xef"] * 4),
    "60000x60000": lambda s: raw_header(60000, 60000) + bytes(40),
    "chunk-past-end": lambda s: raw_header(17, 31) + struct.pack(
        ">I4sI", 0xFFFFFFF0, bytes(4), 0) + bytes(8),
    "zero-layers": lambda s: raw_header(17, 31, layers=0),
}


def flip(data, bit):
  out = bytearray(data)
  out[bit // 8] ^= 1 << (bit % 8)
  return bytes(out)


def assert_refused(result, output, before=None):
  status, out, err = result
  assert status == 2
  assert out == ""
  assert err.startswith("error: ") and err.count("\n") == 1, err
  assert "Traceback" not in err
  if before is None:
    assert not pathlib.Path(output).exists()
  else:
    assert pathlib.Path(output).read_bytes() == before
  parent = pathlib.Path(output).parent
  if parent.is_dir():
    assert not [p for p in parent.iterdir() if p.name.startswith(".")]
  return err


@pytest.mark.parametrize("name", sorted(BAD_STREAMS))
def test_bad_streams_are_refused(tiny_weights, stream4, tmp_path, name):
  bad = tmp_path / "bad.sae"
  bad.write_bytes(BAD_STREAMS[name](stream4.read_bytes()))
  out = tmp_path / "out" / "o"
  out.parent.mkdir()
  commands_to_try = [["decompress", bad, out, "--weights", tiny_weights]]
  if name != "other-weights":  # only decoding needs the weights
    commands_to_try += [["truncate", bad, out, "--layers", 1]]
    if name != "cut-chunk":  # info reports a cut file's complete layers
      commands_to_try.append(["info", bad])
  for argv in commands_to_try:
    assert_refused(cli(*argv), out)
  # An existing output is left as it was.
  out.write_bytes(b"keep me")
  assert_refused(cli("decompress", bad, out, "--weights", tiny_weights), out,
                 b"keep me")


def test_refusal_reasons_are_specific(tiny_weights, stream4, tmp_path):
  reasons = {"magic": "bad magic", "version": "version 9",
             "cut-chunk": "cut", "flip-payload": "corrupted",
             "other-weights": "coded with weights deadbeef",
             "60000x60000": "60000x60000", "chunk-past-end": "cut",
             "trailing": "unexpected bytes"}
  for name, reason in reasons.items():
    bad = tmp_path / f"{name}.sae"
    bad.write_bytes(BAD_STREAMS[name](stream4.read_bytes()))
    err = assert_refused(cli("decompress", bad, tmp_path / "o.png",
                             "--weights", tiny_weights), tmp_path / "o.png")
    assert reason in err


def test_usage_errors(tiny_weights, stream4, tmp_path):
  src = write_png(tmp_path / "in.png", random_image(8, 8))
  out = tmp_path / "o"
  text = tmp_path / "notes.txt"
  text.write_text("not an image")
  empty = tmp_path / "empty.png"
  empty.write_bytes(b"")
  missing_dir = tmp_path / "nope" / "o"
  cases = [
      (["decompress", stream4, out, "--layers", 5, "--weights", tiny_weights],
       "--layers must be in 1..4"),
      (["decompress", stream4, out, "--layers", 0], "--layers"),
      (["compress", src, out, "--layers", 5, "--weights", tiny_weights],
       "5 layers"),
      (["compress", src, out, "--layers", "x"], "not an integer"),
      (["truncate", stream4, out, "--layers", 9], "must be in 1..8"),
      (["truncate", stream4, out], "--layers"),
      (["truncate", stream4, out, "--layers", 5], "--layers must be in 1..4"),
      (["compress", text, out, "--weights", tiny_weights], "cannot read image"),
      (["compress", empty, out, "--weights", tiny_weights], "cannot read image"),
      (["compress", tmp_path / "missing.png", out], "does not exist"),
      (["decompress", tmp_path / "missing.sae", out], "does not exist"),
      (["truncate", tmp_path / "missing.sae", out, "--layers", 1],
       "does not exist"),
      (["info", tmp_path / "missing.sae"], "does not exist"),
      (["compress", src, out, "--weights", tmp_path / "no-weights"],
       "does not exist"),
      (["compress", src, out, "--weights", tmp_path], "not a weights folder"),
      (["bogus"], "invalid choice"),
  ]  # no arguments at all: the usage line (tests/test_commands_usage.py)
  # A folder as input or output is the folder form (tests/test_folders.py).
  for argv, reason in cases:
    err = assert_refused(cli(*argv), out)
    assert reason in err, (argv, err)
  for argv in (["compress", src, missing_dir, "--weights", tiny_weights],
               ["decompress", stream4, missing_dir, "--weights", tiny_weights],
               ["truncate", stream4, missing_dir, "--layers", 1],
               ["export", missing_dir, "--weights", tiny_weights]):
    err = assert_refused(cli(*argv), missing_dir)
    assert "does not exist" in err


def test_image_too_large_for_the_format(tiny_weights, tmp_path):
  wide = write_png(tmp_path / "wide.png", np.zeros((1, 8193, 3), np.uint8))
  err = assert_refused(cli("compress", wide, tmp_path / "o", "--weights",
                           tiny_weights), tmp_path / "o")
  assert "8193x1" in err


def test_missing_shipped_weights_says_to_pass_weights(tmp_path, monkeypatch):
  from sae import checkpoints
  monkeypatch.setattr(checkpoints, "DEFAULT_WEIGHTS", tmp_path / "absent")
  src = write_png(tmp_path / "in.png", random_image(8, 8))
  err = assert_refused(cli("compress", src, tmp_path / "o"), tmp_path / "o")
  assert "--weights" in err


def test_bad_structure_is_refused_before_tensorflow(tiny_weights, stream4,
                                                   tmp_path):
  # Structure, output folder and --layers are checked before TensorFlow
  # loads, so such refusals take a fraction of a second, not seconds.
  cut = tmp_path / "cut.sae"
  cut.write_bytes(stream4.read_bytes()[:-3])
  for argv in (["decompress", cut, tmp_path / "o.png"],
               ["decompress", stream4, tmp_path / "o.png", "--layers", 5],
               ["decompress", stream4, tmp_path / "missing" / "o.png"],
               ["truncate", cut, tmp_path / "t.sae", "--layers", 1]):
    done = cli_without_tensorflow(*argv, "--weights", tiny_weights) \
        if argv[0] == "decompress" else cli_without_tensorflow(*argv)
    assert done.returncode == 2, (argv, done.stderr)
    assert done.stderr.startswith("error: ") and done.stderr.count("\n") == 1
    assert "tensorflow" not in done.stderr.lower(), done.stderr
  assert not (tmp_path / "o.png").exists()
  assert not (tmp_path / "t.sae").exists()
