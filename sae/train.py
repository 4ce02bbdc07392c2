"""Training one layer of the cascade, with the layers below restored and frozen."""

import argparse
import dataclasses
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

from sae import checkpoints, data, distribute, metrics
from sae.config import (DEFAULT_FAMILY, ModelConfig, get_preset, layer_name,
                        same_architecture)
from sae.errors import InputError
from sae.fileio import atomic_write
from sae.model import ScalableAutoEncoder
from sae.transforms import TOTAL_STRIDE

LOG_EVERY = 100


def _resolve_config(args, k) -> ModelConfig:
  """The layer table for this run, checked against what the folder holds."""
  root = pathlib.Path(args.checkpoint_dir)
  config_path = root / checkpoints.CONFIG_FILE
  saved = checkpoints.read_config(root) if config_path.is_file() else None
  family = _family(args, saved)
  preset = get_preset(args.preset, args.metric, family)
  specs = list(preset.layers)
  if k >= len(specs):
    raise InputError(f"preset {args.preset!r} has no layer {k}")
  if args.lmbda is not None:
    specs[k] = dataclasses.replace(specs[k], lmbda=args.lmbda)
  if args.learning_rate is not None:
    specs[k] = dataclasses.replace(specs[k], learning_rate=args.learning_rate)
  if saved is not None:
    if saved.metric != args.metric:
      raise InputError(f"{root} was trained with --metric {saved.metric}, "
                       f"not {args.metric}")
    # Layers already on disk keep their recorded specs; they must fit the
    # architecture of this preset.
    for i, (have, want) in enumerate(zip(saved.layers[:k + 1], specs)):
      if not same_architecture([have], [want]):
        raise InputError(
            f"{layer_name(i)} in {root} is a {have.kind} layer with "
            f"{have.conv_filters} filters and {have.latent_channels} latent "
            f"channels; preset {args.preset!r} has a {want.kind} layer with "
            f"{want.conv_filters} and {want.latent_channels}")
    specs[:k] = saved.layers[:k]
    if _has_training_state(root, k) and k < len(saved.layers):
      recorded = saved.layers[k]
      for flag, name in (("lmbda", "--lambda"),
                         ("learning_rate", "--learning-rate")):
        given = getattr(args, flag)
        if given is not None and given != getattr(recorded, flag):
          raise InputError(
              f"{layer_name(k)} in {root} is being trained with {name} "
              f"{getattr(recorded, flag)}; resuming with {given} would mix "
              "two objectives (use another --checkpoint-dir)")
      specs[k] = recorded
  if args.patch_size is not None and args.patch_size % TOTAL_STRIDE:
    raise InputError(f"--patch-size must be a multiple of {TOTAL_STRIDE}, "
                     f"got {args.patch_size}")
  if checkpoints.has_weights(root, k) and not _has_training_state(root, k):
    raise InputError(f"{layer_name(k)} in {root} has weights but no training "
                     "state to resume; train into another --checkpoint-dir")
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


