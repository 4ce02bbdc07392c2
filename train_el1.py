"""Train SAE layer 1 (el1); layers below are restored and frozen."""

import sys

from sae.cli import cli


def main(argv=None) -> int:
  return cli.train_main(1, argv)


if __name__ == "__main__":
  sys.exit(main())
