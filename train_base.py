"""Train SAE layer 0 (base); layers below are restored and frozen."""

import sys

from sae.cli import cli


def main(argv=None) -> int:
  return cli.train_main(0, argv)


if __name__ == "__main__":
  sys.exit(main())
