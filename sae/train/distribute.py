"""Choosing a tf.distribute strategy from a flag.

- ``none``: the default strategy (one device; CPU or one GPU).
- ``mirrored``: every GPU of this machine (or logical CPU devices in tests).
- ``multi-worker``: several machines, configured by the ``TF_CONFIG``
  environment variable; the global batch is split across all replicas.
"""

import json
import os

import tensorflow as tf

STRATEGIES = ("none", "mirrored", "multi-worker")


def get_strategy(name: str, logical_cpus: int = 0) -> tf.distribute.Strategy:
  """The strategy called ``name``.

  Args:
    logical_cpus: split the CPU into this many logical devices first (0:
      don't), so ``mirrored`` can be run and tested without GPUs; must be
      called before TensorFlow initializes its devices.
  """
  if logical_cpus:
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * logical_cpus)
  if name == "none":
    return tf.distribute.get_strategy()
  if name == "mirrored":
    if logical_cpus and not tf.config.list_physical_devices("GPU"):
      return tf.distribute.MirroredStrategy(
          [f"/cpu:{i}" for i in range(logical_cpus)])
    return tf.distribute.MirroredStrategy()
  if name == "multi-worker":
    return tf.distribute.MultiWorkerMirroredStrategy()
  raise ValueError(f"--distribute must be one of {STRATEGIES}, got {name!r}")


def device_names(strategy: tf.distribute.Strategy) -> list:
  """The devices this process trains on."""
  try:
    return list(strategy.extended.worker_devices)
  except RuntimeError:  # the default strategy: TensorFlow's own placement
    gpus = tf.config.list_logical_devices("GPU")
    return [(gpus or tf.config.list_logical_devices("CPU"))[0].name]


def is_chief(strategy: tf.distribute.Strategy) -> bool:
  """Only the chief writes checkpoints, logs and weights."""
  resolver = getattr(strategy, "cluster_resolver", None)
  if resolver is None or not os.environ.get("TF_CONFIG"):
    return True
  task = json.loads(os.environ["TF_CONFIG"]).get("task", {})
  kind, index = task.get("type", "worker"), task.get("index", 0)
  return kind == "chief" or (kind == "worker" and index == 0 and not any(
      t == "chief" for t in json.loads(os.environ["TF_CONFIG"])
      .get("cluster", {})))


def num_workers(strategy: tf.distribute.Strategy) -> int:
  """Machines taking part (1 unless multi-worker with a TF_CONFIG cluster)."""
  resolver = getattr(strategy, "cluster_resolver", None)
  if resolver is None or not os.environ.get("TF_CONFIG"):
    return 1
  cluster = json.loads(os.environ["TF_CONFIG"]).get("cluster", {})
  return sum(len(v) for k, v in cluster.items() if k in ("chief", "worker"))
