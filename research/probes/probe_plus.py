"""Probe runs of the SAE+ candidates (plus_candidates.py): equal steps, same data.

    python research/probes/probe_plus.py train --candidate c-conditional \\
        --layers 2 --steps 2000 --out logs/probes
    python research/probes/probe_plus.py evaluate --candidate c-conditional \\
        --layers 2 --out logs/probes
    python research/probes/probe_plus.py table --out logs/probes
    python research/probes/probe_plus.py speed --candidate c-conditional --layer 1

``train`` trains layers 0..L-1 in order, each for --steps steps with the
layers below restored, prepared for coding and frozen; a layer already
trained is reused, so candidates sharing a base (b, c, d) share its run.
Every candidate sees the same crops: one seed, one crop size and batch.
Interrupted runs resume from the last checkpoint (saved every few minutes
and on Ctrl-C / SIGTERM).  Data: every 16th image of --corpus (sorted, as
sae.train.data.validation_batches picks) is held out for validation; training
crops come from the others.

``evaluate`` codes the held-out images and Kodak, each image at its own size,
through the real range coder and sae.stream.bitstream's container: bpp from the
file's bytes, PSNR-RGB of the decoded 8-bit image, encode and decode seconds.
``table`` prints the markdown table of every evaluated candidate with BD-rates
against a-cascade and b-meanscale.  ``speed`` times training steps at other sizes (random
weights; the speed does not depend on them).
"""

import argparse
import json
import math
import os
import pathlib
import signal
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", ".."))

import sae  # noqa: E402,F401  before tensorflow: its oneDNN default
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from research.probes import plus_candidates as plus  # noqa: E402
from sae.eval import bdrate, metrics  # noqa: E402
from sae.stream import bitstream
from sae.train import data
from sae.config import PAPER_LAYERS, layer_name  # noqa: E402
from sae.fileio import atomic_write  # noqa: E402

HOLDOUT_EVERY = 16
CHECKPOINT_SECONDS = 300
ANCHOR = "a-cascade"
SAME_BASE_ANCHOR = "b-meanscale"


def split_corpus(corpus, out):
  """(training folder of symlinks, held-out image paths)."""
  paths = data.list_images(corpus)
  held_out = paths[::HOLDOUT_EVERY]
  folder = pathlib.Path(out) / "corpus-train"
  folder.mkdir(parents=True, exist_ok=True)
  for p in paths:
    link = folder / pathlib.Path(p).name
    if p not in held_out and not link.exists():
      link.symlink_to(os.path.abspath(p))
  return folder, held_out


def layer_dir(out, kinds, k) -> pathlib.Path:
  """Layer k's folder, named by the kinds of layers 0..k (shared prefixes)."""
  return pathlib.Path(out) / "+".join(kinds[:k + 1])


def restore_layer(layer, folder):
  tf.train.Checkpoint(layer=layer).read(
      str(folder / "weights")).assert_existing_objects_matched()


def read_state(folder) -> dict:
  path = folder / "state.json"
  return json.loads(path.read_text()) if path.is_file() else {}


def write_state(folder, state):
  atomic_write(folder / "state.json",
               (json.dumps(state, indent=2) + "\n").encode())


def make_step(model, k, variables, optimizer):
  @tf.function
  def step(x):
    with tf.GradientTape() as tape:
      out = model.forward(x, k, training=True)
      loss = tf.reduce_mean(out.loss)
    grads = tape.gradient(loss, variables)
    optimizer.apply_gradients(zip(grads, variables))
    return tf.stack([loss, tf.reduce_mean(out.bpp), tf.reduce_mean(out.mse)])
  return step


