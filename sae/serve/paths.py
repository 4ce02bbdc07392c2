"""The served folder: which names may be read, and reading them.

Its own module because it is the server's safety boundary: nothing outside
the served folder is ever read.  A name must be a plain, visible file name;
its real path (symbolic links followed) must lie directly in the folder and
be a regular file, opened without following a link; and no more than
``max_file_bytes`` are read.  Every way in goes through Folder.
"""

import dataclasses
import os
import stat

from sae.errors import InputError
from sae.serve import ranges
from sae.serve.refusal import Refusal
from sae.stream import bitstream

MAX_NAME = 255             # bytes of a file name (most file systems)


@dataclasses.dataclass
class Entry:
  """A stream file of the folder, parsed, as of one stat."""

  name: str
  stamp: tuple             # (device, inode, size, mtime): changes with the file
  data: bytes
  stream: bitstream.Stream  # its complete layers
  declared: int
  etag: str                # of the whole file


class Folder:
  """Reads stream files of one folder and nothing outside it."""

  def __init__(self, root, max_file_bytes):
    self.root = os.path.realpath(root)
    self.max_file_bytes = max_file_bytes

  def path(self, name) -> str:
    """The real path of file ``name`` of the folder.

    Raises:
      Refusal: 400 for a name that is not a plain file name, 404 for one that
        is absent or leads outside the folder (a symbolic link).
    """
    if (not name or len(name.encode("utf-8", "surrogatepass")) > MAX_NAME or
        name in (".", "..") or name.startswith(".") or
        any(c in name for c in "/\\\0")):
      raise Refusal(400, f"bad file name {name!r}: a file name in the served "
                    "folder, without folders, not hidden")
    real = os.path.realpath(os.path.join(self.root, name))
    if os.path.dirname(real) != self.root:
      raise Refusal(404, f"no stream named {name!r}")
    return real

  def stamp(self, name):
    """(real path, stat stamp) of a regular file, or a 404."""
    path = self.path(name)
    try:
      st = os.stat(path)
    except OSError:
      raise Refusal(404, f"no stream named {name!r}") from None
    if not stat.S_ISREG(st.st_mode):
      raise Refusal(404, f"no stream named {name!r}")
    return path, (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)

  def read(self, name, path) -> Entry:
    """Reads and parses a stream file (blocking)."""
    try:
      fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
      raise Refusal(404, f"no stream named {name!r}") from None
    with os.fdopen(fd, "rb") as f:
      st = os.fstat(f.fileno())
      if not stat.S_ISREG(st.st_mode):
        raise Refusal(404, f"no stream named {name!r}")
      if st.st_size > self.max_file_bytes:
        raise Refusal(422, f"{name!r} is {st.st_size} bytes, more than this "
                      f"server reads ({self.max_file_bytes})")
      data = f.read(self.max_file_bytes + 1)
    if len(data) > self.max_file_bytes:
      raise Refusal(422, f"{name!r} grew past {self.max_file_bytes} bytes")
    try:
      stream, declared = bitstream.unpack_prefix(data)
    except InputError as e:
      raise Refusal(422, f"{name!r} is not a usable stream: {e}") from None
    if not stream.num_layers:
      raise Refusal(422, f"{name!r} is cut in layer 1 of {declared}: not "
                    "even the base layer is complete")
    stamp = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
    return Entry(name, stamp, data, stream, declared, ranges.etag_of(data))

  def names(self) -> list:
    """Plain, visible file names of the folder (no subfolders), sorted."""
    with os.scandir(self.root) as it:
      names = sorted(e.name for e in it if not e.name.startswith("."))
    return names
