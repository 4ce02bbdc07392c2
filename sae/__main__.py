"""``python -m sae``: see sae.commands."""

import os
import sys

from sae import commands

# Commands that end once their output file is in place.  They leave the
# interpreter at once instead of tearing down TensorFlow's traced functions
# and runtime, which took about 1 s of a cold command (docs/performance.md);
# nothing is left to flush but stdout and stderr.
QUICK_EXIT = ("compress", "decompress")

if __name__ == "__main__":
  status = commands.main(sys.argv[1:])
  if sys.argv[1:2] and sys.argv[1] in QUICK_EXIT:
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)
  sys.exit(status)
