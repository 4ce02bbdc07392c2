"""Evaluate SAE layers 0..1 (base..el1) on Kodak; one row per cumulative layer."""

import sys

from sae.cli import cli


def main(argv=None) -> int:
  return cli.test_main(1, argv)


if __name__ == "__main__":
  sys.exit(main())
