"""Distributed training through the training scripts themselves.

As TensorFlow's multi-worker tutorial does: worker processes on localhost
configured by TF_CONFIG, a few steps of the tiny preset.  Several processes
each tracing a training step take minutes on 2 cores: these run with
``pytest -m full`` (and in CI).
"""

import json
import os
import pathlib
import socket
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from tiny import write_corpus

ROOT = pathlib.Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.full


def _free_ports(n):
  sockets = [socket.socket() for _ in range(n)]
  for s in sockets:
    s.bind(("127.0.0.1", 0))
  ports = [s.getsockname()[1] for s in sockets]
  for s in sockets:
    s.close()
  return ports


def _env(**extra):
  return dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(ROOT),
              **extra)


def _train_args(corpus, root, steps, *more):
  return [sys.executable, str(ROOT / "train_base.py"), "--preset", "tiny",
          "--corpus", str(corpus), "--checkpoint-dir", str(root), "--steps",
          str(steps), "--no-progress", "--seed", "1", "--validate-every", "0",
          *more]


def _workers(cwd, corpus, root, steps):
  """Runs two multi-worker training processes to the end; their outputs."""
  ports = _free_ports(2)
  procs = []
  for index in range(2):
    config = {"cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]},
              "task": {"type": "worker", "index": index}}
    procs.append(subprocess.Popen(
        _train_args(corpus, root, steps, "--distribute", "multi-worker"),
        cwd=cwd / f"w{index}", env=_env(TF_CONFIG=json.dumps(config)),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
  outs = []
  for proc in procs:
    out, err = proc.communicate(timeout=1200)
    assert proc.returncode == 0, err[-2000:]
    summary = json.loads(out.strip().splitlines()[-1])
    summary.pop("train_seconds")  # each worker's own clock
    outs.append(summary)
  return outs


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
  folder = tmp_path_factory.mktemp("corpus")
  write_corpus(folder, [(80, 80)] * 3)
  return folder


def test_two_local_workers_train_checkpoint_and_resume(tmp_path, corpus):
  root = tmp_path / "ck"
  for index in range(2):
    (tmp_path / f"w{index}").mkdir()
  first = _workers(tmp_path, corpus, root, 2)
  # One model: both workers end with the same numbers.
  assert first[0] == first[1] and first[0]["step"] == 2
  state = json.loads((root / "base" / "state.json").read_text())
  assert state["num_replicas"] == 2 and state["steps"] == 2
  # Only the chief writes: one row per logged step, nothing in the workers'
  # own folders.
  rows = (root / "base" / "log.csv").read_text().splitlines()
  assert [r.split(",")[0] for r in rows] == ["step", "2"]
  assert [list((tmp_path / f"w{i}").iterdir()) for i in range(2)] == [[], []]
  # A stopped run resumes from the chief's checkpoint, on both workers.
  second = _workers(tmp_path, corpus, root, 4)
  assert second[0] == second[1] and second[0]["step"] == 4
  rows = (root / "base" / "log.csv").read_text().splitlines()
  assert [r.split(",")[0] for r in rows] == ["step", "2", "4"]
  assert (root / "base" / "train" / "ckpt-4.index").is_file()
  assert json.loads((root / "base" / "state.json").read_text())["steps"] == 4


def test_mirrored_on_two_logical_cpus(tmp_path, corpus):
  root = tmp_path / "ck"
  run = subprocess.run(
      _train_args(corpus, root, 2, "--distribute", "mirrored",
                  "--logical-cpus", "2"),
      cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=1200)
  assert run.returncode == 0, run.stderr[-2000:]
  state = json.loads((root / "base" / "state.json").read_text())
  assert state["num_replicas"] == 2 and state["steps"] == 2 and state["finished"]


# One step of layer 1 on a fixed global batch of 4, inference-mode forward (no
# noise), as one process alone or as one of two workers; prints the weights.
STEP = textwrap.dedent("""
    import json, os, sys
    import numpy as np
    import tensorflow as tf
    from sae.train import train_steps
    from sae.models.model import ScalableAutoEncoder
    from tests.tiny import tiny_specs

    strategy = (tf.distribute.MultiWorkerMirroredStrategy()
                if os.environ.get("TF_CONFIG") else tf.distribute.get_strategy())
    batch = tf.random.stateless_uniform((4, 32, 32, 3), (7, 7), 0, 255)
    with strategy.scope():
      tf.keras.utils.set_random_seed(0)
      model = ScalableAutoEncoder(tiny_specs(2))
      model.codecs[0].prepare_for_coding()
      variables = model.set_trainable_layer(1)
      optimizer = tf.keras.optimizers.SGD(0.01)
    step = train_steps.make_train_step(train_steps.layer_forward(model, 1),
                                   variables, optimizer,
                                       strategy, 4, training=False)
    dataset = tf.data.Dataset.from_tensors(batch)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = (
        tf.data.experimental.AutoShardPolicy.DATA)
    dataset = dataset.with_options(options)
    x = next(iter(strategy.experimental_distribute_dataset(dataset)))
    metrics = step(x).numpy()
    np.savez(sys.argv[1], metrics=metrics,
             *[v.numpy() for v in model.codecs[1].weight_variables])
""")


def test_two_workers_apply_one_workers_update_on_the_global_batch(tmp_path):
  script = tmp_path / "step.py"
  script.write_text(STEP)
  single = subprocess.run([sys.executable, str(script), str(tmp_path / "one")],
                          cwd=ROOT, env=_env(), capture_output=True, text=True,
                          timeout=1200)
  assert single.returncode == 0, single.stderr[-2000:]
  ports = _free_ports(2)
  procs = []
  for index in range(2):
    config = {"cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]},
              "task": {"type": "worker", "index": index}}
    procs.append(subprocess.Popen(
        [sys.executable, str(script), str(tmp_path / f"w{index}")], cwd=ROOT,
        env=_env(TF_CONFIG=json.dumps(config)), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True))
  for proc in procs:
    _, err = proc.communicate(timeout=1200)
    assert proc.returncode == 0, err[-2000:]
  one = np.load(tmp_path / "one.npz")
  for index in range(2):
    got = np.load(tmp_path / f"w{index}.npz")
    assert sorted(got.files) == sorted(one.files)
    for name in one.files:
      np.testing.assert_allclose(got[name], one[name], rtol=1e-4, atol=1e-5)
  # The step did something: weights differ from a fresh model's.
  fresh = subprocess.run(
      [sys.executable, "-c", textwrap.dedent("""
          import sys, numpy as np, tensorflow as tf
          from sae.models.model import ScalableAutoEncoder
          from tests.tiny import tiny_specs
          tf.keras.utils.set_random_seed(0)
          m = ScalableAutoEncoder(tiny_specs(2))
          np.savez(sys.argv[1], *[v.numpy() for v in m.codecs[1].weight_variables])
          """), str(tmp_path / "fresh")],
      cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=1200)
  assert fresh.returncode == 0, fresh.stderr[-2000:]
  fresh = np.load(tmp_path / "fresh.npz")
  init_changed = any(not np.allclose(fresh[n], one[n]) for n in fresh.files)
  assert init_changed, "the step changed nothing"
