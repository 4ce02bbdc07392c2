"""Evaluate SAE layers 0..3 (base..el3) on Kodak; one row per cumulative layer."""

import sys

from sae.cli import cli


def main(argv=None) -> int:
  return cli.test_main(3, argv)


if __name__ == "__main__":
  sys.exit(main())
