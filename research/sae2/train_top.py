"""SAE-2's first phase (issue #39): the wide model trained single-rate at
the top layer's lambda.  Resumable; a research run, outside the package.

    nice -n 19 nohup python research/sae2/train_top.py \
        --corpus DATA/train --out checkpoints/sae2/top \
        --steps 60000 > checkpoints/sae2/top.log 2>&1 &

Every 16th photograph of the sorted corpus is held out (never a training
crop): the go/no-go and the phase's validation are measured on them
(research/sae2/go_no_go.py).  The crops are 128 pixels until
--large-from, then 256.  The folder holds:

  train/      the resumable checkpoint (with Adam's state; not committed)
  weights/    the model's variables alone, written at every save
  averaged/   their exponential moving average (decay --average), the
              same objects: what the go/no-go measures (go_no_go.py
              --averaged), since one step's weights swing by about 1 dB
              on the held-out crops at Adam's rate
  weights-f16.npz  the kernels in float16, the rest in float32, by
              checkpoint key: what is committed between sessions (about
              half the bytes; a run started from it restarts Adam, ramped
              up over WARMUP steps, from kernels rounded to float16)
  log.csv     step, seconds, loss, bpp, mse: running means of 100 steps
  val.csv     step, bpp, psnr, floor_psnr on the held-out centre crops
  val_averaged.csv  the same for the averaged weights
"""

import argparse
import csv
import os
import pathlib
import signal
import sys
import time

# oneDNN's kernels, off by default on AVX2-only CPUs, make a step about 1.5x
# faster here (as the package sets for its own entry points); TensorFlow
# reads the variable when it is imported.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from model import WideModel  # noqa: E402

HOLD_OUT_EVERY = 16
SAVE_SECONDS = 300
WARMUP = 500
COMMITTED = "weights-f16.npz"


def variables_by_key(model):
  """The model's variables by a name stable across processes."""
  out = {}
  for name, obj in model.checkpoint_objects().items():
    for v in obj.weights if hasattr(obj, "weights") else obj.variables:
      out[f"{name}/{v.name}"] = v
  return out


def save_committed(model, step, path):
  """The convolution kernels in float16, every other variable in float32
  (GDN's reparameterized beta and gamma live near its 2^-36 pedestal, far
  below float16's range), and the step, as one npz."""
  arrays = {k: v.numpy().astype(np.float16 if "kernel" in k else np.float32)
            for k, v in variables_by_key(model).items()}
  np.savez(path, __step__=np.array(step), **arrays)


def variables_of(model):
  """Every variable of the model, in checkpoint_objects order."""
  return [v for obj in model.checkpoint_objects().values()
          for v in (obj.weights if hasattr(obj, "weights") else obj.variables)]


def load_committed(model, path) -> int:
  with np.load(path) as stored:
    for key, v in variables_by_key(model).items():
      v.assign(stored[key].astype(np.float32))
    return int(stored["__step__"])