def train_layer(kinds, k, args, train_folder):
  folder = layer_dir(args.out, kinds, k)
  state = read_state(folder)
  if state.get("finished") and state["steps"] >= args.steps:
    print(f"{folder.name}: trained ({state['steps']} steps)")
    return
  model = plus.PlusModel(kinds[:k + 1], PAPER_LAYERS)
  for j in range(k):
    restore_layer(model.plus_layers[j], layer_dir(args.out, kinds, j))
    # The coder's quantization: what the layer above will see when coding.
    model.plus_layers[j].prepare_for_coding()
  lower_before = [layer.digest() for layer in model.plus_layers[:k]]
  variables = model.set_trainable_layer(k)
  optimizer = tf.keras.optimizers.Adam(PAPER_LAYERS[k].learning_rate)
  ckpt = tf.train.Checkpoint(layer=model.plus_layers[k], optimizer=optimizer)
  manager = tf.train.CheckpointManager(ckpt, str(folder / "train"), 2)
  if manager.latest_checkpoint:
    ckpt.restore(manager.latest_checkpoint).assert_existing_objects_matched()
  elif k > 0:
    state["warm_start"] = model.plus_layers[k].warm_start(
        model.plus_layers[k - 1])
  start = int(optimizer.iterations)
  # A resumed run must not replay the crops of the first one.
  dataset = data.training_dataset(train_folder, args.patch_size,
                                  args.batch_size, seed=args.seed + start)
  step = make_step(model, k, variables, optimizer)
  folder.mkdir(parents=True, exist_ok=True)
  log = folder / "log.csv"
  if not log.exists():
    log.write_text("step,loss,bpp,mse,psnr,seconds\n")
  timed = state.get("timed", {"steps": 0, "seconds": 0.0})

  def save():
    manager.save(checkpoint_number=int(optimizer.iterations))
    state.update(steps=int(optimizer.iterations), timed=timed,
                 seconds_per_step=timed["seconds"] / max(timed["steps"], 1),
                 kinds=list(kinds[:k + 1]), patch_size=args.patch_size,
                 batch_size=args.batch_size, seed=args.seed,
                 lmbda=PAPER_LAYERS[k].lmbda, lower_sha256=lower_before)
    write_state(folder, state)

  def log_row(i, means):
    loss, bpp, mse = means
    return (f"{i},{loss:.5f},{bpp:.5f},{mse:.3f},"
            f"{10 * math.log10(255 ** 2 / mse):.3f},{timed['seconds']:.1f}")

  run_steps(step, iter(dataset), start, args.steps, timed, save, log, log_row)
  if [layer.digest() for layer in model.plus_layers[:k]] != lower_before:
    raise RuntimeError("a frozen lower layer changed during training")
  tf.train.Checkpoint(layer=model.plus_layers[k]).write(str(folder / "weights"))
  state["finished"] = True
  save()
  print(f"{folder.name}: {state['steps']} steps, "
        f"{state['seconds_per_step']:.3f} s/step")


def run_steps(step, iterator, start, steps, timed, save, log, log_row):
  """Runs ``step(batch) -> values`` (values[0] the loss) from ``start`` to
  ``steps``: timed in ``timed`` (the first call traces, so it is not),
  one line ``log_row(step, mean values)`` in ``log`` per 100 steps, saved
  by ``save()`` every CHECKPOINT_SECONDS and on Ctrl-C or SIGTERM."""
  running, t_save = [], time.monotonic()
  try:
    for i in range(start, steps):
      t0 = time.perf_counter()
      values = step(next(iterator)).numpy()
      if i > start:
        timed["steps"] += 1
        timed["seconds"] += time.perf_counter() - t0
      if not all(math.isfinite(v) for v in values):
        raise FloatingPointError(f"loss {values[0]} at step {i}")
      running.append(values)
      if (i + 1) % 100 == 0 or i + 1 == steps:
        with open(log, "a") as f:
          f.write(log_row(i + 1, np.mean(running, axis=0)) + "\n")
        running = []
      if time.monotonic() - t_save > CHECKPOINT_SECONDS:
        save()
        t_save = time.monotonic()
  except KeyboardInterrupt:
    save()
    raise


def cmd_train(args):
  kinds = plus.CANDIDATES[args.candidate][:args.layers]
  train_folder, _ = split_corpus(args.corpus, args.out)
  tf.random.set_seed(args.seed)
  for k in range(len(kinds)):
    tf.random.set_seed(args.seed + k)  # same initialization for a kind
    train_layer(kinds, k, args, train_folder)
  return 0