def _has_training_state(root, k) -> bool:
  return tf.train.latest_checkpoint(
      str(checkpoints.layer_dir(root, k) / "train")) is not None


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
  config = _resolve_config(args, k)
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
    checkpoints.write_config(root, _merged_config(root, config))

  state = checkpoints.read_state(root, k)
  # Written by older versions, before ids covered the coding tables; the
  # manifest of shipped weights holds the id streams carry.
  state.pop("weights_id", None)
  resuming = _has_training_state(root, k)
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
    optimizer = tf.keras.optimizers.Adam(schedule)
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

  train_ckpt = checkpoints.layer_checkpoint(model.codecs[k], optimizer=optimizer)
  manager = tf.train.CheckpointManager(
      train_ckpt, str(checkpoints.layer_dir(write_root, k) / "train"),
      max_to_keep=2)
  # Every worker resumes from the chief's checkpoint, or replicas diverge.
  latest = tf.train.latest_checkpoint(
      str(checkpoints.layer_dir(root, k) / "train"))
  if latest:
    train_ckpt.restore(latest).assert_existing_objects_matched()
    logging.info("resumed %s at step %d", layer_name(k), _steps_done(optimizer))
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

  log_dir = checkpoints.layer_dir(write_root, k)
  writer = tf.summary.create_file_writer(str(log_dir / "logs"))
  csv_path = log_dir / "log.csv"
  if chief and not csv_path.exists():
    csv_path.write_text("step,loss,bpp,mse,psnr,lr,seconds\n")
  val_csv = log_dir / "val.csv"
  if chief:  # a bad file must stop training now, not at the first validation
    _upgrade_csv(val_csv, VAL_COLUMNS)
  val_batches = data.validation_batches(args.corpus, patch, 8)
  validate = make_validation(model, k)
  start = _steps_done(optimizer)
  if start >= args.steps:  # nothing to train: start-up is not training time
    t_start = time.monotonic()
  bar = tqdm.tqdm(total=args.steps, initial=start, desc=f"train {layer_name(k)}",
                  disable=not args.progress, dynamic_ncols=True)
  iterator = iter(dist_dataset)
  running, t_ckpt, t0 = [], time.monotonic(), t_start
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
        loss, bpp, mse = (sum(c) / len(running) for c in zip(*running))
        psnr = 10 * math.log10(255 ** 2 / max(mse, 1e-10))
        lr = float(schedule(step))
        bar.set_postfix(loss=f"{loss:.4f}", bpp=f"{bpp:.4f}", psnr=f"{psnr:.2f}")
        now = time.monotonic()
        if chief:
          with writer.as_default(step=step + 1):
            for name, value in (("loss", loss), ("bpp", bpp), ("mse", mse),
                                ("psnr", psnr), ("learning_rate", lr)):
              tf.summary.scalar(name, value)
          with open(csv_path, "a") as f:
            f.write(f"{step + 1},{loss:.6f},{bpp:.6f},{mse:.4f},{psnr:.4f},"
                    f"{lr:.2e},{elapsed + now - t0:.1f}\n")
        state["last"] = {"step": step + 1, "loss": loss, "bpp": bpp, "mse": mse,
                         "psnr": psnr}
        running = []
      if args.validate_every and ((step + 1) % args.validate_every == 0
                                  or step + 1 == args.steps):
        val = validate(val_batches)
        state["validation"] = {"step": step + 1, **val}
        if chief:
          with writer.as_default(step=step + 1):
            for name, value in val.items():
              tf.summary.scalar(f"validation/{name}", value)
          _append_csv(val_csv, VAL_COLUMNS,
                      [step + 1] + [val[c] for c in VAL_COLUMNS[1:]])
      if _checkpoint_due(step + 1, t_ckpt, args, strategy):
        elapsed = _checkpoint(manager, optimizer, model, write_root, k, state, elapsed, t0)
        t0 = t_ckpt = time.monotonic()
  except KeyboardInterrupt:
    bar.close()
    _checkpoint(manager, optimizer, model, write_root, k, state, elapsed, t0)
    raise
  bar.close()
  elapsed = _checkpoint(manager, optimizer, model, write_root, k, state, elapsed, t0)

  lower_after = [c.digest() for c in model.codecs[:k]]
  if lower_after != lower_before:
    raise RuntimeError("a frozen lower layer changed during training")
  state.update(
      finished=_steps_done(optimizer) >= args.steps,
      steps=_steps_done(optimizer), batch_size=batch, patch_size=patch,
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


def _steps_done(optimizer) -> int:
  """The optimizer's step count.  Under a distribution strategy it is a
  distributed variable, which int() does not take."""
  return int(optimizer.iterations.numpy())


def make_train_step(model, k, variables, optimizer, strategy, global_batch,
                    training=True, jit_compile=False):
  """A tf.function: one distributed step on a batch; returns [loss, bpp, mse].

  Each replica averages its examples' losses over the *global* batch, and the
  strategy sums the replicas' gradients, so N replicas on B/N examples apply
  the update of one replica on B.
  """

  def step_fn(batch):
    x, lower = batch, None
    if batch.shape[-1] == 6:  # [image, precomputed lower reconstruction]
      x, lower = batch[..., :3], batch[..., 3:]
    with tf.GradientTape() as tape:
      out = model.forward(x, k, training=training, lower=lower)
      loss = tf.nn.compute_average_loss(out.loss,
                                        global_batch_size=global_batch)
    grads = tape.gradient(loss, variables)
    optimizer.apply_gradients(zip(grads, variables))
    per_example = tf.stack([out.loss, out.bpp, out.mse], axis=1)
    return tf.reduce_sum(per_example, axis=0) / global_batch

  @tf.function(jit_compile=jit_compile)
  def train_step(x):
    per_replica = strategy.run(step_fn, args=(x,))
    return strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)

  return train_step


