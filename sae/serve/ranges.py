"""The layer server's HTTP validators and byte ranges: ETags, If-None-Match
and Range (RFC 9110).

Pure functions of header values and sizes, apart from the application so
that their exact answers (a 416, a malformed header ignored) are unit
tested without a server (tests/test_serve_ranges.py).
"""

import hashlib
import re

from sae.serve.refusal import Refusal

RANGE = re.compile(r"bytes=(\d*)-(\d*)")


def etag_of(data: bytes) -> str:
  """The strong ETag of a body: a hash of its bytes, quoted."""
  return '"' + hashlib.blake2b(data, digest_size=12).hexdigest() + '"'


def matches(if_none_match, etag) -> bool:
  """Whether an If-None-Match header names ``etag`` (or ``*``): a 304."""
  if not if_none_match:
    return False
  tags = [t.strip() for t in if_none_match.split(",")]
  return "*" in tags or etag in tags or f"W/{etag}" in tags


def byte_range(header, size):
  """(start, end) of a single-range ``Range`` header, end exclusive; None to
  send the whole body (no header, several ranges, or a malformed one, which
  RFC 9110 lets a server ignore).

  Raises:
    Refusal: 416 when the range starts past the end.
  """
  if not header:
    return None
  match = RANGE.fullmatch(header.strip())
  if not match or not (match[1] or match[2]):
    return None
  first, last = match[1], match[2]
  if not first:  # the last N bytes
    count = int(last)
    if count == 0:
      raise _unsatisfiable(size)
    return max(size - count, 0), size
  start = int(first)
  if last and int(last) < start:  # malformed
    return None
  if start >= size:
    raise _unsatisfiable(size)
  return start, size if not last else min(int(last) + 1, size)


def _unsatisfiable(size):
  return Refusal(416, f"range outside the {size} bytes of this file",
                 {"Content-Range": f"bytes */{size}"})
