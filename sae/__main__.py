"""``python -m sae`` and the ``sae`` program: one command (sae.cli.commands),
then the process ends."""

import os
import sys

from sae.cli import commands

# Commands that end once their output file is in place leave the
# interpreter at once instead of tearing down TensorFlow's traced functions
# and runtime, about 1 s of a cold command (docs/performance.md); nothing
# is left to flush but stdout and stderr.
QUICK_EXIT = ("compress", "decompress")


def console(argv=None) -> int:
  argv = sys.argv[1:] if argv is None else argv
  status = commands.main(argv, one_shot=True)
  legacy = sys.modules.get("sae.stream.legacy")
  if (argv[:1] and argv[0] in QUICK_EXIT or
      legacy is not None and legacy.threads_left_running()):
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)
  return status


if __name__ == "__main__":
  sys.exit(console())
