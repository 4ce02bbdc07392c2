"""The rules of a training checkpoint folder: which layer table a run may
train there, when it saves, and what it writes (sae.checkpoints has the
folder's layout)."""

import dataclasses
import pathlib
import time

import tensorflow as tf

from sae import checkpoints
from sae.train import distribute
from sae.models import families
from sae.config import DEFAULT_FAMILY, ModelConfig, layer_name
from sae.errors import InputError
from sae.models.transforms import TOTAL_STRIDE


def resolve_config(args, k) -> ModelConfig:
  """The layer table for this run, checked against what the folder holds."""
  root = pathlib.Path(args.checkpoint_dir)
  config_path = root / checkpoints.CONFIG_FILE
  saved = checkpoints.read_config(root) if config_path.is_file() else None
  family = _family(args, saved)
  preset = families.get(family).preset(args.preset, args.metric)
  specs = list(preset.layers)
  if k >= len(specs):
    raise InputError(f"preset {args.preset!r} has no layer {k}")
  if args.lmbda is not None:
    specs[k] = dataclasses.replace(specs[k], lmbda=args.lmbda)
  if args.learning_rate is not None:
    specs[k] = dataclasses.replace(specs[k], learning_rate=args.learning_rate)
  if args.conv_filters is not None:
    specs[k] = dataclasses.replace(specs[k], conv_filters=args.conv_filters)
  if saved is not None:
    if saved.metric != args.metric:
      raise InputError(f"{root} was trained with --metric {saved.metric}, "
                       f"not {args.metric}")
    # Layers already on disk keep their recorded specs; they must have the
    # preset's latent channels (their kind is the family's, checked above
    # and by read_config; their width may be their own: --conv-filters).
    for i, (have, want) in enumerate(zip(saved.layers[:k + 1], specs)):
      if have.latent_channels != want.latent_channels:
        raise InputError(
            f"{layer_name(i)} in {root} has {have.latent_channels} latent "
            f"channels; preset {args.preset!r} has "
            f"{want.latent_channels} there")
    specs[:k] = saved.layers[:k]
    if resumes(args, root, k) and k < len(saved.layers):
      recorded = saved.layers[k]
      for flag, name in (("lmbda", "--lambda"),
                         ("learning_rate", "--learning-rate"),
                         ("conv_filters", "--conv-filters")):
        given = getattr(args, flag, None)
        if given is not None and given != getattr(recorded, flag):
          raise InputError(
              f"{layer_name(k)} in {root} is being trained with {name} "
              f"{getattr(recorded, flag)}; resuming with {given} would mix "
              "two objectives (use another --checkpoint-dir)")
      specs[k] = recorded
  if (families.get(family).shared_width and k > 0 and
      specs[k].kind == "nested"):
    if specs[k].conv_filters != specs[0].conv_filters:
      if args.conv_filters is not None:
        raise InputError(f"--conv-filters {args.conv_filters}: a {family} "
                         "enhancement layer has the base's width, "
                         f"{specs[0].conv_filters}")
      specs[k] = dataclasses.replace(specs[k],
                                     conv_filters=specs[0].conv_filters)
  if args.patch_size is not None:
    checked_patch_size(args.patch_size)
  from_weights = getattr(args, "from_weights", False)
  if checkpoints.has_weights(root, k) and not has_training_state(root, k):
    if from_weights and checkpoints.is_shipped(root):
      raise InputError(
          f"{root} is a shipped weights folder (its tables and manifest "
          "would go stale): copy its layers with tools/fork_weights.py and "
          "continue there")
    if not from_weights:
      raise InputError(
          f"{layer_name(k)} in {root} has weights but no training state to "
          "resume; continue from its weights with --from-weights, or train "
          "into another --checkpoint-dir")
    if "steps" not in checkpoints.read_state(root, k):
      raise InputError(f"--from-weights: {layer_name(k)} in {root} has no "
                       "state.json step count to continue from")
  elif from_weights and not checkpoints.has_weights(root, k):
    raise InputError(f"--from-weights: {layer_name(k)} in {root} has no "
                     "weights to continue from")
  if checkpoints.has_weights(root, k + 1):
    raise InputError(
        f"{layer_name(k + 1)} in {root} was trained on top of "
        f"{layer_name(k)}; training {layer_name(k)} further would leave it "
        "stale (use another --checkpoint-dir)")
  for j in range(k):
    if not checkpoints.has_weights(root, j):
      raise InputError(
          f"layer {j} ({layer_name(j)}) has no weights in {root}: run "
          f"train_{layer_name(j)}.py --checkpoint-dir {root} first")
  return ModelConfig(tuple(specs[:k + 1]), args.metric, args.preset, family)