def load_candidate(kinds, out):
  model = plus.PlusModel(kinds, PAPER_LAYERS)
  for k, layer in enumerate(model.plus_layers):
    restore_layer(layer, layer_dir(out, kinds, k))
  model.prepare_for_coding()
  return model


def code_image(model, coders, image, k):
  """(stream bytes, decoded uint8, encode s, decode s) with k layers."""
  compress, decompress = coders[k - 1]
  h, w = image.shape[:2]
  counts = [plus.strings_per_layer(layer) for layer in model.plus_layers[:k]]
  t0 = time.perf_counter()
  strings = list(compress(tf.constant(image)).numpy())
  payloads, i = [], 0
  for n in counts:
    payloads.append(plus.join_strings(strings[i:i + n]))
    i += n
  stream = bitstream.pack(h, w, payloads, [bytes(4)] * k, version=1)
  t1 = time.perf_counter()
  parsed = bitstream.unpack(stream)
  flat = [s for p, n in zip(parsed.payloads, counts)
          for s in plus.split_strings(p, n)]
  decoded = decompress(tf.constant(flat, tf.string),
                       tf.constant([h, w], tf.int32)).numpy()
  t2 = time.perf_counter()
  return stream, decoded, t1 - t0, t2 - t1


def cmd_evaluate(args):
  kinds = plus.CANDIDATES[args.candidate][:args.layers]
  model = load_candidate(kinds, args.out)
  coders = [(model.compressor(k), model.decompressor(k))
            for k in range(1, len(kinds) + 1)]
  warm = np.zeros((16, 16, 3), np.uint8)
  for k in range(1, len(kinds) + 1):
    code_image(model, coders, warm, k)
  layers = []
  for k in range(len(kinds)):
    state = read_state(layer_dir(args.out, kinds, k))
    layers.append({"name": layer_name(k), "steps": state["steps"],
                   "seconds_per_step": state["seconds_per_step"]})
  write_evaluation(args, args.candidate, list(kinds), layers,
                   lambda image, k: code_image(model, coders, image, k))
  return 0


def write_evaluation(args, candidate, kinds, layers, code):
  """Codes the held-out photographs and Kodak with 1..len(kinds) layers by
  ``code(image, k) -> (stream, decoded, encode s, decode s)`` and writes
  the means to eval-<candidate>.json, which ``table`` reads."""
  _, held_out = split_corpus(args.corpus, args.out)
  splits = {"validation": held_out, "kodak": data.list_images(args.kodak)}
  result = {"candidate": candidate, "kinds": kinds, "layers": layers,
            "splits": {}}
  for split, paths in splits.items():
    rows = {key: [[] for _ in kinds]
            for key in ("bpp", "psnr", "encode_s", "decode_s")}
    for path in paths:
      image = data.load_image(path)
      h, w = image.shape[:2]
      for k in range(1, len(kinds) + 1):
        stream, decoded, enc, dec = code(image, k)
        rows["bpp"][k - 1].append(metrics.bits_per_pixel(len(stream), h, w))
        rows["psnr"][k - 1].append(metrics.psnr(image, decoded))
        rows["encode_s"][k - 1].append(enc)
        rows["decode_s"][k - 1].append(dec)
    result["splits"][split] = {
        "images": len(paths),
        **{key: [float(np.mean(v)) for v in values]
           for key, values in rows.items()}}
    print(split, json.dumps(result["splits"][split]))
  atomic_write(pathlib.Path(args.out) / f"eval-{candidate}.json",
               (json.dumps(result, indent=2) + "\n").encode())


