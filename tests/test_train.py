import argparse
import json
import types

from sae import distribute, train

CLUSTER = {"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": 1}}


def test_multi_worker_checkpoints_by_step(monkeypatch):
  monkeypatch.setenv("TF_CONFIG", json.dumps(CLUSTER))
  strategy = types.SimpleNamespace(cluster_resolver=object())
  assert distribute.num_workers(strategy) == 2
  assert not distribute.is_chief(strategy)
  args = argparse.Namespace(checkpoint_steps=None, checkpoint_every=1e-9)
  assert not train._checkpoint_due(999, 0.0, args, strategy)  # time is ignored
  assert train._checkpoint_due(1000, 0.0, args, strategy)


def test_one_worker_checkpoints_by_time(monkeypatch):
  monkeypatch.delenv("TF_CONFIG", raising=False)
  strategy = types.SimpleNamespace()
  assert distribute.num_workers(strategy) == 1 and distribute.is_chief(strategy)
  args = argparse.Namespace(checkpoint_steps=None, checkpoint_every=1e-9)
  assert train._checkpoint_due(7, 0.0, args, strategy)
  args.checkpoint_steps = 5
  assert not train._checkpoint_due(7, 0.0, args, strategy)
