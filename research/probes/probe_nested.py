"""Probe f-nested: one mean-scale latent, refined by nested quantization.

History: ``evaluate`` ran at commit 4047019 and no longer runs here: it
decodes through ``MeanScaleCodec.decompress_latent(..., bin_mean=)``, which
issue #40 removed from sae/ with the bin-mean decoding it measured
(research/sae-plus-probes.md, "The top rung").  ``git checkout 4047019``
runs it as the diary did.

    python research/probes/probe_nested.py train --steps 6000 --corpus DIR
    python research/probes/probe_nested.py evaluate --corpus DIR --kodak KODAK
    python research/probes/probe_plus.py table        # beside candidates a .. e

Candidates a .. e of research/sae-plus-probes.md stack auto-encoders, one per
layer.  This one has a single mean-scale hyperprior model (sae.entropy.meanscale)
whose latent y every layer refines: layer k quantizes y - mean at step
STEPS[k] (9, 3, 1), and a bin of step 3s is exactly three bins of step s,
so each layer says which third of the layer below's bin y is in (the
trit-planes of DPICT, Lee et al., CVPR 2022).  One synthesis decodes any
prefix; the side information is sent once, in the base.

Training: the summed rate-distortion loss of the three rungs, each with
uniform noise of its own step and the faithful model's lambda for that
layer (0.001, 0.003, 0.01), so the one latent learns to serve every rung.
``--rung-weights`` weighs them: 0,0,1 (candidate g-nested-top) trains on
the finest rung's loss alone, a single-rate model, and codes the coarser
rungs all the same, as DPICT does.

Rate: k layers are measured as y coded at STEPS[k - 1] by the Gaussians
the side information gives (sae.entropy.meanscale's range coder), after z, in
sae.stream.bitstream's container with k chunks.  By the chain rule that is what
coding the rungs one after another costs (each third chosen with the
Gaussian restricted to its parent bin), up to the range coder's few bytes
of flush per layer; the layered coder itself is not written yet.

Same protocol as probe_plus.py: the held-out split (every 16th image),
128x128 crops, batch 8, seed 1, Adam 1e-3 without decay, and 2000 steps
per layer: the cascade's three layers had 6000 steps in all, so this model
gets 6000.  Its step runs one analysis and a synthesis per rung trained.
"""

import argparse
import math
import os
import pathlib
import signal
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.dirname(__file__))

import sae  # noqa: E402,F401  before tensorflow: its oneDNN default
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import probe_plus  # noqa: E402
from sae.stream import bitstream  # noqa: E402
from sae.train import data
from sae.models import losses
from sae.config import PAPER_LAYERS, LayerSpec, layer_name  # noqa: E402
from sae.entropy.layer import LayerCodec  # noqa: E402
from sae.entropy.meanscale import (MeanScaleCodec, gaussian_model,  # noqa: E402
                           index_at_step)
from sae.models.base import to_uint8  # noqa: E402
from sae.models.transforms import (SynthesisTransform, latent_shape,  # noqa: E402
                            pad_to_stride)

# Candidate names of some --rung-weights; others are named by their weights.
NAMED = {(1.0, 1.0, 1.0): "f-nested", (0.0, 0.0, 1.0): "g-nested-top",
         (1.0, 1.0, 1.0, "affine"): "h-nested-affine",
         (1.0, 1.0, 1.0, "mixed"): "i-nested-mixed",
         (1.0, 1.0, 1.0, "mixed", "own"): "j-nested-mixed-own"}
STEPS = (9.0, 3.0, 1.0)  # quantization step of each layer, coarse to fine
LAMBDAS = tuple(spec.lmbda for spec in PAPER_LAYERS[:len(STEPS)])
# The cascade's el2 latent (96 channels) and the faithful width.
SPEC = LayerSpec(conv_filters=48, latent_channels=96, lmbda=LAMBDAS[-1],
                 paper_lambda=PAPER_LAYERS[2].paper_lambda,
                 learning_rate=1e-3, kind="meanscale")


def build_codec():
  return MeanScaleCodec(SPEC, "nested")