def _family(args, saved) -> str:
  """--family, else the folder's, else the paper's model."""
  given = getattr(args, "family", None)
  if saved is not None and given is not None and given != saved.family:
    raise InputError(f"{args.checkpoint_dir} holds the {saved.family} family, "
                     f"not {given} (use another --checkpoint-dir)")
  return given or (saved.family if saved is not None else DEFAULT_FAMILY)



def has_training_state(root, k) -> bool:
  return has_state_in(checkpoints.layer_dir(root, k))


def has_state_in(folder) -> bool:
  """Whether a run's folder (a layer's, or joint/) holds training state."""
  return tf.train.latest_checkpoint(str(pathlib.Path(folder) / "train")) is not None


def checked_patch_size(patch: int) -> int:
  if patch % TOTAL_STRIDE:
    raise InputError(f"--patch-size must be a multiple of {TOTAL_STRIDE}, "
                     f"got {patch}")
  return patch


def resumes(args, root, k) -> bool:
  """Whether this run continues layer k: from its training state, or from
  its weights alone (--from-weights; resolve_config checked they exist)."""
  return has_training_state(root, k) or (
      getattr(args, "from_weights", False) and checkpoints.has_weights(root, k))


# Where train.py's checkpoint keeps its step offset (its attribute name).
STEP_OFFSET_KEY = "step_offset/.ATTRIBUTES/VARIABLE_VALUE"


def saved_step_offset(path) -> int:
  """The steps before Adam last started afresh, as a training checkpoint
  records them (0 in checkpoints written before --from-weights existed)."""
  names = {name for name, _ in tf.train.list_variables(path)}
  if STEP_OFFSET_KEY not in names:
    return 0
  return int(tf.train.load_variable(path, STEP_OFFSET_KEY))



def checkpoint_due(steps_done, last_time, args, strategy) -> bool:
  """Time-based on one worker; step-based across workers, which must all
  save at the same step (saving is a collective operation there)."""
  every_steps = args.checkpoint_steps
  if every_steps is None and distribute.num_workers(strategy) > 1:
    every_steps = 1000
  if every_steps is not None:
    return steps_done % every_steps == 0
  return time.monotonic() - last_time > args.checkpoint_every


def save(manager, step, model, root, layers, folder, state, elapsed, t0):
  """Saves the training state, the weights of ``layers`` into ``root`` and
  ``folder``'s state.json; returns the updated training seconds.

  Refuses to save weights that are no longer finite (a finite loss can
  follow a NaN gradient by a step), so the last checkpoint stays usable.
  """
  for k in layers:
    if not all(bool(tf.reduce_all(tf.math.is_finite(v)))
               for v in model.codecs[k].weight_variables):
      raise FloatingPointError(
          f"{layer_name(k)}'s weights are no longer finite at step {step}; "
          f"not saved. Resume from the last checkpoint in {manager.directory} "
          "with a lower --learning-rate")
  elapsed += time.monotonic() - t0
  manager.save(checkpoint_number=step)
  for k in layers:
    checkpoints.save_weights(model.codecs[k], root, k)
  state["train_seconds"] = round(elapsed, 1)
  state["steps"] = step
  checkpoints.write_record(folder, state)
  return elapsed


def merged_config(root, config: ModelConfig) -> ModelConfig:
  """Keeps specs of layers above ``config`` that the folder already records."""
  path = pathlib.Path(root) / checkpoints.CONFIG_FILE
  if not path.is_file():
    return config
  saved = checkpoints.read_config(root)
  layers = config.layers + saved.layers[len(config.layers):]
  return dataclasses.replace(config, layers=layers)
