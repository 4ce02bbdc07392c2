"""Evaluate SAE layers 0..0 (base..base) on Kodak; one row per cumulative layer."""

import sys

from sae.cli import cli


def main(argv=None) -> int:
  return cli.test_main(0, argv)


if __name__ == "__main__":
  sys.exit(main())