class RungAffine(tf.Module):
  """What tells the synthesis which rung it decodes (``--rung-affine``): a
  per-rung, per-channel gain and offset on the latent it gets, starting at
  the identity.  Without it (all None) the latent goes in as decoded."""

  def __init__(self, enabled):
    super().__init__(name="rung_affine")
    shape = (len(STEPS), SPEC.latent_channels)
    self.gain = tf.Variable(tf.ones(shape)) if enabled else None
    self.offset = tf.Variable(tf.zeros(shape)) if enabled else None

  def __call__(self, y_hat, rung):
    if self.gain is None:
      return y_hat
    return y_hat * self.gain[rung] + self.offset[rung]


class OwnSyntheses(tf.Module):
  """A synthesis per rung, trained with the latent from the start
  (``--own-synthesis``, candidate j-nested-mixed-own): copies of one
  initial synthesis.  Empty for the other candidates."""

  def __init__(self, enabled):
    super().__init__(name="own_syntheses")
    self.syntheses = []
    for _ in range(len(STEPS) if enabled else 0):
      synthesis = SynthesisTransform(SPEC)
      synthesis.build((None, None, None, SPEC.latent_channels))
      if self.syntheses:
        synthesis.set_weights(self.syntheses[0].get_weights())
      self.syntheses.append(synthesis)


def forward(codec, affine, x, rungs, weights):
  """(loss, bpp, MSE) of a batch under noise: the loss sums the
  rate-distortion losses of the rungs trained (indexes into STEPS) times
  their weights; bpp and MSE come as (len(rungs),) vectors."""
  y = codec.analysis(x)
  z = codec.hyper_analysis(y)
  z_tilde, z_bits = codec._entropy_model(True)(z, training=True)
  mean, index = codec._entropy_parameters(z_tilde, tf.shape(y)[1:3])
  pixels = tf.cast(tf.shape(x)[1] * tf.shape(x)[2], tf.float32)
  total, bpps, mses = 0.0, [], []
  for rung, weight in zip(rungs, weights):
    step, lmbda = STEPS[rung], LAMBDAS[rung]
    u_tilde, bits = gaussian_model()(y / step, index_at_step(index, step),
                                     loc=mean / step, training=True)
    x_hat = codec.synthesis(affine(u_tilde * step, rung))
    bpp = (bits + z_bits) / pixels
    total += weight * tf.reduce_mean(losses.rd_loss(bpp, x, x_hat, lmbda))
    bpps.append(tf.reduce_mean(bpp))
    mses.append(tf.reduce_mean(tf.math.squared_difference(x, x_hat)))
  return total, tf.stack(bpps), tf.stack(mses)


def forward_mixed(codec, x, rungs, weights, own=None):
  """As forward, at the cost of one rung: each crop of the batch takes one
  rung in turn (crop b rung rungs[b % len(rungs)]), so one synthesis runs
  per step; each rung's loss is the mean over its crops.  With ``own``
  (OwnSyntheses), each crop is decoded by its rung's synthesis."""
  y = codec.analysis(x)
  z = codec.hyper_analysis(y)
  z_tilde, z_bits = codec._entropy_model(True)(z, training=True)
  mean, index = codec._entropy_parameters(z_tilde, tf.shape(y)[1:3])
  batch = x.shape[0]
  of_crop = [rungs[b % len(rungs)] for b in range(batch)]
  step = tf.constant([STEPS[r] for r in of_crop])[:, None, None, None]
  lmbda = tf.constant([LAMBDAS[r] for r in of_crop])
  u_tilde, bits = gaussian_model()(y / step, index_at_step(index, step),
                                   loc=mean / step, training=True)
  if own is None or not own.syntheses:
    x_hat = codec.synthesis(u_tilde * step)
  else:
    parts, order = [], []
    for rung in sorted(set(of_crop)):
      crops = [b for b in range(batch) if of_crop[b] == rung]
      parts.append(own.syntheses[rung](tf.gather(u_tilde * step, crops)))
      order += crops
    x_hat = tf.gather(tf.concat(parts, 0), [order.index(b)
                                            for b in range(batch)])
  pixels = tf.cast(tf.shape(x)[1] * tf.shape(x)[2], tf.float32)
  bpp = (bits + z_bits) / pixels
  loss = losses.rd_loss(bpp, x, x_hat, lmbda)
  mse = tf.reduce_mean(tf.math.squared_difference(x, x_hat), axis=(1, 2, 3))
  total, bpps, mses = 0.0, [], []
  for rung, weight in zip(rungs, weights):
    crops = [b for b in range(batch) if of_crop[b] == rung]
    total += weight * tf.reduce_mean(tf.gather(loss, crops))
    bpps.append(tf.reduce_mean(tf.gather(bpp, crops)))
    mses.append(tf.reduce_mean(tf.gather(mse, crops)))
  return total, tf.stack(bpps), tf.stack(mses)


