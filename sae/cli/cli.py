"""Argument parsing shared by the per-layer scripts, and error reporting.

Every front end reports bad usage or bad input as one line ``error: ...`` on
stderr with exit status 2 and no traceback.
"""

import argparse
import os
import sys
import warnings

from sae.cli import arguments
from sae.models import families
from sae.eval import kodak
from sae.config import DEFAULT_FAMILY, layer_name
from sae.errors import InputError

DEFAULT_CORPUS = "corpus/clic2018"


class Parser(argparse.ArgumentParser):
  """argparse with the project's one-line error and exit status 2."""

  def error(self, message):
    raise SystemExit(_fail(message))


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
  """Shows a default only where it says something: not for flags, not None
  (the help text then says what happens), not twice where the help does."""

  def _get_help_string(self, action):
    text = action.help or ""
    if action.nargs == 0 or action.default is None or "default" in text:
      return text
    return super()._get_help_string(action)


def _fail(message: str) -> int:
  # The contract is one line; some library messages span several.
  print(f"error: {' '.join(message.split())}", file=sys.stderr)
  return 2


def _train_description(k: int) -> str:
  if k == 0:
    return ("Train the base layer of SAE into --checkpoint-dir/base (it "
            "resumes there after an interruption).")
  below = ", ".join(layer_name(i) for i in range(k))
  return (f"Train enhancement layer {layer_name(k)} of SAE into "
          f"--checkpoint-dir/{layer_name(k)}, on top of {below} read from "
          "--checkpoint-dir and kept frozen (it resumes after an "
          "interruption).")


def train_parser(k: int) -> argparse.ArgumentParser:
  p = Parser(description=_train_description(k),
              formatter_class=HelpFormatter)
  p.add_argument("--corpus", default=DEFAULT_CORPUS,
                 help="folder of training PNG/JPEG images (any sizes)")
  p.add_argument("--checkpoint-dir", default="checkpoints/mse",
                 help="per-layer checkpoints; lower layers are read from here")
  p.add_argument("--steps", type=arguments.positive_int, default=60000 if k == 0 else 40000,
                 help="total training steps of this layer (resumes)")
  p.add_argument("--lambda", dest="lmbda", type=arguments.positive_float, default=None,
                 help="rate-distortion weight (default: the preset's table)")
  p.add_argument("--learning-rate", type=arguments.positive_float, default=None,
                 help="peak learning rate (default: the table's, 1e-3)")
  p.add_argument("--conv-filters", type=arguments.positive_int, default=None, metavar="N",
                 help="filters of this layer's convolutions, recorded in "
                 "--checkpoint-dir's config.json (default: the table's, 48 "
                 "for paper)")
  p.add_argument("--metric", choices=("mse", "ms-ssim"), default="mse",
                 help="distortion of the total reconstruction in the loss")
  p.add_argument("--preset", choices=("paper", "tiny"), default="paper",
                 help="layer table: the paper's, or a tiny one for tests")
  p.add_argument("--family", choices=tuple(families.FAMILIES), default=None,
                 help=f"{families.help_text()} (default: what "
                 f"--checkpoint-dir holds, else {DEFAULT_FAMILY})")
  p.add_argument("--lower-cache", choices=("auto", "on", "off"), default="auto",
                 help="enhancement layers: code whole training images with the "
                 "frozen layers once and train on crops of their residuals "
                 "(auto: when they fit in 6 GiB); off: lower layers per crop")
  _add_loop_options(p)
  return p


def joint_parser() -> argparse.ArgumentParser:
  p = Parser(description=(
      "Fine-tune every trained layer of --checkpoint-dir at once on the sum "
      "of the layers' losses (sum_k w_k (bpp_k + lambda_k D_k)), into a new "
      "--out-dir; the phase is recorded in --out-dir/joint (it resumes there "
      "after an interruption). --checkpoint-dir is only read."),
      formatter_class=HelpFormatter)
  p.add_argument("--corpus", default=DEFAULT_CORPUS,
                 help="folder of training PNG/JPEG images (any sizes)")
  p.add_argument("--checkpoint-dir", required=True,
                 help="the layer-wise trained model to start from")
  p.add_argument("--out-dir", required=True,
                 help="new folder for the fine-tuned model (or one to resume)")
  p.add_argument("--steps", type=arguments.positive_int, default=10000,
                 help="total steps of the phase (resumes)")
  p.add_argument("--learning-rate", type=arguments.positive_float, default=None,
                 help="peak learning rate (default: 1e-4, or the one the "
                 "phase started with)")
  p.add_argument("--layer-weights", default=None, metavar="W0,W1,..",
                 help="weight w_k of each layer's loss (default: all 1)")
  _add_loop_options(p)
  return p


