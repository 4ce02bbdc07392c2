"""Training one layer of the cascade, with the layers below restored and frozen.

The loop (``train``) also runs the joint fine-tuning phase (sae.train.train_joint);
the checkpoint folder's rules are in sae.train.train_folder, the traced step and
validation in sae.train.train_steps, the curves in sae.train.train_log.
"""

import argparse
import contextlib
import dataclasses
import json
import math
import pathlib
import shutil
import signal
import sys
import tempfile
import time
from typing import Callable, Optional

from absl import logging
import tensorflow as tf
import tqdm

from sae import checkpoints
from sae.train import data, distribute, train_folder
from sae.models import families
from sae.config import layer_name
from sae.errors import InputError
from sae.models.base import Finish, LayeredModel
from sae.train.train_log import TrainLog
from sae.train.train_steps import (OffsetSchedule, layer_forward, make_train_step,
                             make_validation, steps_done)

LOG_EVERY = 100


# Above this, enhancement layers compute the lower layers on every crop
# instead of keeping whole-image reconstructions in memory.
RESIDUAL_CACHE_LIMIT = 6 * 2 ** 30


@dataclasses.dataclass
class Job:
  """What one training run trains; the loop (``train``) is the same for all.

  The model and ``variables`` are created in ``strategy``'s scope by the
  caller, ``restore`` puts the trained layers' saved weights back when a
  run continues from weights alone (--from-weights).
  """

  name: str                    # "el1", or "joint": messages and progress
  folder: pathlib.Path         # train/, logs, log.csv, val.csv, state.json
  state: dict                  # the folder's state.json, updated by the run
  model: LayeredModel
  trained: tuple               # indexes of the layers whose weights change
  frozen: tuple                # indexes of the layers checked unchanged
  variables: list
  forward: Callable            # batch -> model.CascadeOutput (train_steps)
  validations: dict            # row label ("" for a layer) -> forward
  dataset: tf.data.Dataset
  learning_rate: float
  resuming: bool               # continues a run (its state or its weights)
  restore: Callable            # weights-only resume
  validate_at_start: bool = False  # a fine-tuning's starting point (step 0)
  finish: Optional[Finish] = None  # the run's last part, when it differs


def _dataset(args, k, model, patch, batch, seed):
  """Image crops for the base; [image, lower reconstruction] crops for ELs."""
  lower = model.lower_of_image(k) if k > 0 else None
  if lower is not None and args.lower_cache != "off":
    size = data.residual_dataset_bytes(args.corpus, patch)
    if args.lower_cache == "on" or size <= RESIDUAL_CACHE_LIMIT:
      return data.residual_training_dataset(
          args.corpus, patch, batch, lower, seed, progress=args.progress)
    logging.warning("corpus needs %.1f GiB as residuals: computing the lower "
                    "layers per crop instead", size / 2 ** 30)
  return data.training_dataset(args.corpus, patch, batch, seed=seed)


def run(k: int, args: argparse.Namespace) -> int:
  """Trains layer ``k`` for ``args.steps`` total steps (resuming); returns 0."""
  return interruptible(_train_layer, k, args)


def interruptible(fn, *args) -> int:
  """Runs ``fn`` with SIGTERM (a scheduler's stop) as Ctrl-C from the start,
  so a stop during start-up (restoring and coding the lower layers takes
  minutes) also ends with the interrupted status; once training runs, it
  saves first."""
  previous_handler = signal.signal(signal.SIGTERM, _raise_interrupt)
  try:
    return fn(*args)
  finally:
    signal.signal(signal.SIGTERM, previous_handler)


def _train_layer(k: int, args: argparse.Namespace) -> int:
  # Wall time counts start-up too (restoring and coding the lower layers).
  t_start = time.monotonic()
  config = train_folder.resolve_config(args, k)
  preset = families.get(config.family).preset(args.preset, args.metric)
  patch = args.patch_size or preset.patch_size
  batch = args.batch_size or preset.batch_size
  root = pathlib.Path(args.checkpoint_dir)
  strategy = distribute.get_strategy(args.distribute,
                                     getattr(args, "logical_cpus", None) or 0)
  data.check_corpus(args.corpus, patch)  # before the folder gets anything
  if distribute.is_chief(strategy):
    checkpoints.write_config(root, train_folder.merged_config(root, config))

  state = checkpoints.read_state(root, k)
  # Written by older versions, before ids covered the coding tables; the
  # manifest of shipped weights holds the id streams carry.
  state.pop("weights_id", None)
  resuming = train_folder.resumes(args, root, k)
  # A resumed run must not replay the crops of the first one.
  seed = None if args.seed is None else args.seed + int(state.get("steps", 0))
  spec = config.layers[k]
  with strategy.scope():
    model = families.build_model(
        families.training_config(config, preset.layers))
    for j in range(k):
      checkpoints.restore_weights(model.codecs[j], root, j)
      # Fixed tables and quantization offsets: the residual is then exactly
      # the one the coder will see.
      model.codecs[j].prepare_for_coding()
    if not resuming:
      model.start_layer(k)
    variables = model.set_trainable_layer(k)
  job = Job(
      name=layer_name(k), folder=checkpoints.layer_dir(root, k), state=state,
      model=model, trained=(k,), frozen=tuple(range(k)), variables=variables,
      forward=layer_forward(model, k),
      validations=model.layer_validations(k, layer_forward(model, k)),
      dataset=_dataset(args, k, model, patch, batch, seed),
      learning_rate=spec.learning_rate, resuming=resuming,
      restore=lambda: checkpoints.restore_weights(model.codecs[k], root, k),
      finish=model.finish(k))
  state.update(spec=spec.to_dict(), metric=config.metric)
  return train(job, args, strategy, batch, patch, t_start)