def split(corpus):
  """(training paths, held-out paths) of the corpus's PNG/JPEG files."""
  paths = sorted(str(p) for p in pathlib.Path(corpus).iterdir()
                 if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
  held = paths[::HOLD_OUT_EVERY]
  return [p for p in paths if p not in held], held


def decode(path):
  img = tf.io.decode_image(tf.io.read_file(path), channels=3,
                           expand_animations=False)
  return tf.ensure_shape(img, [None, None, 3])


def training_crops(paths, patch, batch, seed):
  ds = tf.data.Dataset.from_tensor_slices(paths).map(decode).cache()
  ds = ds.filter(lambda img: tf.reduce_min(tf.shape(img)[:2]) >= patch)
  ds = ds.shuffle(len(paths), seed=seed).repeat()
  ds = ds.map(lambda img: tf.cast(tf.image.random_crop(img, (patch, patch, 3)),
                                  tf.float32),
              num_parallel_calls=tf.data.AUTOTUNE)
  return iter(ds.batch(batch, drop_remainder=True).prefetch(4))


def held_out_crops(paths, size=256):
  crops = []
  for p in paths:
    img = decode(p).numpy()
    top, left = (img.shape[0] - size) // 2, (img.shape[1] - size) // 2
    crops.append(img[top:top + size, left:left + size])
  return tf.constant(np.stack(crops).astype(np.float32))


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--corpus", required=True)
  p.add_argument("--out", required=True)
  p.add_argument("--steps", type=int, default=60000)
  p.add_argument("--large-from", type=int, default=50000,
                 help="step from which the crops are 256 pixels (else 128)")
  p.add_argument("--lmbda", type=float, default=0.05)
  p.add_argument("--lr", type=float, default=1e-4,
                 help="Adam's rate (5e-4 made plain kernels unstable: docs/sae2.md)")
  p.add_argument("--batch", type=int, default=8)
  p.add_argument("--validate-every", type=int, default=1000)
  p.add_argument("--seed", type=int, default=1)
  p.add_argument("--average", type=float, default=0.999,
                 help="decay of the weights' moving average (averaged/)")
  p.add_argument("--export", action="store_true",
                 help=f"write {COMMITTED} from the saved weights and stop")
  args = p.parse_args(argv)

  out = pathlib.Path(args.out)
  out.mkdir(parents=True, exist_ok=True)
  tf.random.set_seed(args.seed)
  train_paths, held = split(args.corpus)
  (out / "held_out.txt").write_text(
      "\n".join(pathlib.Path(h).name for h in held) + "\n")

  model = WideModel()
  optimizer = tf.keras.optimizers.Adam(learning_rate=args.lr,
                                       global_clipnorm=1.0)
  # Keras copies a learning rate given as a variable: the schedule assigns
  # the optimizer's own.
  lr = optimizer.learning_rate
  step = tf.Variable(0, dtype=tf.int64, trainable=False)
  ckpt = tf.train.Checkpoint(step=step, optimizer=optimizer,
                             **model.checkpoint_objects())
  manager = tf.train.CheckpointManager(ckpt, out / "train", max_to_keep=1)
  weights = tf.train.Checkpoint(**model.checkpoint_objects())
  if manager.latest_checkpoint:
    ckpt.restore(manager.latest_checkpoint).assert_existing_objects_matched()
    print(f"resumed at step {int(step)}", flush=True)
  elif (out / "weights" / "checkpoint").exists():
    weights.restore(tf.train.latest_checkpoint(out / "weights"))
    print("started from the saved weights (Adam restarts)", flush=True)
  elif (out / COMMITTED).exists():
    step.assign(load_committed(model, out / COMMITTED))
    print(f"started at step {int(step)} from {COMMITTED} (Adam restarts)",
          flush=True)
  # A fresh Adam on trained weights takes steps of the full learning rate
  # in every direction at once: ramp it up again over WARMUP steps.
  warm_from = None if manager.latest_checkpoint else int(step)
  # Every transform is built with the model: its variables exist now.
  variables = [v for obj in model.checkpoint_objects().values()
               for v in obj.trainable_variables]
  # The moving average starts from the weights the run starts from.
  averaged = WideModel()
  averaged_ckpt = tf.train.Checkpoint(**averaged.checkpoint_objects())
  if (out / "averaged" / "ckpt.index").exists():
    averaged_ckpt.read(str(out / "averaged" / "ckpt")).assert_consumed()
  else:
    for a, v in zip(variables_of(averaged), variables_of(model)):
      a.assign(v)
  pairs = list(zip(variables_of(averaged), variables_of(model)))
  if args.export:
    save_committed(model, int(step), out / COMMITTED)
    print(f"{out / COMMITTED}: step {int(step)}", flush=True)
    return 0

  @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3])])
  def train_step(x):
    with tf.GradientTape() as tape:
      bpp, mse, _ = model(x, training=True)
      loss = tf.reduce_mean(bpp) + args.lmbda * tf.reduce_mean(mse)
    grads = tape.gradient(loss, variables)
    optimizer.apply_gradients(zip(grads, variables))
    for a, v in pairs:
      a.assign(args.average * a + (1 - args.average) * v)
    return loss, tf.reduce_mean(bpp), tf.reduce_mean(mse)

  def evaluation(m):
    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3])])
    def evaluate(x):
      bpp, mse, _ = m(x, training=False)
      return bpp, mse, m.floor(x)
    return evaluate

  evaluations = {"val.csv": evaluation(model),
                 "val_averaged.csv": evaluation(averaged)}
  val_x = held_out_crops(held)

  def validate():
    for name, evaluate in evaluations.items():
      bpp, mse, floor = (t.numpy() for t in evaluate(val_x))
      psnr = np.mean(10 * np.log10(255 ** 2 / mse))
      floor_psnr = np.mean(10 * np.log10(255 ** 2 / floor))
      new = not (out / name).exists()
      with open(out / name, "a", newline="") as f:
        w = csv.writer(f)
        if new:
          w.writerow(["step", "bpp", "psnr", "floor_psnr"])
        w.writerow([int(step), f"{bpp.mean():.4f}", f"{psnr:.3f}",
                    f"{floor_psnr:.3f}"])
      print(f"{name[:-4]} {int(step)}: {bpp.mean():.4f} bpp {psnr:.2f} dB "
            f"(floor {floor_psnr:.2f})", flush=True)

  def save():
    manager.save()
    averaged_ckpt.write(str(out / "averaged" / "ckpt"))
    weights.write(str(out / "weights" / "ckpt"))
    (out / "weights" / "checkpoint").write_text(
        'model_checkpoint_path: "ckpt"\n')

  # A scheduler's stop (SIGTERM) saves first, as Ctrl-C does.
  signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(
      KeyboardInterrupt()))
  try:
    return _train(args, out, model, step, lr, manager, train_paths,
                  train_step, validate, save, warm_from)
  except KeyboardInterrupt:
    save()
    print(f"stopped at step {int(step)}, saved", flush=True)
    return 130


