"""``python -m sae export``: a SavedModel that decodes CLI streams on its own.

The export is loaded in a fresh process whose working directory is not the
repository, so ``import sae`` would fail there: the SavedModel and
tools/decode_with_savedmodel.py must do without the package.
"""

import json
import os
import pathlib
import shutil
import subprocess
import sys

import numpy as np
import pytest

from sae.stream import bitstream
from cli_helpers import cli, read_png, write_png
from tiny import random_image

ROOT = pathlib.Path(__file__).resolve().parent.parent
TOOL = ROOT / "tools" / "decode_with_savedmodel.py"


def run_outside(args, cwd):
  """A Python process that cannot import the sae package."""
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
  env.pop("PYTHONPATH", None)
  return subprocess.run([sys.executable, *map(str, args)], cwd=cwd, env=env,
                        capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def exported(tiny_weights, tmp_path_factory):
  folder = tmp_path_factory.mktemp("export") / "savedmodel"
  assert cli("export", folder, "--weights", tiny_weights) == (0, "", "")
  return folder


def test_standalone_decoder_matches_the_cli(tiny_weights, exported, tmp_path):
  src = write_png(tmp_path / "in.png", random_image(29, 45, seed=7))
  stream = tmp_path / "s.sae"
  assert cli("compress", src, stream, "--weights", tiny_weights)[0] == 0
  ours, theirs = tmp_path / "cli.png", tmp_path / "tool.png"
  assert cli("decompress", stream, ours, "--layers", 2, "--weights",
             tiny_weights)[0] == 0
  done = run_outside([TOOL, exported, stream, theirs, "--layers", 2],
                     cwd=tmp_path)
  assert (done.returncode, done.stderr) == (0, "")
  np.testing.assert_array_equal(read_png(theirs), read_png(ours))


def test_export_carries_ids_layers_and_a_working_compress(
    tiny_model, exported, tmp_path):
  from sae import codec
  image = random_image(19, 21, seed=2)
  np.save(tmp_path / "image.npy", image)
  full = codec.encode(tiny_model, image, tiny_model.num_layers)
  (tmp_path / "full.sae").write_bytes(full)
  script = f"""
import json, runpy, sys
import numpy as np
import tensorflow as tf
tool = runpy.run_path({str(TOOL)!r})
m = tool["load"]({str(exported)!r})
full = tool["decode"](m, open("full.sae", "rb").read())
assert "sae" not in sys.modules
image = np.load("image.npy")
strings, shape = m.compress(tf.constant(image), tf.constant(2))
sig = m.signatures["decompress"](strings=strings[:2], image_shape=shape)
info = m.signatures["info"]()
print(json.dumps({{
    "payloads": [s.hex() for s in strings.numpy().tolist()],
    "shape": shape.numpy().tolist(),
    "num_layers": int(m.num_layers.numpy()),
    "ids": [i.decode() for i in m.layer_weights_ids.numpy()],
    "version": int(m.stream_version.numpy()),
    "info_ids": [i.decode() for i in info["layer_weights_ids"].numpy()],
    "decoded": sig["image"].numpy().tolist(),
    "full": full.tolist()}}))
"""
  done = run_outside(["-c", script], cwd=tmp_path)
  assert done.returncode == 0, done.stderr
  got = json.loads(done.stdout)
  ids = [i.hex() for i in tiny_model.weights_ids()]
  assert got["num_layers"] == tiny_model.num_layers
  assert got["ids"] == got["info_ids"] == ids
  assert got["version"] == bitstream.VERSION
  assert got["shape"] == [19, 21]
  stream = codec.encode(tiny_model, image, 2)
  payloads = [bytes.fromhex(p) for p in got["payloads"]]
  assert payloads[2:] == [b""] * (tiny_model.num_layers - 2)
  assert tuple(payloads[:2]) == bitstream.unpack(stream).payloads
  np.testing.assert_array_equal(np.array(got["decoded"], np.uint8),
                                codec.decode(tiny_model, stream))
  np.testing.assert_array_equal(np.array(got["full"], np.uint8),
                                codec.decode(tiny_model, full))


def test_standalone_decoder_refuses_bad_streams(tiny_weights, exported,
                                                tmp_path):
  src = write_png(tmp_path / "in.png", random_image(8, 8))
  stream = tmp_path / "s.sae"
  assert cli("compress", src, stream, "--weights", tiny_weights)[0] == 0
  data = stream.read_bytes()
  parsed = bitstream.unpack(data)
  bad = {"cut": data[:-1], "flip": data[:-1] + bytes([data[-1] ^ 4]),
         "other-weights": bitstream.pack(8, 8, parsed.payloads,
                                         [b"\0\0\0\0"] * parsed.num_layers)}
  for name, content in bad.items():
    (tmp_path / name).write_bytes(content)
    done = run_outside([TOOL, exported, tmp_path / name, tmp_path / "o.png"],
                       cwd=tmp_path)
    assert done.returncode == 2, (name, done.stderr)
    assert done.stderr.startswith("error: ") and done.stderr.count("\n") == 1
    assert not (tmp_path / "o.png").exists()


def test_export_replaces_an_old_export_but_no_other_folder(
    tiny_weights, exported, tmp_path):
  target = tmp_path / "m"
  shutil.copytree(exported, target)
  (target / "stale").write_text("from an earlier export")
  assert cli("export", target, "--weights", tiny_weights) == (0, "", "")
  assert not (target / "stale").exists()
  assert (target / "saved_model.pb").is_file()
  assert target.stat().st_mode & 0o777 == 0o777 & ~_umask()
  other = tmp_path / "other"
  other.mkdir()
  (other / "precious.txt").write_text("keep")
  status, _, err = cli("export", other, "--weights", tiny_weights)
  assert status == 2 and "no SavedModel" in err
  assert (other / "precious.txt").read_text() == "keep"
  assert sorted(p.name for p in tmp_path.iterdir()) == ["m", "other"]


def _umask():
  mask = os.umask(0)
  os.umask(mask)
  return mask
