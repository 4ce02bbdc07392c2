"""Copy trained layers from a checkpoint directory into a shipped weights folder.

    python tools/ship_weights.py checkpoints/mse weights/mse [--layers N]
        [--note TEXT]
"""

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from sae import checkpoints  # noqa: E402
from sae.cli import cli


def main(argv=None) -> int:
  p = cli.Parser(description=__doc__)
  p.add_argument("src")
  p.add_argument("dst")
  p.add_argument("--layers", type=int, default=None,
                 help="layers to ship (default: those that finished "
                 "training; a layer still training is shipped only when "
                 "named)")
  p.add_argument("--note", default=None,
                 help="recorded in the manifest, e.g. how lambdas were chosen")
  args = p.parse_args(argv)

  def ship():
    manifest = checkpoints.ship_weights(args.src, args.dst, args.layers,
                                        args.note)
    print(json.dumps({k: manifest[k] for k in ("metric", "weights_id",
                                                "status")}))
    return 0

  return cli.guarded(ship)


if __name__ == "__main__":
  sys.exit(main())
