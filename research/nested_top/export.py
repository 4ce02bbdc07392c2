"""Writes a conditional-top run's weights as the committed npz: kernels in
float16, every other variable in float32, and the step (SAE-2's format,
research/sae2/train_top.py's save_committed).

    python research/nested_top/export.py --run checkpoints/nested-top \
        --out research/nested_top/top-f16.npz

evaluate.py --weights reads either a run folder or such an npz.
"""

import argparse
import pathlib
import sys

import tensorflow as tf

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))
sys.path.insert(0, str(HERE.parent / "sae2"))
sys.path.insert(0, str(HERE))
from train_top import load_committed, save_committed  # noqa: E402
from top_model import ConditionalTop  # noqa: E402


def load_top(weights) -> tuple:
  """(ConditionalTop, step) from a train.py run folder or an exported npz."""
  model = ConditionalTop()
  weights = pathlib.Path(weights)
  if weights.suffix == ".npz":
    return model, load_committed(model, weights)
  step = tf.Variable(0, dtype=tf.int64)
  tf.train.Checkpoint(step=step, **model.checkpoint_objects()).read(
      tf.train.latest_checkpoint(weights / "train")).expect_partial()
  return model, int(step)


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--run", required=True, help="train.py's --out")
  p.add_argument("--out", required=True)
  args = p.parse_args(argv)
  model, step = load_top(args.run)
  save_committed(model, step, args.out)
  print(f"step {step} -> {args.out}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
