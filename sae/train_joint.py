"""The joint fine-tuning phase: every layer of a trained model at once.

Layer-wise training (train_base.py .. train_el3.py) freezes a layer once the
next one starts, so no lower layer learns what would help the layers above.
This phase trains all of them together on the summed multi-rate loss
(sae.model.ScalableAutoEncoder.forward_joint), as scalable codecs trained
layer by layer are then fine-tuned end to end (Mei et al., "Learning-Based
Scalable Image Compression with Latent-Feature Reuse and Prediction", IEEE
Trans. Multimedia 2021).  It changes every layer, so it never writes into
the folder it starts from: the first run copies the weights into
``--out-dir``, and ``<out-dir>/joint/`` records the phase (its state.json,
curves and training state), which shipping copies into the manifest.
"""

import argparse
import pathlib
import time

import tensorflow as tf

from sae import checkpoints, data, distribute, train
from sae.config import get_preset, layer_name
from sae.errors import InputError
from sae.model import ScalableAutoEncoder
from sae.train_steps import joint_forward, layer_forward

FOLDER = checkpoints.JOINT_FOLDER  # the phase's record and training state


def run(args: argparse.Namespace) -> int:
  """Fine-tunes every layer of --checkpoint-dir into --out-dir; returns 0."""
  return train.interruptible(_train_joint, args)


def layers_label(k: int) -> str:
  """How results name the first k + 1 layers: base, +el1, .."""
  return "base" if k == 0 else f"+{layer_name(k)}"


def _train_joint(args) -> int:
  t_start = time.monotonic()
  source, out = pathlib.Path(args.checkpoint_dir), pathlib.Path(args.out_dir)
  strategy = distribute.get_strategy(args.distribute,
                                     getattr(args, "logical_cpus", None) or 0)
  if distribute.is_chief(strategy):
    _start_folder(source, out)
  config = checkpoints.read_config(out)
  n = len(config.layers)
  weights = layer_weights(args.layer_weights, n)
  folder = out / FOLDER
  state = checkpoints.read_record(folder)
  has_state = tf.train.latest_checkpoint(str(folder / "train")) is not None
  if not has_state and state.get("steps"):
    if not args.from_weights:
      raise InputError(
          f"{out} holds joint fine-tuning at step {state['steps']} but no "
          "training state to resume; continue from its weights with "
          "--from-weights")
  if state.get("layer_weights", weights) != weights:
    raise InputError(f"{out} is being fine-tuned with --layer-weights "
                     f"{','.join(map(str, state['layer_weights']))}; resuming "
                     "with others would mix two objectives")
  preset = get_preset(config.preset, config.metric, config.family)
  patch = args.patch_size or preset.patch_size
  batch = args.batch_size or preset.batch_size
  seed = None if args.seed is None else args.seed + int(state.get("steps", 0))
  with strategy.scope():
    model = ScalableAutoEncoder(config.layers, config.metric)
    for k, codec in enumerate(model.codecs):
      checkpoints.restore_weights(codec, out, k)
    # The coders' quantization offsets round what the layers above see as
    # decoding will (forward_joint); every layer then trains.
    model.prepare_for_coding()
    variables = model.set_trainable_layers(range(n))
  state.update(phase="joint fine-tuning", source=str(source),
               layer_weights=weights, metric=config.metric,
               specs=[spec.to_dict() for spec in config.layers])
  job = train.Job(
      name=FOLDER, folder=folder, state=state, model=model,
      trained=tuple(range(n)), frozen=(), variables=variables,
      forward=joint_forward(model, weights),
      validations={layers_label(k): layer_forward(model, k) for k in range(n)},
      dataset=data.training_dataset(args.corpus, patch, batch, seed=seed),
      learning_rate=args.learning_rate,
      resuming=has_state or bool(state.get("steps")),
      restore=lambda: None,  # every layer is restored from --out-dir above
      validate_at_start=True)
  return train.train(job, args, strategy, batch, patch, t_start)


def layer_weights(text, num_layers) -> list:
  """--layer-weights "1,1,2,1" -> [1.0, 1.0, 2.0, 1.0]; None: all 1."""
  if text is None:
    return [1.0] * num_layers
  try:
    values = [float(v) for v in text.split(",")]
  except ValueError:
    raise InputError(f"--layer-weights must be numbers separated by commas, "
                     f"got {text!r}") from None
  if len(values) != num_layers or min(values) < 0 or max(values) == 0:
    raise InputError(f"--layer-weights needs {num_layers} non-negative "
                     f"numbers, not all 0, got {text!r}")
  return values


def _start_folder(source, out) -> None:
  """Copies the trained layers of ``source`` into a new ``out`` with the
  phase's record, or checks that ``out`` is a joint fine-tuning of
  ``source`` to resume."""
  record = checkpoints.read_record(out / FOLDER)
  if out.exists():
    if record.get("source") is None:
      raise InputError(f"{out} exists and is not a joint fine-tuning folder; "
                       "name a new --out-dir")
    if pathlib.Path(record["source"]).resolve() != source.resolve():
      raise InputError(f"{out} fine-tunes {record['source']}, not {source}")
    return
  have = checkpoints.available_layers(source)
  if have < 2:
    raise InputError(f"{source} holds {have} trained layer(s); joint "
                     "fine-tuning needs at least base and el1")
  checkpoints.copy_layers(source, out, before_rename=lambda building: (
      checkpoints.write_record(building / FOLDER,
                               {"source": str(source), "steps": 0})))
