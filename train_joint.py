"""Fine-tune every trained layer of a model at once (the joint phase)."""

import sys

from sae.cli import cli


def main(argv=None) -> int:
  return cli.joint_main(argv)


if __name__ == "__main__":
  sys.exit(main())