def folder_of(args) -> pathlib.Path:
  folder = candidate(args)[2:]  # without the candidate's letter
  return pathlib.Path(args.out) / folder


def candidate(args) -> str:
  affine = (("affine",) if args.rung_affine else ()) + (
      ("mixed",) if args.mixed_rungs else ()) + (
      ("own",) if args.own_synthesis else ())
  default = ("f-nested-w" + "-".join(f"{w:g}" for w in args.rung_weights)
             + "".join("-" + a for a in affine))
  return NAMED.get(tuple(args.rung_weights) + affine, default)


def trained_rungs(args):
  """(rungs with a weight, their weights): a rung weighing 0 is not run."""
  rungs = tuple(i for i, w in enumerate(args.rung_weights) if w)
  return rungs, tuple(args.rung_weights[i] for i in rungs)


def cmd_train(args):
  train_folder, _ = probe_plus.split_corpus(args.corpus, args.out)
  tf.random.set_seed(args.seed)
  codec, affine = build_codec(), RungAffine(args.rung_affine)
  own = OwnSyntheses(args.own_synthesis)
  variables = codec.weight_variables + list(affine.trainable_variables)
  if own.syntheses:  # the shared synthesis is not used
    shared = {v.ref() for v in codec.synthesis.trainable_variables}
    variables = [v for v in variables if v.ref() not in shared] + list(
        own.trainable_variables)
  optimizer = tf.keras.optimizers.Adam(SPEC.learning_rate)
  folder = folder_of(args)
  state = probe_plus.read_state(folder)
  rungs, weights = trained_rungs(args)
  ckpt = tf.train.Checkpoint(codec=codec, affine=affine, own=own,
                             optimizer=optimizer)
  manager = tf.train.CheckpointManager(ckpt, str(folder / "train"), 2)
  if manager.latest_checkpoint:
    ckpt.restore(manager.latest_checkpoint).assert_existing_objects_matched()
  start = int(optimizer.iterations)
  dataset = data.training_dataset(train_folder, args.patch_size,
                                  args.batch_size, seed=args.seed + start)
  shape = (args.batch_size, args.patch_size, args.patch_size, 3)

  @tf.function(input_signature=[tf.TensorSpec(shape, tf.float32)])
  def step(batch):
    with tf.GradientTape() as tape:
      if args.mixed_rungs:
        loss, bpp, mse = forward_mixed(codec, batch, rungs, weights, own)
      else:
        loss, bpp, mse = forward(codec, affine, batch, rungs, weights)
    optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
    return tf.concat([[loss], bpp, mse], 0)

  folder.mkdir(parents=True, exist_ok=True)
  log = folder / "log.csv"
  if not log.exists():
    log.write_text("step,loss," + ",".join(
        f"{k}_{name}" for k in ("bpp", "psnr") for name in
        (layer_name(i) for i in rungs)) + ",seconds\n")
  timed = state.get("timed", {"steps": 0, "seconds": 0.0})

  def save():
    manager.save(checkpoint_number=int(optimizer.iterations))
    state.update(steps=int(optimizer.iterations), timed=timed,
                 seconds_per_step=timed["seconds"] / max(timed["steps"], 1),
                 steps_of_rungs=list(STEPS), lambdas=list(LAMBDAS),
                 rung_weights=list(args.rung_weights),
                 patch_size=args.patch_size, batch_size=args.batch_size,
                 seed=args.seed)
    probe_plus.write_state(folder, state)

  def log_row(i, means):
    k = len(rungs)
    psnrs = [10 * math.log10(255 ** 2 / m) for m in means[1 + k:]]
    return (f"{i},{means[0]:.5f}," + ",".join(f"{v:.5f}" for v in means[1:1 + k])
            + "," + ",".join(f"{p:.3f}" for p in psnrs)
            + f",{timed['seconds']:.1f}")

  probe_plus.run_steps(step, iter(dataset), start, args.steps, timed, save,
                       log, log_row)
  tf.train.Checkpoint(codec=codec, affine=affine, own=own).write(
      str(folder / "weights"))
  state["finished"] = True
  save()
  print(f"{candidate(args)}: {state['steps']} steps, "
        f"{state['seconds_per_step']:.3f} s/step")
  return 0


