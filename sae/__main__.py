"""``python -m sae``: see sae.cli.commands."""

import sys

from sae.cli import commands

if __name__ == "__main__":
  sys.exit(commands.console())
