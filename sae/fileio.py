"""Atomic file output: a reader never sees a half-written file."""

import os
import pathlib
import tempfile

from sae.errors import InputError


def atomic_write(path, data: bytes) -> None:
  """Writes ``data`` to ``path`` through a temporary file and a rename.

  Raises:
    sae.errors.InputError: the output directory does not exist.
  """
  path = pathlib.Path(path)
  parent = path.parent if str(path.parent) else pathlib.Path(".")
  if not parent.is_dir():
    raise InputError(f"output directory {str(parent)!r} does not exist")
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