def coders(codec, synthesis, affine, rung, bin_mean):
  """tf.functions (compress, decompress) of one rung."""

  @tf.function(input_signature=[tf.TensorSpec([None, None, 3], tf.uint8)])
  def compress(image):
    y = codec.analysis(pad_to_stride(tf.cast(image, tf.float32)[None]))
    return codec.encode_latent(y, step=STEPS[rung])[0][0]

  @tf.function(input_signature=[tf.TensorSpec([], tf.string),
                                tf.TensorSpec([2], tf.int32)])
  def decompress(string, image_hw):
    y_hat = codec.decompress_latent(string[None], latent_shape(image_hw),
                                    step=STEPS[rung], bin_mean=bin_mean)
    x_hat = synthesis(affine(y_hat, rung))
    return to_uint8(x_hat[0, :image_hw[0], :image_hw[1]])

  return compress, decompress


def code_image(functions, image, k):
  """(stream bytes, decoded uint8, encode s, decode s) with k layers."""
  compress, decompress = functions[k - 1]
  h, w = image.shape[:2]
  t0 = time.perf_counter()
  payload = compress(tf.constant(image)).numpy()
  # k chunks, as a layered stream: the rungs' bytes counted in the first.
  stream = bitstream.pack(h, w, [payload] + [b""] * (k - 1), [bytes(4)] * k,
                          version=2)
  t1 = time.perf_counter()
  parsed = bitstream.unpack(stream)
  decoded = decompress(tf.constant(parsed.payloads[0]),
                       tf.constant([h, w], tf.int32)).numpy()
  return stream, decoded, t1 - t0, time.perf_counter() - t1


def decoded_latent(codec, y, step):
  """y as the decoder has it at ``step`` (hard quantization, z rounded)."""
  z_hat = LayerCodec.quantize(codec, codec.hyper_analysis(y))
  mean, _ = codec._entropy_parameters(z_hat, tf.shape(y)[1:3])
  return tf.round((y - mean) / step) * step + mean


def rung_synthesis_path(args, rung):
  return folder_of(args) / f"synthesis-{layer_name(rung)}"


def load_model(args):
  """The trained codec and rung affine of the candidate's weights (its own
  syntheses, if any, in ``codec.own``)."""
  codec, affine = build_codec(), RungAffine(args.rung_affine)
  codec.own = OwnSyntheses(args.own_synthesis)
  tf.train.Checkpoint(codec=codec, affine=affine, own=codec.own).read(
      str(folder_of(args) / "weights")).assert_existing_objects_matched()
  return codec, affine


def cmd_tune(args):
  """Trains a synthesis of each rung's own, from the shared one, on the
  latent the decoder has at that rung (hard-quantized; the analysis and
  the hyperprior frozen, so the rates stay): its distortion alone."""
  train_folder, _ = probe_plus.split_corpus(args.corpus, args.out)
  codec, affine = load_model(args)
  shape = (args.batch_size, args.patch_size, args.patch_size, 3)
  for rung, step_size in enumerate(STEPS):
    path = rung_synthesis_path(args, rung)
    if path.with_suffix(".index").exists():
      continue
    tf.random.set_seed(args.seed)
    synthesis = SynthesisTransform(SPEC)
    synthesis.build((None, None, None, SPEC.latent_channels))
    synthesis.set_weights(codec.synthesis.get_weights())
    variables = synthesis.trainable_variables
    optimizer = tf.keras.optimizers.Adam(args.tune_learning_rate)

    @tf.function(input_signature=[tf.TensorSpec(shape, tf.float32)])
    def step(batch, rung=rung, step_size=step_size, synthesis=synthesis,
             variables=variables, optimizer=optimizer):
      y_hat = decoded_latent(codec, codec.analysis(batch), step_size)
      with tf.GradientTape() as tape:
        x_hat = synthesis(affine(y_hat, rung))
        mse = tf.reduce_mean(tf.math.squared_difference(batch, x_hat))
      optimizer.apply_gradients(zip(tape.gradient(mse, variables), variables))
      return mse

    dataset = iter(data.training_dataset(train_folder, args.patch_size,
                                         args.batch_size, seed=args.seed))
    t0, running = time.perf_counter(), []
    for i in range(args.tune_steps):
      running.append(float(step(next(dataset))))
      if (i + 1) % 500 == 0:
        print(f"{layer_name(rung)} {i + 1}: training PSNR "
              f"{10 * math.log10(255 ** 2 / np.mean(running)):.3f} dB, "
              f"{time.perf_counter() - t0:.0f} s", flush=True)
        running = []
    tf.train.Checkpoint(synthesis=synthesis).write(str(path))
  return 0