def _train(args, out, model, step, lr, manager, train_paths, train_step,
           validate, save, warm_from):
  datasets = {}
  sums, t_save, t0 = np.zeros(3), time.time(), time.time()
  count = 0  # steps in sums: fewer than 100 in a resumed run's first row
  elapsed = 0.0
  if (out / "log.csv").exists():
    # Rows past the checkpoint's step were lost with the run that wrote them.
    rows = [r for r in csv.reader(open(out / "log.csv"))
            if r[0] == "step" or int(r[0]) <= int(step)]
    with open(out / "log.csv", "w", newline="") as f:
      csv.writer(f).writerows(rows)
    if len(rows) > 1:
      elapsed = float(rows[-1][1])
  while int(step) < args.steps:
    s = int(step)
    patch = 256 if s >= args.large_from else 128
    if patch not in datasets:
      datasets[patch] = training_crops(train_paths, patch, args.batch,
                                       args.seed + s)
    ramp = 1.0 if warm_from is None else min(1.0, (s - warm_from + 1) / WARMUP)
    lr.assign(args.lr * ramp * (0.1 if s >= 0.9 * args.steps else 1.0))
    x = next(datasets[patch])
    loss, bpp, mse = (t.numpy() for t in train_step(x))
    if not np.isfinite(loss):
      print(f"step {s}: loss {loss}: stopping", flush=True)
      return 1
    sums += (loss, bpp, mse)
    count += 1
    step.assign_add(1)
    s += 1
    if s % 100 == 0:
      now = time.time()
      elapsed += now - t0
      t0 = now
      new = not (out / "log.csv").exists()
      with open(out / "log.csv", "a", newline="") as f:
        w = csv.writer(f)
        if new:
          w.writerow(["step", "seconds", "loss", "bpp", "mse"])
        w.writerow([s, f"{elapsed:.0f}"] + [f"{v:.4f}" for v in sums / count])
      print(f"{s}: loss {sums[0] / count:.4f} bpp {sums[1] / count:.4f} "
            f"mse {sums[2] / count:.2f} ({elapsed:.0f} s)", flush=True)
      sums[:] = 0
      count = 0
    if s % args.validate_every == 0:
      validate()
    if time.time() - t_save > SAVE_SECONDS:
      save()
      t_save = time.time()
  save()
  validate()
  return 0


if __name__ == "__main__":
  sys.exit(main())
