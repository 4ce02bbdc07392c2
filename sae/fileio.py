"""Atomic file output: a reader never sees a half-written file."""

import json
import os
import pathlib
import tempfile

from sae.errors import InputError


def check_output(path, directory_ok=False) -> pathlib.Path:
  """Refuses an output path that cannot be written; returns its folder.

  Called before any long work, so a typo fails at once, not at the end.

  Raises:
    sae.errors.InputError: the output directory does not exist, or the
      output is a directory (unless ``directory_ok``).
  """
  path = pathlib.Path(path)
  parent = path.parent if str(path.parent) else pathlib.Path(".")
  if not parent.is_dir():
    raise InputError(f"output directory {str(parent)!r} does not exist")
  if path.is_dir() and not directory_ok:
    raise InputError(f"output {str(path)!r} is a directory")
  return parent


def atomic_write(path, data: bytes) -> None:
  """Writes ``data`` to ``path`` through a temporary file and a rename.

  Raises:
    sae.errors.InputError: see check_output.
  """
  path = pathlib.Path(path)
  parent = check_output(path)
  fd, tmp = tempfile.mkstemp(dir=parent, prefix=f".{path.name}.", suffix=".tmp")
  try:
    # mkstemp creates 0600; give the file the permissions open() would.
    umask = os.umask(0)
    os.umask(umask)
    os.fchmod(fd, 0o666 & ~umask)
    with os.fdopen(fd, "wb") as f:
      f.write(data)
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.unlink(tmp)
    raise


def write_json(path, obj, sort_keys=False) -> None:
  """Writes ``obj`` as indented JSON with a final newline, atomically.

  The one JSON writer of the project: results, reports, BD-rates, training
  state and manifests all look alike and are never seen half-written.
  """
  text = json.dumps(obj, indent=2, sort_keys=sort_keys) + "\n"
  atomic_write(path, text.encode())
