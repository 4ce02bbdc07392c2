"""Training one layer of the cascade, with the layers below restored and frozen.

The loop is here; the checkpoint folder's rules are in sae.train_folder, the
traced step and validation in sae.train_steps, the curves in sae.train_log.
"""

import argparse
import json
import math
import pathlib
import shutil
import signal
import sys
import tempfile
import time

from absl import logging
import tensorflow as tf
import tqdm

from sae import checkpoints, data, distribute, train_folder
from sae.config import get_preset, layer_name
from sae.errors import InputError
from sae.model import ScalableAutoEncoder
from sae.train_log import TrainLog
from sae.train_steps import (OffsetSchedule, make_train_step, make_validation,
                             steps_done)

LOG_EVERY = 100


# Above this, enhancement layers compute the lower layers on every crop
# instead of keeping whole-image reconstructions in memory.
RESIDUAL_CACHE_LIMIT = 6 * 2 ** 30


def _dataset(args, k, model, patch, batch, seed):
  """Image crops for the base; [image, lower reconstruction] crops for ELs."""
  if k > 0 and args.lower_cache != "off":
    size = data.residual_dataset_bytes(args.corpus, patch)
    if args.lower_cache == "on" or size <= RESIDUAL_CACHE_LIMIT:
      return data.residual_training_dataset(
          args.corpus, patch, batch, model.lower_of_image(k), seed,
          progress=args.progress)
    logging.warning("corpus needs %.1f GiB as residuals: computing the lower "
                    "layers per crop instead", size / 2 ** 30)
  return data.training_dataset(args.corpus, patch, batch, seed=seed)


def run(k: int, args: argparse.Namespace) -> int:
  """Trains layer ``k`` for ``args.steps`` total steps (resuming); returns 0.

  SIGTERM (a scheduler's stop) is Ctrl-C from the start, so a stop during
  start-up (restoring and coding the lower layers takes minutes) also ends
  with the interrupted status; once training runs, it saves first.
  """
  previous_handler = signal.signal(signal.SIGTERM, _raise_interrupt)
  try:
    return _train(k, args)
  finally:
    signal.signal(signal.SIGTERM, previous_handler)


