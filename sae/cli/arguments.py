"""The types of command-line values, for every entry point (sae.cli.cli's
training and evaluation scripts, sae.cli.commands' ``python -m sae``).

Each refuses a bad value with one line that says what it must be; argparse
prints it with the option's name and exits with status 2.  No TensorFlow.
"""

import argparse

from sae.stream import bitstream


def integer(text):
  try:
    return int(text)
  except ValueError:
    raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None


def positive_int(text):
  value = integer(text)
  if value < 1:
    raise argparse.ArgumentTypeError(f"must be positive, got {value}")
  return value


def non_negative_int(text):
  value = integer(text)
  if value < 0:
    raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
  return value


def port(text):
  value = integer(text)
  if not 0 <= value <= 65535:
    raise argparse.ArgumentTypeError(f"must be in 0..65535, got {value}")
  return value


def layer_count(text):
  value = integer(text)
  if not 1 <= value <= bitstream.MAX_LAYERS:
    raise argparse.ArgumentTypeError(
        f"must be in 1..{bitstream.MAX_LAYERS}, got {value}")
  return value


def number(text):
  try:
    return float(text)
  except ValueError:
    raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None


def positive_float(text):
  value = number(text)
  if not 0 < value < float("inf"):
    raise argparse.ArgumentTypeError(f"must be positive, got {text}")
  return value


def fraction(text):
  value = number(text)
  if not 0 < value <= 1:
    raise argparse.ArgumentTypeError(f"must be in (0, 1], got {text}")
  return value
