"""The joint fine-tuning phase through its script, on the tiny weights."""

import json
import shutil

import numpy as np
import pytest
import tensorflow as tf

import train_joint
from sae import checkpoints
from sae.config import get_preset
from sae.models.base import to_uint8
from sae.models.model import ScalableAutoEncoder
from sae.errors import InputError
from sae.train.train_joint import layer_weights
from tests.tiny import corpus_and_weights, random_image, tiny_model, write_corpus


@pytest.fixture(scope="module")
def joint(tmp_path_factory, tiny_weights):
  root = tmp_path_factory.mktemp("joint")
  corpus, source = corpus_and_weights(root, tiny_weights, "source")
  argv = ["--corpus", str(corpus), "--checkpoint-dir", str(source),
          "--out-dir", str(root / "out"), "--no-progress", "--seed", "1"]
  before = {p.relative_to(source): p.read_bytes()
            for p in source.rglob("*") if p.is_file()}
  assert train_joint.main(argv + ["--steps", "2"]) == 0
  return root, source, argv, before


def _weights(root, k):
  return (checkpoints.layer_dir(root, k) / "weights.data-00000-of-00001"
          ).read_bytes()


@pytest.mark.full  # the script: tracing four layers' training step
def test_every_layer_changes_and_the_source_stays(joint):
  root, source, _, before = joint
  after = {p.relative_to(source): p.read_bytes()
           for p in source.rglob("*") if p.is_file()}
  assert after == before
  out = root / "out"
  for k in range(4):
    assert _weights(out, k) != _weights(source, k)
  state = checkpoints.read_record(out / "joint")
  assert state["steps"] == 2 and state["finished"]
  assert state["layer_weights"] == [1.0] * 4
  assert state["source"] == str(source)
  assert set(state["validation"]) == {"step", "base", "+el1", "+el2", "+el3"}
  rows = (out / "joint" / "val.csv").read_text().splitlines()
  assert rows[0].startswith("step,layers,loss")
  layers = ["base", "+el1", "+el2", "+el3"]
  assert [r.split(",")[:2] for r in rows[1:]] == (
      [["0", k] for k in layers] + [["2", k] for k in layers])


@pytest.mark.full  # the script: tracing four layers' training step
def test_fine_tuned_model_codes_and_ships_with_its_record(joint, tmp_path):
  root, _, _, _ = joint
  shipped = tmp_path / "shipped"
  manifest = checkpoints.ship_weights(root / "out", shipped)
  assert manifest["status"] == "complete"
  assert manifest["joint_fine_tuning"]["steps"] == 2
  assert json.loads((shipped / "manifest.json").read_text()) == manifest
  model = checkpoints.cached_model(shipped)
  image = random_image(40, 24)
  strings, shape = model.compress(image, 4)
  expected = model.reconstructions(tf.cast(image, tf.float32)[None])
  decoded = model.decompress(strings[:2], shape).numpy()
  np.testing.assert_array_equal(decoded, to_uint8(expected[1][0]).numpy())


@pytest.mark.full  # the script: tracing four layers' training step
def test_resumes_and_refuses_other_weights(joint, capsys):
  root, _, argv, _ = joint
  assert train_joint.main(argv + ["--steps", "3"]) == 0
  assert checkpoints.read_record(root / "out" / "joint")["steps"] == 3
  capsys.readouterr()
  assert train_joint.main(argv + ["--steps", "4", "--layer-weights",
                                  "1,1,1,2"]) == 2
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and "--layer-weights" in err[0]


@pytest.mark.full  # the script: tracing four layers' training step
@pytest.mark.full  # the script: tracing four layers' training step
def test_without_training_state_it_continues_from_weights_on_request(
    joint, capsys):
  root, _, argv, _ = joint
  out = root / "out"
  steps = checkpoints.read_record(out / "joint")["steps"]
  shutil.rmtree(out / "joint" / "train")  # as in a clone of the repository
  capsys.readouterr()
  assert train_joint.main(argv + ["--steps", str(steps + 1)]) == 2
  assert "--from-weights" in capsys.readouterr().err
  assert train_joint.main(argv + ["--steps", str(steps + 1),
                                  "--from-weights"]) == 0
  state = checkpoints.read_record(out / "joint")
  assert state["steps"] == steps + 1
  assert state["adam_restarted_at_steps"] == [steps]


@pytest.mark.filterwarnings("ignore:skipping 1 unreadable")  # the 64x64 image
def test_bad_input_is_refused_before_the_folder_is_made(
    tiny_weights, tmp_path, capsys):
  corpus = write_corpus(tmp_path / "corpus", [(64, 64)])
  out = tmp_path / "out"
  base = ["--corpus", str(corpus), "--checkpoint-dir", str(tiny_weights),
          "--out-dir", str(out), "--no-progress"]
  for extra, says in ((["--layer-weights", "1,1"], "--layer-weights"),
                      (["--patch-size", "40"], "multiple of 16"),
                      (["--patch-size", "128"], "at least 128")):
    assert train_joint.main(base + extra) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and says in err[0]
    assert not out.exists() and not list(tmp_path.glob(".out*"))


def test_refuses_an_existing_folder_of_another_kind(joint, capsys):
  root, source, argv, _ = joint
  other = ["--corpus", argv[1], "--checkpoint-dir", str(root / "out"),
           "--out-dir", str(source), "--no-progress"]
  assert train_joint.main(other) == 2
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and "not a joint fine-tuning folder" in err[0]


def test_layer_weights_are_checked():
  assert layer_weights(None, 3) == [1.0, 1.0, 1.0]
  assert layer_weights("1,0.5,2", 3) == [1.0, 0.5, 2.0]
  for bad in ("1,2", "a,b,c", "0,0,0", "1,-1,1", "nan,1,1", "1,inf,1"):
    with pytest.raises(InputError):
      layer_weights(bad, 3)


def test_joint_loss_is_the_sum_of_the_layers_losses():
  model = tiny_model()
  x = tf.cast(random_image(32, 48, seed=2), tf.float32)[None]
  weights = [1.0, 0.5, 2.0, 1.0]
  joint = model.forward_joint(x, weights, training=False).loss
  alone = sum(w * model.forward(x, k, training=False).loss
              for k, w in enumerate(weights))
  np.testing.assert_allclose(joint.numpy(), alone.numpy(), rtol=1e-5)


def test_joint_training_rounds_each_latent_as_decoding_does():
  model = ScalableAutoEncoder(get_preset("tiny").layers)
  model.prepare_for_coding()
  x = tf.cast(random_image(32, 32, seed=4), tf.float32)[None]
  variables = model.set_trainable_layers(range(4))
  with tf.GradientTape() as tape:
    loss = model.forward_joint(x, [1.0] * 4, training=True).loss
  grads = tape.gradient(loss, variables)
  assert all(g is not None for g in grads)  # the base learns from the top
  # Noise in the rates only: each latent the synthesis (and so the layer
  # above) sees is the decoder's, up to the straight-through sum's rounding.
  total = tf.zeros_like(x)
  for codec in model.codecs:
    out = codec(x - total, training=True, rounded=True)
    np.testing.assert_allclose(out.y_hat.numpy(),
                               codec.quantize(out.y).numpy(), atol=1e-4)
    assert np.abs(out.y_hat.numpy() - out.y.numpy()).max() > 0.01
    total += out.x_hat
