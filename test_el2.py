"""Evaluate SAE layers 0..2 (base..el2) on Kodak; one row per cumulative layer."""

import sys

from sae.cli import cli


def main(argv=None) -> int:
  return cli.test_main(2, argv)


if __name__ == "__main__":
  sys.exit(main())