def rung_syntheses(args, codec):
  """Each rung's synthesis: tuned ones with ``--rung-synthesis``, those
  trained with the latent with ``--own-synthesis``."""
  if args.own_synthesis and not args.rung_synthesis:
    return codec.own.syntheses
  if not args.rung_synthesis:
    return [codec.synthesis] * len(STEPS)
  syntheses = []
  for rung in range(len(STEPS)):
    synthesis = SynthesisTransform(SPEC)
    synthesis.build((None, None, None, SPEC.latent_channels))
    tf.train.Checkpoint(synthesis=synthesis).read(
        str(rung_synthesis_path(args, rung))).assert_existing_objects_matched()
    syntheses.append(synthesis)
  return syntheses


def cmd_evaluate(args):
  folder = folder_of(args)
  state = probe_plus.read_state(folder)
  codec, affine = load_model(args)
  codec.prepare_for_coding()
  functions = [coders(codec, synthesis, affine, rung, args.bin_mean)
               for rung, synthesis in enumerate(rung_syntheses(args, codec))]
  warm = np.zeros((16, 16, 3), np.uint8)
  for k in range(1, len(STEPS) + 1):
    code_image(functions, warm, k)
  layers = [{"name": layer_name(k), "steps": state["steps"],
             "seconds_per_step": state["seconds_per_step"]}
            for k in range(len(STEPS))]
  name = (candidate(args) + ("-rung-synthesis" if args.rung_synthesis else "")
          + ("-bin-mean" if args.bin_mean else ""))
  probe_plus.write_evaluation(
      args, name, [f"nested step {s:g}" for s in STEPS],
      layers, lambda image, k: code_image(functions, image, k))
  return 0


def rung_weights(text):
  weights = tuple(float(w) for w in text.split(","))
  if len(weights) != len(STEPS) or min(weights) < 0 or not any(weights):
    raise argparse.ArgumentTypeError(
        f"need {len(STEPS)} weights >= 0, not all 0")
  return weights


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("command", choices=("train", "tune", "evaluate"))
  p.add_argument("--steps", type=int, default=2000 * len(STEPS),
                 help="training steps in all (default: 2000 per layer)")
  probe_plus.add_protocol_arguments(p)
  p.add_argument("--rung-weights", type=rung_weights, default=(1.0,) * len(STEPS),
                 metavar="W0,W1,W2",
                 help="weight of each rung's loss (default: all 1; 0,0,1: "
                 "g-nested-top, the finest rung alone)")
  p.add_argument("--rung-affine", action="store_true",
                 help="a per-rung gain and offset on the synthesis's input "
                 "(candidate h-nested-affine with the default weights)")
  p.add_argument("--mixed-rungs", action="store_true",
                 help="train: each crop of a batch takes one rung in turn, "
                 "one synthesis per step (candidate i-nested-mixed)")
  p.add_argument("--own-synthesis", action="store_true",
                 help="with --mixed-rungs: a synthesis per rung, trained "
                 "with the latent from the start (candidate "
                 "j-nested-mixed-own)")
  p.add_argument("--tune-steps", type=int, default=2000,
                 help="tune: steps per rung's synthesis")
  p.add_argument("--tune-learning-rate", type=float, default=1e-4)
  p.add_argument("--rung-synthesis", action="store_true",
                 help="evaluate with each rung's tuned synthesis (the name "
                 "gets -rung-synthesis)")
  p.add_argument("--bin-mean", action="store_true",
                 help="evaluate: reconstruct the latent at each bin's mean "
                 "under its Gaussian, not its centre (the name gets "
                 "-bin-mean)")
  args = p.parse_args(argv)
  signal.signal(signal.SIGTERM, signal.default_int_handler)
  return {"train": cmd_train, "tune": cmd_tune,
          "evaluate": cmd_evaluate}[args.command](args)


if __name__ == "__main__":
  sys.exit(main())
