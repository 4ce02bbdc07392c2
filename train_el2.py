"""Train SAE layer 2 (el2); layers below are restored and frozen."""

import sys

from sae.cli import cli


def main(argv=None) -> int:
  return cli.train_main(2, argv)


if __name__ == "__main__":
  sys.exit(main())
