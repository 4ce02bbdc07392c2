import argparse
import json
import os
import signal
import types

import pytest

from sae.train import distribute, train, train_folder, train_log

CLUSTER = {"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": 1}}


def test_multi_worker_checkpoints_by_step(monkeypatch):
  monkeypatch.setenv("TF_CONFIG", json.dumps(CLUSTER))
  strategy = types.SimpleNamespace(cluster_resolver=object())
  assert distribute.num_workers(strategy) == 2
  assert not distribute.is_chief(strategy)
  args = argparse.Namespace(checkpoint_steps=None, checkpoint_every=1e-9)
  assert not train_folder.checkpoint_due(999, 0.0, args, strategy)  # time is ignored
  assert train_folder.checkpoint_due(1000, 0.0, args, strategy)


def test_one_worker_checkpoints_by_time(monkeypatch):
  monkeypatch.delenv("TF_CONFIG", raising=False)
  strategy = types.SimpleNamespace()
  assert distribute.num_workers(strategy) == 1 and distribute.is_chief(strategy)
  args = argparse.Namespace(checkpoint_steps=None, checkpoint_every=1e-9)
  assert train_folder.checkpoint_due(7, 0.0, args, strategy)
  args.checkpoint_steps = 5
  assert not train_folder.checkpoint_due(7, 0.0, args, strategy)


def test_csv_gains_new_columns_without_losing_rows(tmp_path):
  path = tmp_path / "val.csv"
  path.write_text("step,loss\n1000,0.5\n")  # written by an older version
  train_log.append_csv(path, ["step", "loss", "ms_ssim"], [2000, 0.4, 0.9])
  assert path.read_text() == "step,loss,ms_ssim\n1000,0.5,\n2000,0.4,0.9\n"
  import pytest
  from sae.errors import InputError
  with pytest.raises(InputError, match="columns"):
    train_log.append_csv(path, ["step", "bpp"], [3000, 0.1])
  empty = tmp_path / "empty.csv"
  empty.write_text("")  # created, then the trainer was killed
  train_log.append_csv(empty, ["step", "loss"], [1, 0.5])
  assert empty.read_text() == "step,loss\n1,0.5\n"


def test_non_finite_weights_are_never_saved(tmp_path):
  import pytest
  import tensorflow as tf
  from sae import checkpoints
  from tests.tiny import tiny_model
  model = tiny_model(num_layers=1)
  optimizer = tf.keras.optimizers.Adam()
  ckpt = checkpoints.layer_checkpoint(model.codecs[0], optimizer=optimizer)
  manager = tf.train.CheckpointManager(ckpt, str(tmp_path / "train"), 2)
  state = {}
  train_folder.save(manager, 0, model, tmp_path, (0,),
                      checkpoints.layer_dir(tmp_path, 0), state, 0.0, 0.0)
  assert checkpoints.has_weights(tmp_path, 0)
  before = checkpoints.read_state(tmp_path, 0)
  var = model.codecs[0].weight_variables[0]
  var.assign(var * float("nan"))
  with pytest.raises(FloatingPointError, match="not saved"):
    train_folder.save(manager, 0, model, tmp_path, (0,),
                      checkpoints.layer_dir(tmp_path, 0), state, 0.0, 0.0)
  assert checkpoints.read_state(tmp_path, 0) == before
  assert len(manager.checkpoints) == 1


def test_sigterm_during_start_up_is_an_interruption(monkeypatch):
  # Start-up (restoring and coding the lower layers) takes minutes; a stop
  # then must end as an interruption (exit 2), not kill the process.
  def start_up(k, args):
    os.kill(os.getpid(), signal.SIGTERM)
    raise AssertionError("SIGTERM did not interrupt")

  monkeypatch.setattr(train, "_train_layer", start_up)
  before = signal.getsignal(signal.SIGTERM)
  with pytest.raises(KeyboardInterrupt):
    train.run(0, argparse.Namespace())
  assert signal.getsignal(signal.SIGTERM) is before


def test_a_second_stop_while_saving_is_ignored(monkeypatch):
  # Ctrl-C reaches tools/train_all.sh and its trainer both, and the script
  # passes a SIGTERM on: the save after the first stop must complete.
  saved = []

  def start_up(k, args):
    with train.stops_ignored():
      for stop in (signal.SIGINT, signal.SIGTERM):
        os.kill(os.getpid(), stop)
      saved.append(True)
    raise AssertionError("the stops were not ignored")

  monkeypatch.setattr(train, "_train_layer", start_up)
  before = [signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)]
  with pytest.raises(AssertionError, match="not ignored"):
    train.run(0, argparse.Namespace())
  assert saved == [True]
  assert [signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)] == before


def test_step_offset_of_checkpoints_with_and_without_one(tmp_path):
  import tensorflow as tf
  var = tf.Variable(1.0)
  tf.train.Checkpoint(a=var).write(str(tmp_path / "old"))  # before the offset
  assert train_folder.saved_step_offset(str(tmp_path / "old")) == 0
  offset = tf.Variable(24186, dtype=tf.int64)
  tf.train.Checkpoint(a=var, step_offset=offset).write(str(tmp_path / "new"))
  assert train_folder.saved_step_offset(str(tmp_path / "new")) == 24186


def test_offset_schedule_follows_the_run_step():
  import tensorflow as tf
  from sae.train.train_steps import OffsetSchedule
  inner = tf.keras.optimizers.schedules.PiecewiseConstantDecay([48000], [1.0, 0.1])
  offset = tf.Variable(47999, dtype=tf.int64)
  schedule = OffsetSchedule(inner, offset)
  assert float(schedule(tf.constant(0, tf.int64))) == 1.0
  assert float(schedule(tf.constant(2, tf.int64))) == pytest.approx(0.1)
