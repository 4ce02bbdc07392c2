"""Per-layer, object-based checkpoints and self-describing weight folders.

A weights folder (a training checkpoint directory or the shipped
``weights/mse``) looks like::

    config.json            layer specs (sae.config.ModelConfig)
    base/weights.*         weights-only checkpoint of layer 0
    base/state.json        training record: steps, schedule, time, weights_id
    base/train/ckpt-N.*    resumable training state (layer + optimizer)
    el1/...

so evaluation and the CLI need no ``--preset``.  Each layer's identifier is a
hash chained over its own weights and the identifiers below it, so a stream
chunk is refused by any decoder whose layers 0..k differ from the encoder's.
"""

import json
import pathlib

import tensorflow as tf

from sae.config import ModelConfig, layer_name
from sae.errors import InputError
from sae.layer import LayerCodec

CONFIG_FILE = "config.json"
DEFAULT_WEIGHTS = pathlib.Path(__file__).resolve().parent.parent / "weights" / "mse"


def layer_dir(root, k) -> pathlib.Path:
  return pathlib.Path(root) / layer_name(k)


def weights_prefix(root, k) -> str:
  return str(layer_dir(root, k) / "weights")


def has_weights(root, k) -> bool:
  return pathlib.Path(weights_prefix(root, k) + ".index").exists()


def layer_checkpoint(codec: LayerCodec, **extra) -> tf.train.Checkpoint:
  """The objects that make up one layer (plus training state in ``extra``)."""
  return tf.train.Checkpoint(analysis=codec.analysis,
                             synthesis=codec.synthesis, prior=codec.prior,
                             **extra)


def save_weights(codec: LayerCodec, root, k) -> None:
  layer_dir(root, k).mkdir(parents=True, exist_ok=True)
  layer_checkpoint(codec).write(weights_prefix(root, k))


def restore_weights(codec: LayerCodec, root, k) -> None:
  if not has_weights(root, k):
    raise InputError(f"{root}: no weights for layer {k} ({layer_name(k)})")
  status = layer_checkpoint(codec).read(weights_prefix(root, k))
  status.assert_existing_objects_matched().expect_partial()


def read_config(root) -> ModelConfig:
  path = pathlib.Path(root) / CONFIG_FILE
  if not path.is_file():
    raise InputError(f"{str(root)!r} is not a weights folder (no {CONFIG_FILE})")
  return ModelConfig.from_json(path.read_text())


def write_config(root, config: ModelConfig) -> None:
  pathlib.Path(root).mkdir(parents=True, exist_ok=True)
  (pathlib.Path(root) / CONFIG_FILE).write_text(config.to_json() + "\n")


def read_state(root, k) -> dict:
  path = layer_dir(root, k) / "state.json"
  return json.loads(path.read_text()) if path.is_file() else {}


def write_state(root, k, state: dict) -> None:
  layer_dir(root, k).mkdir(parents=True, exist_ok=True)
  path = layer_dir(root, k) / "state.json"
  tmp = path.with_suffix(".tmp")
  tmp.write_text(json.dumps(state, indent=2, sort_keys=True) + "\n")
  tmp.replace(path)


def available_layers(root) -> int:
  """Number of consecutive layers 0..n-1 with weights in ``root``."""
  config = read_config(root)
  n = 0
  while n < len(config.layers) and has_weights(root, n):
    n += 1
  return n


def load_model(root=None, num_layers=None):
  """Builds the model a weights folder describes, ready for coding.

  Args:
    root: weights folder or training checkpoint directory (default: shipped).
    num_layers: layers to load (default: all with weights).

  Returns:
    A ScalableAutoEncoder with tables built and restored weights.
  """
  from sae.model import ScalableAutoEncoder  # model imports losses/metrics
  root = pathlib.Path(root) if root is not None else DEFAULT_WEIGHTS
  config = read_config(root)
  have = available_layers(root)
  if have == 0:
    raise InputError(f"{str(root)!r} holds no trained layer")
  if num_layers is None:
    num_layers = have
  if not 1 <= num_layers <= have:
    raise InputError(f"--layers must be in 1..{have} for {str(root)!r}, "
                     f"got {num_layers}")
  model = ScalableAutoEncoder(config.layers[:num_layers], config.metric)
  for k, codec in enumerate(model.codecs):
    restore_weights(codec, root, k)
  model.prepare_for_coding()
  return model
