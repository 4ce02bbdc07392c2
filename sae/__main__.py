"""``python -m sae``: see sae.commands."""

import sys

from sae import commands

if __name__ == "__main__":
  sys.exit(commands.console())
