"""Start another model on trained layers: copy them into a new folder.

    python tools/fork_weights.py weights/mse checkpoints/mine --layers 2

Copies layers 0..N-1 (weights, state.json, curves; not their training
state; the record of a finished joint fine-tuning of exactly those
layers) into a new folder of the same family, where training continues:
a shipped folder's layers, trained further, or two designs of the next
layer on one base, compared at equal steps (research/sae-plus-probes.md,
the el1 gate).  ``--family`` starts a model of another family on them,
whose lower layers are of the same kinds:

    python tools/fork_weights.py weights/sae-nested checkpoints/cond \
        --layers 3 --family sae-conditional
    python train_el3.py --checkpoint-dir checkpoints/cond --corpus DATA
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from sae import checkpoints  # noqa: E402
from sae.cli import cli


def main(argv=None) -> int:
  p = cli.Parser(description=__doc__,
                 formatter_class=cli.argparse.RawDescriptionHelpFormatter)
  p.add_argument("src", help="weights or checkpoint folder")
  p.add_argument("dst", help="new folder")
  p.add_argument("--layers", type=int, default=None,
                 help="layers to copy (default: all with weights)")
  p.add_argument("--family", default=None,
                 help="the copy's family (default: the source's)")
  args = p.parse_args(argv)
  return cli.guarded(lambda: checkpoints.copy_layers(
      args.src, args.dst, args.layers, family=args.family) or 0)


if __name__ == "__main__":
  sys.exit(main())