def _raise_interrupt(signum, frame):
  raise KeyboardInterrupt


def make_validation(model, k):
  """Loss, bpp, MSE, PSNR and MS-SSIM with hard quantization on fixed crops.

  As in tfc's bls2017 with custom data, the crops come from the training
  images (never from the test set); they measure the quantized model, not
  the noisy proxy the training loss sees.
  """

  @tf.function
  def batch_sums(x):
    out = model.forward(x, k, training=False)
    # MS-SSIM as the evaluation measures it: on the 8-bit decoded crop.
    decoded = tf.round(tf.clip_by_value(out.total, 0, 255))
    return tf.stack([tf.reduce_sum(out.loss), tf.reduce_sum(out.bpp),
                     tf.reduce_sum(out.mse),
                     tf.reduce_sum(metrics.ms_ssim_float(x, decoded))])

  def validate(batches):
    sums, count = 0.0, 0
    for x in batches:
      sums += batch_sums(x).numpy()
      count += int(x.shape[0])
    loss, bpp, mse, ms_ssim = (float(v) / count for v in sums)
    return {"loss": loss, "bpp": bpp, "mse": mse,
            "psnr": 10 * math.log10(255 ** 2 / max(mse, 1e-10)),
            "ms_ssim": ms_ssim}

  return validate


VAL_COLUMNS = ("step", "loss", "bpp", "mse", "psnr", "ms_ssim")


def _upgrade_csv(path, columns):
  """Creates the CSV with its header, or gives a file written by an older
  version with fewer columns the new header, its old rows left with empty
  fields.

  Raises:
    InputError: the file has other columns.
  """
  header = ",".join(columns)
  lines = path.read_text().splitlines() if path.exists() else []
  if not lines:
    atomic_write(path, (header + "\n").encode())
  elif lines[0] != header:
    old = lines[0].split(",")
    if old != list(columns[:len(old)]):
      raise InputError(f"{path} has columns {lines[0]!r}, expected {header!r}")
    padding = "," * (len(columns) - len(old))
    atomic_write(path, "\n".join(
        [header] + [line + padding for line in lines[1:]]).encode() + b"\n")


def _append_csv(path, columns, values):
  """Appends a row (see _upgrade_csv for the header)."""
  _upgrade_csv(path, columns)
  with open(path, "a") as f:
    f.write(",".join(f"{v:.6g}" if isinstance(v, float) else str(v)
                     for v in values) + "\n")


def _checkpoint_due(steps_done, last_time, args, strategy) -> bool:
  """Time-based on one worker; step-based across workers, which must all
  save at the same step (saving is a collective operation there)."""
  every_steps = args.checkpoint_steps
  if every_steps is None and distribute.num_workers(strategy) > 1:
    every_steps = 1000
  if every_steps is not None:
    return steps_done % every_steps == 0
  return time.monotonic() - last_time > args.checkpoint_every


def _checkpoint(manager, optimizer, model, root, k, state, elapsed, t0):
  """Saves training state and the layer's weights; returns updated seconds.

  Refuses to save weights that are no longer finite (a finite loss can
  follow a NaN gradient by a step), so the last checkpoint stays usable.
  """
  if not all(bool(tf.reduce_all(tf.math.is_finite(v)))
             for v in model.codecs[k].weight_variables):
    raise FloatingPointError(
        f"{layer_name(k)}'s weights are no longer finite at step "
        f"{_steps_done(optimizer)}; not saved. Resume from the last "
        f"checkpoint in {manager.directory} with a lower --learning-rate")
  elapsed += time.monotonic() - t0
  manager.save(checkpoint_number=_steps_done(optimizer))
  checkpoints.save_weights(model.codecs[k], root, k)
  state["train_seconds"] = round(elapsed, 1)
  state["steps"] = _steps_done(optimizer)
  checkpoints.write_state(root, k, state)
  return elapsed


def _merged_config(root, config: ModelConfig) -> ModelConfig:
  """Keeps specs of layers above ``config`` that the folder already records."""
  path = pathlib.Path(root) / checkpoints.CONFIG_FILE
  if not path.is_file():
    return config
  saved = checkpoints.read_config(root)
  layers = config.layers + saved.layers[len(config.layers):]
  return dataclasses.replace(config, layers=layers)

