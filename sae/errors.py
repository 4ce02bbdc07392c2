"""Errors the command-line front ends report as one line with exit status 2."""


class InputError(ValueError):
  """Bad user input: a missing or unreadable file, folder, image or stream."""