def train(job: Job, args, strategy, batch, patch, t_start) -> int:
  """Trains ``job`` to ``args.steps`` total steps (resuming); returns 0."""
  root = pathlib.Path(args.checkpoint_dir)
  chief = distribute.is_chief(strategy)
  # Non-chief workers write to a throwaway folder (tf.distribute convention).
  scratch = None if chief else pathlib.Path(tempfile.mkdtemp())
  folder = job.folder if chief else scratch / job.folder.name
  write_root = job.folder.parent if chief else scratch
  state, model = job.state, job.model
  # The decay step is fixed by the first run: extending --steps later must
  # not raise the learning rate again.
  schedule_before = state.get("schedule", {}) if job.resuming else {}
  boundary = schedule_before.get("decay_at_step",
                                 int(args.steps * args.lr_decay_at))
  lr = job.learning_rate
  with strategy.scope():
    schedule = tf.keras.optimizers.schedules.PiecewiseConstantDecay(
        [boundary], [lr, lr * 0.1])
    # Steps taken before Adam last started afresh (--from-weights).
    offset = tf.Variable(0, dtype=tf.int64, trainable=False, name="step_offset")
    optimizer = tf.keras.optimizers.Adam(OffsetSchedule(schedule, offset))
    optimizer.build(job.variables)
  frozen_before = [model.codecs[j].digest() for j in job.frozen]
  dist_dataset = strategy.experimental_distribute_dataset(job.dataset)
  recorded = state.get("lower_layer_sha256_before")
  if job.resuming and job.frozen and recorded not in (None, frozen_before):
    raise InputError(f"the layers below {job.name} in {root} changed "
                     "since its training started; its checkpoint is stale")
  state.update(lower_layer_sha256_before=frozen_before,
               schedule={"learning_rate": lr, "decay_to": 0.1,
                         "decay_at_step": boundary})

  objects = {layer_name(j): checkpoints.layer_checkpoint(model.codecs[j])
             for j in job.trained}
  if len(job.trained) == 1:  # a layer's own checkpoint layout
    objects = model.codecs[job.trained[0]].checkpoint_objects()
  train_ckpt = tf.train.Checkpoint(**objects, optimizer=optimizer,
                                   step_offset=offset)
  manager = tf.train.CheckpointManager(train_ckpt, str(folder / "train"),
                                       max_to_keep=2)
  # Every worker resumes from the chief's checkpoint, or replicas diverge.
  latest = tf.train.latest_checkpoint(str(job.folder / "train"))
  if latest:
    # Without the offset, which checkpoints older than it lack (read apart).
    tf.train.Checkpoint(**objects, optimizer=optimizer).restore(
        latest).assert_existing_objects_matched()
    offset.assign(train_folder.saved_step_offset(latest))
    logging.info("resumed %s at step %d", job.name,
                 steps_done(optimizer, offset))
  elif job.resuming:  # --from-weights: Adam's moments are lost with train/
    job.restore()
    offset.assign(state["steps"])
    state.setdefault("adam_restarted_at_steps", []).append(state["steps"])
    if chief:
      print(f"continuing {job.name} from its weights at step "
            f"{state['steps']}, with Adam started afresh", file=sys.stderr)
  elapsed = state.get("train_seconds", 0.0)

  # Said once, so a user sees whether the GPU they installed is used.
  devices = [d.split("device:")[-1] for d in distribute.device_names(strategy)]
  if chief:
    print(f"training {job.name} on {', '.join(devices)} of this machine "
          f"({strategy.num_replicas_in_sync} replica"
          f"{'s' if strategy.num_replicas_in_sync > 1 else ''} in all)",
          file=sys.stderr)
  train_step = make_train_step(job.forward, job.variables, optimizer, strategy,
                               batch, jit_compile=args.jit)
  if job.finish:
    finish_step = make_train_step(job.finish.forward, job.finish.variables,
                                  optimizer, strategy, batch,
                                  jit_compile=args.jit)

  log = TrainLog(folder, chief, by_layer=len(job.validations) > 1)
  val_batches = data.validation_batches(args.corpus, patch, 8)
  validations = {label: make_validation(forward)
                 for label, forward in job.validations.items()}
  start = steps_done(optimizer, offset)
  if job.finish:
    # Fixed as the decay; a run recorded before the finish existed (or
    # already past where it would start) finishes from where it is. Every
    # worker reads the same state.json and checkpoint (the chief's folder),
    # so all switch to the finish's step, a collective, at the same step.
    finish_at = schedule_before.get("finish_from_step", max(
        start, int(args.steps * (1 - job.finish.fraction))))
    state["schedule"]["finish_from_step"] = finish_at
    finish_started = False
  # --stop-at ends this run early; the schedule still follows --steps.
  end = min(args.steps, getattr(args, "stop_at", None) or args.steps)
  if start >= end:  # nothing to train: start-up is not training time
    t_start = time.monotonic()
  bar = tqdm.tqdm(total=args.steps, initial=start, desc=f"train {job.name}",
                  disable=not args.progress, dynamic_ncols=True)
  iterator = iter(dist_dataset)
  running, t_ckpt, t0 = [], time.monotonic(), t_start

  def validate_all(step):
    results = {}
    for label, validate in validations.items():
      results[label] = val = validate(val_batches)
      log.validation(step, val, label)
    state["validation"] = ({"step": step, **results[""]} if "" in results
                           else {"step": step, **results})

  def save(elapsed, t0):
    return train_folder.save(manager, steps_done(optimizer, offset), model,
                             write_root, job.trained, folder, state, elapsed,
                             t0)

  if job.validate_at_start and start == 0 and args.validate_every:
    validate_all(0)
  # Ctrl-C or SIGTERM (see interruptible) saves before leaving.
  try:
    for step in range(start, end):
      step_fn = train_step
      if job.finish and step >= finish_at:
        if not finish_started:
          with strategy.scope():
            job.finish.start()
          finish_started = True
        step_fn = finish_step
      values = step_fn(next(iterator)).numpy()
      if not all(math.isfinite(v) for v in values):
        raise FloatingPointError(
            f"loss became {values[0]} at step {step}; resume from the last "
            f"checkpoint in {manager.directory} with a lower --learning-rate")
      running.append(values)
      bar.update(1)
      if (step + 1) % LOG_EVERY == 0 or step + 1 == end:
        state["last"] = last = log.training(
            step + 1, running, float(schedule(step)),
            elapsed + time.monotonic() - t0)
        bar.set_postfix(loss=f"{last['loss']:.4f}", bpp=f"{last['bpp']:.4f}",
                        psnr=f"{last['psnr']:.2f}")
        running = []
      if args.validate_every and ((step + 1) % args.validate_every == 0
                                  or step + 1 == end):
        validate_all(step + 1)
      if train_folder.checkpoint_due(step + 1, t_ckpt, args, strategy):
        elapsed = save(elapsed, t0)
        t0 = t_ckpt = time.monotonic()
  except KeyboardInterrupt:
    bar.close()
    with stops_ignored():
      save(elapsed, t0)
    raise
  bar.close()
  elapsed = save(elapsed, t0)

  frozen_after = [model.codecs[j].digest() for j in job.frozen]
  if frozen_after != frozen_before:
    raise RuntimeError("a frozen lower layer changed during training")
  state.update(
      finished=steps_done(optimizer, offset) >= args.steps,
      steps=steps_done(optimizer, offset), batch_size=batch, patch_size=patch,
      corpus=str(args.corpus), num_replicas=strategy.num_replicas_in_sync,
      devices=devices, lower_layer_sha256_after=frozen_after)
  if len(job.trained) == 1:
    state.update(weights_sha256=model.codecs[job.trained[0]].digest())
  else:
    state.update(weights_sha256={layer_name(j): model.codecs[j].digest()
                                 for j in job.trained})
  if chief:
    checkpoints.write_record(job.folder, state)
  else:
    shutil.rmtree(scratch, ignore_errors=True)
  print(json.dumps({"layer": job.name, **state.get("last", {}),
                    "train_seconds": round(elapsed, 1)}))
  return 0


def _raise_interrupt(signum, frame):
  raise KeyboardInterrupt


@contextlib.contextmanager
def stops_ignored():
  """Ignores SIGINT and SIGTERM inside, so that a second stop cannot cut
  the save after the first short: Ctrl-C reaches tools/train_all.sh and
  its trainer both, and the script passes its own on as a SIGTERM."""
  previous = {s: signal.signal(s, signal.SIG_IGN)
              for s in (signal.SIGINT, signal.SIGTERM)}
  try:
    yield
  finally:
    for s, handler in previous.items():
      signal.signal(s, handler)