def cmd_table(args):
  results = {}
  for path in sorted(pathlib.Path(args.out).glob("eval-*.json")):
    r = json.loads(path.read_text())
    results[r["candidate"]] = r
  lines = ["| candidate | layers | s/step | validation bpp | validation PSNR "
           "| Kodak bpp | Kodak PSNR | Kodak enc s | Kodak dec s |",
           "|---|---|---|---|---|---|---|---|---|"]
  for name, r in results.items():
    for k, layer in enumerate(r["layers"]):
      v, kd = r["splits"]["validation"], r["splits"]["kodak"]
      label = "base" if k == 0 else f"+{layer['name']}"
      lines.append(
          f"| {name} | {label} ({r['kinds'][k]}, {layer['steps']} steps) "
          f"| {layer['seconds_per_step']:.3f} | {v['bpp'][k]:.4f} "
          f"| {v['psnr'][k]:.2f} | {kd['bpp'][k]:.4f} | {kd['psnr'][k]:.2f} "
          f"| {kd['encode_s'][k]:.3f} | {kd['decode_s'][k]:.3f} |")
  print("\n".join(lines))
  # Two or three points per curve: linear or quadratic fits (sae.eval.bdrate).
  # Against the baseline, and against b, which shares c's and d's base.
  for anchor_name in (ANCHOR, SAME_BASE_ANCHOR):
    if anchor_name not in results:
      continue
    print(f"\n| candidate | BD-rate vs {anchor_name}, validation | Kodak "
          "| BD-PSNR, validation | Kodak |")
    print("|---|---|---|---|---|")
    anchor = results[anchor_name]["splits"]
    for name, r in results.items():
      if name == anchor_name:
        continue
      cells = []
      for fn, unit in ((bdrate.bd_rate, "%"), (bdrate.bd_quality, "dB")):
        for split in ("validation", "kodak"):
          a, t = anchor[split], r["splits"][split]
          n = min(len(a["bpp"]), len(t["bpp"]))
          try:
            value = fn(a["bpp"][:n], a["psnr"][:n], t["bpp"][:n], t["psnr"][:n])
            cells.append(f"{value:+.{1 if unit == '%' else 2}f} {unit}")
          except ValueError as e:
            cells.append(f"n/a ({e})")
      print(f"| {name} | " + " | ".join(cells) + " |")
  return 0


def cmd_speed(args):
  kinds = plus.CANDIDATES[args.candidate][:args.layer + 1]
  model = plus.PlusModel(kinds, PAPER_LAYERS)
  for layer in model.plus_layers[:args.layer]:
    layer.prepare_for_coding()
  variables = model.set_trainable_layer(args.layer)
  step = make_step(model, args.layer, variables,
                   tf.keras.optimizers.Adam(1e-4))
  x = tf.random.uniform((args.batch_size, args.patch_size, args.patch_size, 3),
                        0, 255, seed=1)
  step(x)
  t0 = time.perf_counter()
  for _ in range(args.steps):
    step(x).numpy()
  seconds = (time.perf_counter() - t0) / args.steps
  print(json.dumps({"candidate": args.candidate, "layer": args.layer,
                    "kinds": list(kinds), "patch_size": args.patch_size,
                    "batch_size": args.batch_size,
                    "seconds_per_step": round(seconds, 4)}))
  return 0


def add_protocol_arguments(p):
  """The options every probe shares: crops, seed, data and output."""
  p.add_argument("--patch-size", type=int, default=128)
  p.add_argument("--batch-size", type=int, default=8)
  p.add_argument("--seed", type=int, default=1)
  p.add_argument("--corpus", default="corpus/clic2018")
  p.add_argument("--kodak", default="kodak")
  p.add_argument("--out", default="logs/probes")


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("command", choices=("train", "evaluate", "table", "speed"))
  p.add_argument("--candidate", choices=sorted(plus.CANDIDATES),
                 default=ANCHOR)
  p.add_argument("--layers", type=int, default=2,
                 help="train / evaluate layers 0..L-1")
  p.add_argument("--layer", type=int, default=0, help="speed: the layer timed")
  p.add_argument("--steps", type=int, default=2000, help="steps per layer")
  add_protocol_arguments(p)
  args = p.parse_args(argv)
  signal.signal(signal.SIGTERM, signal.default_int_handler)
  return {"train": cmd_train, "evaluate": cmd_evaluate, "table": cmd_table,
          "speed": cmd_speed}[args.command](args)


if __name__ == "__main__":
  sys.exit(main())