def _train(k: int, args: argparse.Namespace) -> int:
  # Wall time counts start-up too (restoring and coding the lower layers).
  t_start = time.monotonic()
  config = train_folder.resolve_config(args, k)
  preset = get_preset(args.preset, args.metric, config.family)
  patch = args.patch_size or preset.patch_size
  batch = args.batch_size or preset.batch_size
  root = pathlib.Path(args.checkpoint_dir)
  strategy = distribute.get_strategy(args.distribute,
                                     getattr(args, "logical_cpus", None) or 0)
  chief = distribute.is_chief(strategy)
  # Non-chief workers write to a throwaway folder (tf.distribute convention).
  write_root = root if chief else pathlib.Path(tempfile.mkdtemp())
  if chief:
    checkpoints.write_config(root, train_folder.merged_config(root, config))

  state = checkpoints.read_state(root, k)
  # Written by older versions, before ids covered the coding tables; the
  # manifest of shipped weights holds the id streams carry.
  state.pop("weights_id", None)
  resuming = train_folder.resumes(args, root, k)
  # The decay step is fixed by the first run: extending --steps later must
  # not raise the learning rate again.
  boundary = state.get("schedule", {}).get("decay_at_step") if resuming else None
  if boundary is None:
    boundary = int(args.steps * args.lr_decay_at)
  # A resumed run must not replay the crops of the first one.
  seed = None if args.seed is None else args.seed + int(state.get("steps", 0))
  spec = config.layers[k]
  with strategy.scope():
    model = ScalableAutoEncoder(config.layers, config.metric)
    for j in range(k):
      checkpoints.restore_weights(model.codecs[j], root, j)
      # Fixed tables and quantization offsets: the residual is then exactly
      # the one the coder will see.
      model.codecs[j].prepare_for_coding()
    variables = model.set_trainable_layer(k)
    schedule = tf.keras.optimizers.schedules.PiecewiseConstantDecay(
        [boundary], [spec.learning_rate, spec.learning_rate * 0.1])
    # Steps taken before Adam last started afresh (--from-weights).
    offset = tf.Variable(0, dtype=tf.int64, trainable=False, name="step_offset")
    optimizer = tf.keras.optimizers.Adam(OffsetSchedule(schedule, offset))
    optimizer.build(variables)
  lower_before = [c.digest() for c in model.codecs[:k]]
  dataset = _dataset(args, k, model, patch, batch, seed)
  dist_dataset = strategy.experimental_distribute_dataset(dataset)
  recorded = state.get("lower_layer_sha256_before")
  if resuming and recorded is not None and recorded != lower_before:
    raise InputError(f"the layers below {layer_name(k)} in {root} changed "
                     "since its training started; its checkpoint is stale")
  state.update(lower_layer_sha256_before=lower_before,
               schedule={"learning_rate": spec.learning_rate, "decay_to": 0.1,
                         "decay_at_step": boundary})

  train_ckpt = checkpoints.layer_checkpoint(model.codecs[k], optimizer=optimizer,
                                            step_offset=offset)
  manager = tf.train.CheckpointManager(
      train_ckpt, str(checkpoints.layer_dir(write_root, k) / "train"),
      max_to_keep=2)
  # Every worker resumes from the chief's checkpoint, or replicas diverge.
  latest = tf.train.latest_checkpoint(
      str(checkpoints.layer_dir(root, k) / "train"))
  if latest:
    # Without the offset, which checkpoints older than it lack (read apart).
    checkpoints.layer_checkpoint(model.codecs[k], optimizer=optimizer).restore(
        latest).assert_existing_objects_matched()
    offset.assign(train_folder.saved_step_offset(latest))
    logging.info("resumed %s at step %d", layer_name(k),
                 steps_done(optimizer, offset))
  elif resuming:  # --from-weights: Adam's moments are lost with train/
    checkpoints.restore_weights(model.codecs[k], root, k)
    offset.assign(state["steps"])
    state.setdefault("adam_restarted_at_steps", []).append(state["steps"])
    if chief:
      print(f"continuing {layer_name(k)} from its weights at step "
            f"{state['steps']}, with Adam started afresh", file=sys.stderr)
  elapsed = state.get("train_seconds", 0.0)

  # Said once, so a user sees whether the GPU they installed is used.
  devices = [d.split("device:")[-1] for d in distribute.device_names(strategy)]
  if chief:
    print(f"training {layer_name(k)} on {', '.join(devices)} of this machine "
          f"({strategy.num_replicas_in_sync} replica"
          f"{'s' if strategy.num_replicas_in_sync > 1 else ''} in all)",
          file=sys.stderr)
  train_step = make_train_step(model, k, variables, optimizer, strategy, batch,
                               jit_compile=args.jit)

  log = TrainLog(checkpoints.layer_dir(write_root, k), chief)
  val_batches = data.validation_batches(args.corpus, patch, 8)
  validate = make_validation(model, k)
  start = steps_done(optimizer, offset)
  if start >= args.steps:  # nothing to train: start-up is not training time
    t_start = time.monotonic()
  bar = tqdm.tqdm(total=args.steps, initial=start, desc=f"train {layer_name(k)}",
                  disable=not args.progress, dynamic_ncols=True)
  iterator = iter(dist_dataset)
  running, t_ckpt, t0 = [], time.monotonic(), t_start

  def save(elapsed, t0):
    return train_folder.save(manager, optimizer, offset, model, write_root, k,
                             state, elapsed, t0)

  # Ctrl-C or SIGTERM (see run) saves before leaving.
  try:
    for step in range(start, args.steps):
      values = train_step(next(iterator)).numpy()
      if not all(math.isfinite(v) for v in values):
        raise FloatingPointError(
            f"loss became {values[0]} at step {step}; resume from the last "
            f"checkpoint in {manager.directory} with a lower --learning-rate")
      running.append(values)
      bar.update(1)
      if (step + 1) % LOG_EVERY == 0 or step + 1 == args.steps:
        state["last"] = last = log.training(
            step + 1, running, float(schedule(step)),
            elapsed + time.monotonic() - t0)
        bar.set_postfix(loss=f"{last['loss']:.4f}", bpp=f"{last['bpp']:.4f}",
                        psnr=f"{last['psnr']:.2f}")
        running = []
      if args.validate_every and ((step + 1) % args.validate_every == 0
                                  or step + 1 == args.steps):
        val = validate(val_batches)
        state["validation"] = {"step": step + 1, **val}
        log.validation(step + 1, val)
      if train_folder.checkpoint_due(step + 1, t_ckpt, args, strategy):
        elapsed = save(elapsed, t0)
        t0 = t_ckpt = time.monotonic()
  except KeyboardInterrupt:
    bar.close()
    save(elapsed, t0)
    raise
  bar.close()
  elapsed = save(elapsed, t0)

  lower_after = [c.digest() for c in model.codecs[:k]]
  if lower_after != lower_before:
    raise RuntimeError("a frozen lower layer changed during training")
  state.update(
      finished=steps_done(optimizer, offset) >= args.steps,
      steps=steps_done(optimizer, offset), batch_size=batch, patch_size=patch,
      spec=spec.to_dict(), metric=config.metric, corpus=str(args.corpus),
      num_replicas=strategy.num_replicas_in_sync, devices=devices,
      lower_layer_sha256_after=lower_after,
      weights_sha256=model.codecs[k].digest())
  if chief:
    checkpoints.write_state(root, k, state)
  else:
    shutil.rmtree(write_root, ignore_errors=True)
  print(json.dumps({"layer": layer_name(k), **state.get("last", {}),
                    "train_seconds": round(elapsed, 1)}))
  return 0


def _raise_interrupt(signum, frame):
  raise KeyboardInterrupt