def _add_loop_options(p) -> None:
  """The options of the training loop (sae.train.train.train), every run's."""
  p.add_argument("--batch-size", type=arguments.positive_int, default=None,
                 help="global batch size (default: the preset's, 8 for paper)")
  p.add_argument("--patch-size", type=arguments.positive_int, default=None,
                 help="random crop size (default: the preset's, 256 for paper)")
  p.add_argument("--lr-decay-at", type=arguments.fraction, default=0.8,
                 help="fraction of --steps after which the rate drops 10x")
  p.add_argument("--distribute", choices=("none", "mirrored", "multi-worker"),
                 default="none", help="tf.distribute strategy")
  p.add_argument("--logical-cpus", type=arguments.positive_int, default=None, metavar="N",
                 help="split the CPU into N logical devices, one replica each "
                 "with --distribute mirrored on a machine without GPUs (for "
                 "trying and testing distributed training)")
  p.add_argument("--jit", action="store_true",
                 help="compile the training step with XLA")
  p.add_argument("--checkpoint-every", type=arguments.positive_float, default=300,
                 help="seconds between checkpoints")
  p.add_argument("--validate-every", type=int, default=1000,
                 help="steps between validations (hard quantization, fixed "
                 "crops of training images) written to val.csv; 0: off")
  p.add_argument("--checkpoint-steps", type=arguments.positive_int, default=None,
                 help="steps between checkpoints instead (default 1000 "
                 "with --distribute multi-worker)")
  p.add_argument("--seed", type=int, default=None,
                 help="seed of the training crops (default: random)")
  p.add_argument("--stop-at", type=arguments.positive_int, default=None, metavar="STEP",
                 help="stop (saving) at this step, short of --steps, whose "
                 "schedule still holds: a later run resumes it (e.g. to "
                 "compare designs at equal steps, or to fit a time slot)")
  p.add_argument("--from-weights", action="store_true",
                 help="resume a run whose folder holds its weights and "
                 "state.json but no training state (train/ is not kept in "
                 "the repository): its weights and step count are restored "
                 "and Adam starts afresh; recorded in state.json")
  p.add_argument("--no-progress", dest="progress", action="store_false",
                 help="no progress bar (for logs)")


def test_parser(k: int) -> argparse.ArgumentParser:
  p = Parser(description=f"Evaluate SAE layers 0..{k} (base.."
              f"{layer_name(k)}) on a folder of images, each at its own size.",
              formatter_class=HelpFormatter)
  p.add_argument("--kodak", default=kodak.DEFAULT_FOLDER,
                 help="image folder; the 24 Kodak images are downloaded here "
                 "when it holds none")
  p.add_argument("--kodak-url", default=kodak.URL,
                 help="URL pattern of the Kodak images ({:02d} = 1..24)")
  p.add_argument("--weights", default=None,
                 help="weights folder or training checkpoint directory "
                 "(default: shipped weights/sae-conditional)")
  p.add_argument("--out", default=None, help="results JSON path")
  p.add_argument("--recon-dir", default=None,
                 help="write decoded PNGs here (<image>_<layers>.png)")
  p.add_argument("--name", default=None, help="name in the results JSON")
  p.add_argument("--limit", type=arguments.positive_int, default=None,
                 help="evaluate only the first N images")
  p.add_argument("--no-progress", dest="progress", action="store_false")
  return p


def guarded(fn, *args) -> int:
  """Runs ``fn``; turns InputError and friends into exit status 2."""
  try:
    return fn(*args)
  except InputError as e:
    return _fail(str(e))
  except BrokenPipeError:
    # The reader went away (`... | head -1`): stop quietly, as Unix tools
    # do; what is still buffered goes nowhere instead of raising again at exit.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    return 1
  except OSError as e:  # missing files, permissions, full or read-only disk
    return _fail(f"{e.strerror or e}: {e.filename}" if e.filename else str(e))
  except MemoryError:
    return _fail("out of memory")
  except FloatingPointError as e:  # the NaN guard of training
    print(f"error: {e}", file=sys.stderr)
    return 1
  except KeyboardInterrupt:
    return _fail("interrupted")


def quiet_tensorflow():
  """Keeps TensorFlow's start-up chatter off stderr."""
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
  warnings.filterwarnings("ignore", category=DeprecationWarning)
  from absl import logging
  logging.set_verbosity(logging.WARNING)


def train_main(k: int, argv=None) -> int:
  args = train_parser(k).parse_args(argv)
  quiet_tensorflow()
  from sae.train import train
  return guarded(train.run, k, args)


def joint_main(argv=None) -> int:
  args = joint_parser().parse_args(argv)
  quiet_tensorflow()
  from sae.train import train_joint
  return guarded(train_joint.run, args)


def test_main(k: int, argv=None) -> int:
  args = test_parser(k).parse_args(argv)
  quiet_tensorflow()
  from sae.eval import evaluate
  return guarded(evaluate.run, k + 1, args)

