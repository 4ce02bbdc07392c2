"""The joint fine-tuning phase: every layer of a trained model at once.

Layer-wise training (train_base.py .. train_el3.py) freezes a layer once the
next one starts, so no lower layer learns what would help the layers above.
This phase trains all of them together on the summed multi-rate loss
(sae.models.model.ScalableAutoEncoder.forward_joint), as scalable codecs trained
layer by layer are then fine-tuned end to end (Mei et al., "Learning-Based
Scalable Image Compression with Latent-Feature Reuse and Prediction", IEEE
Trans. Multimedia 2021); for the nested family, the analysis and the four
syntheses on each prefix's loss (NestedAutoEncoder.forward_joint).  It
changes every layer, so it never writes into the folder it starts from: the
first run copies the weights into ``--out-dir``, and ``<out-dir>/joint/``
records the phase (its state.json, curves and training state), which
shipping copies into the manifest.
"""

import argparse
import math
import pathlib
import time

from sae import checkpoints
from sae.train import data, distribute, train, train_folder
from sae.models import families
from sae.config import layers_label
from sae.errors import InputError
from sae.train.train_steps import decoded_forward, joint_forward

FOLDER = checkpoints.JOINT_FOLDER  # the phase's record and training state
DEFAULT_LEARNING_RATE = 1e-4


def run(args: argparse.Namespace) -> int:
  """Fine-tunes every layer of --checkpoint-dir into --out-dir; returns 0."""
  return train.interruptible(_train_joint, args)


def _train_joint(args) -> int:
  t_start = time.monotonic()
  source, out = pathlib.Path(args.checkpoint_dir), pathlib.Path(args.out_dir)
  strategy = distribute.get_strategy(args.distribute,
                                     getattr(args, "logical_cpus", None) or 0)
  if distribute.num_workers(strategy) > 1:
    raise InputError("the joint phase trains on one machine: --distribute "
                     "none or mirrored")
  # Everything is checked before --out-dir is made.
  folder = out / FOLDER
  state = _resumable_state(source, out)
  config = checkpoints.read_config(out if state else source)
  n = len(config.layers) if state else checkpoints.finished_layers(source)
  if n < 2:
    raise InputError(f"{source} holds {n} finished layer(s); joint "
                     "fine-tuning needs at least base and el1")
  config = config.prefix(n)
  weights = layer_weights(args.layer_weights, n)
  if state.get("layer_weights", weights) != weights:
    raise InputError(f"{out} is being fine-tuned with --layer-weights "
                     f"{','.join(map(str, state['layer_weights']))}; resuming "
                     "with others would mix two objectives")
  recorded_lr = state.get("schedule", {}).get("learning_rate")
  if None not in (recorded_lr, args.learning_rate) and (
      recorded_lr != args.learning_rate):
    raise InputError(f"{out} is being fine-tuned with --learning-rate "
                     f"{recorded_lr}; resuming with {args.learning_rate} would "
                     "mix two schedules")
  learning_rate = recorded_lr or args.learning_rate or DEFAULT_LEARNING_RATE
  has_state = train_folder.has_state_in(folder)
  if not has_state and state.get("steps") and not args.from_weights:
    raise InputError(
        f"{out} holds joint fine-tuning at step {state['steps']} but no "
        "training state to resume; continue from its weights with "
        "--from-weights")
  preset = families.get(config.family).preset(config.preset, config.metric)
  patch = train_folder.checked_patch_size(args.patch_size or preset.patch_size)
  batch = args.batch_size or preset.batch_size
  data.check_corpus(args.corpus, patch)
  if not state:
    checkpoints.copy_layers(
        source, out, n, joint_record=False,
        before_rename=lambda building: checkpoints.write_record(
            building / FOLDER, {"source": str(source.resolve()), "steps": 0}))
    state = checkpoints.read_record(folder)

  seed = None if args.seed is None else args.seed + int(state.get("steps", 0))
  with strategy.scope():
    model = families.build_model(config)
    for k, codec in enumerate(model.codecs):
      checkpoints.restore_weights(codec, out, k)
    # Rounding as the coder does (forward_joint) takes the quantization
    # offsets of the phase's start: fine-tuning moves the priors little, and
    # shipping rebuilds offsets and tables from the final ones.
    model.prepare_for_coding()
    variables = model.set_trainable_layers(range(n))
  state.update(phase="joint fine-tuning", layer_weights=weights,
               metric=config.metric,
               specs=[spec.to_dict() for spec in config.layers])
  job = train.Job(
      name=FOLDER, folder=folder, state=state, model=model,
      trained=tuple(range(n)), frozen=(), variables=variables,
      forward=joint_forward(model, weights),
      validations={layers_label(k): decoded_forward(model, k)
                   for k in range(n)},
      dataset=data.training_dataset(args.corpus, patch, batch, seed=seed),
      learning_rate=learning_rate,
      resuming=has_state or bool(state.get("steps")),
      restore=lambda: None,  # every layer is restored from --out-dir above
      validate_at_start=True)
  return train.train(job, args, strategy, batch, patch, t_start)


def _resumable_state(source, out) -> dict:
  """The phase's record in an ``out`` that fine-tunes ``source`` ({} when
  ``out`` does not exist yet)."""
  if not out.exists():
    return {}
  record = checkpoints.read_record(out / FOLDER)
  if record.get("source") is None:
    raise InputError(f"{out} exists and is not a joint fine-tuning folder; "
                     "name a new --out-dir")
  if pathlib.Path(record["source"]).resolve() != source.resolve():
    raise InputError(f"{out} fine-tunes {record['source']}, not {source}")
  return record


def layer_weights(text, num_layers) -> list:
  """--layer-weights "1,1,2,1" -> [1.0, 1.0, 2.0, 1.0]; None: all 1."""
  if text is None:
    return [1.0] * num_layers
  try:
    values = [float(v) for v in text.split(",")]
  except ValueError:
    raise InputError(f"--layer-weights must be numbers separated by commas, "
                     f"got {text!r}") from None
  if (len(values) != num_layers or not all(map(math.isfinite, values))
      or min(values) < 0 or max(values) == 0):
    raise InputError(f"--layer-weights needs {num_layers} non-negative "
                     f"numbers, not all 0, got {text!r}")
  return values
