"""The sae-nested family through the same scripts and command line as the
paper's model: train_base.py --family sae-nested, then train_el1.py (the
family read from config.json), test_el1.py, compress, info, decompress,
export, train_joint.py."""

import json

import numpy as np
import pytest
from PIL import Image

import test_el1
import train_base
import train_el1
from sae import checkpoints
from sae.cli import commands
from tests.tiny import write_corpus

# Trains through the scripts (25 s): with the full set (-m full); the
# family's model and coding are tested by test_nested.py.
pytestmark = pytest.mark.full


def trained_through_the_scripts(root, family):
  """(corpus, checkpoint folder): base with --family, then el1 (the
  family read from config.json), two steps each."""
  corpus = write_corpus(root / "corpus", [(64, 64), (80, 96)])
  ckpt = root / "ckpt"
  common = ["--preset", "tiny", "--corpus", str(corpus), "--checkpoint-dir",
            str(ckpt), "--steps", "2", "--no-progress", "--seed", "1"]
  assert train_base.main(common + ["--family", family]) == 0
  assert train_el1.main(common) == 0
  return corpus, ckpt


@pytest.fixture(scope="module")
def nested_weights(tmp_path_factory):
  return trained_through_the_scripts(tmp_path_factory.mktemp("nested"),
                                     "sae-nested")


def test_a_nested_layer_trains_on_a_frozen_base_from_its_synthesis(
    nested_weights):
  _, ckpt = nested_weights
  config = checkpoints.read_config(ckpt)
  assert config.family == "sae-nested"
  assert [(s.kind, s.step) for s in config.layers[:2]] == [
      ("meanscale", 27.0), ("nested", 9.0)]
  state = checkpoints.read_state(ckpt, 1)
  assert state["lower_layer_sha256_before"] == state["lower_layer_sha256_after"]
  # The base learned (and validated) the latent at every layer's step.
  validated = checkpoints.read_state(ckpt, 0)["validation"]
  assert {"base", "+el1", "+el2", "+el3"} <= set(validated)


def test_nested_weights_serve_the_scripts_and_streams_of_other_weights_are_refused(
    nested_weights, tiny_weights, tmp_path, capsys):
  corpus, ckpt = nested_weights
  out = tmp_path / "r.json"
  assert test_el1.main(["--kodak", str(corpus), "--weights", str(ckpt),
                        "--out", str(out), "--no-progress"]) == 0
  result = json.loads(out.read_text())
  assert result["layers"] == ["base", "+el1"]
  assert result["name"] == "sae-nested" and "SAE+" in result["description"]
  image, stream = corpus / "img1.png", tmp_path / "a.sae"
  assert commands.main(["compress", str(image), str(stream), "--weights",
                        str(ckpt)]) == 0
  # The rate test_el1 measured is the rate of the stream's real bytes.
  per_image = {row["image"]: row for row in result["per_image"]}
  row = per_image.get("img1") or per_image.get("img1.png")
  assert row["bpp"][-1] == pytest.approx(
      8 * stream.stat().st_size / (80 * 96), abs=1e-6)
  assert commands.main(["info", str(stream)]) == 0
  for k in (1, 2):
    png = tmp_path / f"{k}.png"
    assert commands.main(["decompress", str(stream), str(png), "--layers",
                          str(k), "--weights", str(ckpt)]) == 0
    assert np.asarray(Image.open(png)).shape == (80, 96, 3)
  capsys.readouterr()
  refused = tmp_path / "refused.png"
  assert commands.main(["decompress", str(stream), str(refused), "--weights",
                        str(tiny_weights)]) == 2
  error = capsys.readouterr().err.strip()
  assert len(error.splitlines()) == 1 and "weights" in error
  assert not refused.exists()


def test_nested_weights_export_a_savedmodel_that_decodes_like_the_cli(
    nested_weights, tmp_path):
  import tensorflow as tf
  from sae.stream import bitstream
  corpus, ckpt = nested_weights
  folder, stream = tmp_path / "savedmodel", tmp_path / "a.sae"
  assert commands.main(["export", str(folder), "--weights", str(ckpt)]) == 0
  assert commands.main(["compress", str(corpus / "img0.png"), str(stream),
                        "--weights", str(ckpt)]) == 0
  cli_png = tmp_path / "cli.png"
  assert commands.main(["decompress", str(stream), str(cli_png), "--weights",
                        str(ckpt)]) == 0
  parsed = bitstream.unpack(stream.read_bytes())
  loaded = tf.saved_model.load(str(folder))
  image = loaded.decompress(tf.constant(parsed.payloads),
                            tf.constant([parsed.height, parsed.width]))
  np.testing.assert_array_equal(image.numpy(), np.asarray(Image.open(cli_png)))


def test_the_joint_phase_fine_tunes_every_nested_layer_into_a_model_that_codes(
    tmp_path_factory):
  import tensorflow as tf

  import train_el2
  import train_el3
  import train_joint
  from sae.models.base import to_uint8
  from tests.tiny import random_image
  corpus, ckpt = trained_through_the_scripts(
      tmp_path_factory.mktemp("nested-joint"), "sae-nested")
  common = ["--preset", "tiny", "--corpus", str(corpus), "--checkpoint-dir",
            str(ckpt), "--steps", "2", "--no-progress", "--seed", "1"]
  assert train_el2.main(common) == 0 and train_el3.main(common) == 0
  out = ckpt.parent / "joint"
  assert train_joint.main(["--corpus", str(corpus), "--checkpoint-dir",
                           str(ckpt), "--out-dir", str(out), "--steps", "2",
                           "--no-progress", "--seed", "1"]) == 0
  for k in range(4):
    assert _weights(out, k) != _weights(ckpt, k)
  # Each layer validated as decoded: its own rate, its synthesis's image.
  rows = (out / "joint" / "val.csv").read_text().splitlines()
  assert [r.split(",")[:2] for r in rows[1:5]] == [
      ["0", k] for k in ("base", "+el1", "+el2", "+el3")]
  shipped = ckpt.parent / "shipped"
  assert checkpoints.ship_weights(out, shipped)["joint_fine_tuning"][
      "steps"] == 2
  model = checkpoints.cached_model(shipped)
  image = random_image(40, 24)
  strings, shape = model.compress(image, 4)
  expected = model.reconstructions(tf.cast(image, tf.float32)[None])
  for k in (1, 4):
    np.testing.assert_array_equal(model.decompress(strings[:k], shape).numpy(),
                                  to_uint8(expected[k - 1][0]).numpy())


def _weights(ckpt, k):
  return (checkpoints.layer_dir(ckpt, k) / "weights.data-00000-of-00001"
          ).read_bytes()


def test_a_nested_layer_takes_the_base_width_and_refuses_another(
    nested_weights, capsys):
  import train_el2
  corpus, ckpt = nested_weights
  assert train_el2.main(["--preset", "tiny", "--corpus", str(corpus),
                         "--checkpoint-dir", str(ckpt), "--steps", "1",
                         "--no-progress", "--conv-filters", "12"]) == 2
  error = capsys.readouterr().err.strip().splitlines()
  assert len(error) == 1 and "the base's width" in error[0]
  assert not (ckpt / "el2").exists()
