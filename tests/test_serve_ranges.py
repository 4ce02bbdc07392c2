"""sae.serve.ranges: the layer server's ETags, If-None-Match and Range
answers, exactly, without a server (tests/test_serve.py checks them over
HTTP)."""

import pytest

from sae.serve import ranges
from sae.serve.refusal import Refusal

SIZE = 100


# ETags and If-None-Match.


def test_an_etag_is_a_quoted_hash_of_the_bytes():
  # Pinned: a client's cached copy stays valid across server versions.
  assert ranges.etag_of(b"layer") == '"028dd7565b5a85a89a8633fc"'
  assert ranges.etag_of(b"layer ") != ranges.etag_of(b"layer")


@pytest.mark.parametrize("header,hit", [
    (None, False),
    ("", False),
    ('"x"', True),
    (' "x" ', True),
    ('W/"x"', True),              # a weak comparison is enough for a 304
    ('"y", "x"', True),
    ('"y","x"', True),
    ("*", True),
    ('"y", *', True),
    ('"y"', False),
    ("x", False),                 # unquoted: another tag
    ('W/ "x"', False),
    ('"x"; "y"', False),
])
def test_if_none_match(header, hit):
  assert ranges.matches(header, '"x"') is hit


# Range.


@pytest.mark.parametrize("header,span", [
    ("bytes=0-13", (0, 14)),
    ("bytes=14-", (14, SIZE)),
    ("bytes=99-", (99, SIZE)),
    ("bytes=0-0", (0, 1)),
    ("bytes=10-999999", (10, SIZE)),  # an end past the file: to its end
    ("bytes=99-99", (99, SIZE)),
    ("bytes=-5", (SIZE - 5, SIZE)),   # the last 5 bytes
    ("bytes=-100", (0, SIZE)),
    ("bytes=-1000", (0, SIZE)),       # more than the file: all of it
    ("bytes=007-010", (7, 11)),
    ("  bytes=0-3\t", (0, 4)),        # surrounding white space is dropped
])
def test_a_single_range(header, span):
  assert ranges.byte_range(header, SIZE) == span


@pytest.mark.parametrize("header", [
    None, "",
    "bytes=",            # neither end
    "bytes=-",
    "bytes=5-2",         # the end before the start
    "bytes=0-1,4-5",     # several ranges: the whole body instead
    "lines=0-3",         # another unit
    "Bytes=0-3",         # the unit is matched as sent
    "bytes = 0-3",
    "bytes=0-3x",
    "bytes=a-3",
    "bytes=-1-3",
    "bytes=0 - 3",
])
def test_a_malformed_or_multiple_range_is_ignored(header):
  # RFC 9110 lets a server ignore a Range header it cannot use: the whole
  # body, 200.
  assert ranges.byte_range(header, SIZE) is None


@pytest.mark.parametrize("header", ["bytes=100-", "bytes=100-200",
                                    "bytes=5000-", "bytes=-0"])
def test_a_range_outside_the_file_is_416(header):
  with pytest.raises(Refusal) as raised:
    ranges.byte_range(header, SIZE)
  refusal = raised.value
  assert refusal.status == 416
  assert refusal.reason == "range outside the 100 bytes of this file"
  assert refusal.headers == {"Content-Range": "bytes */100"}


def test_a_reversed_range_past_the_end_is_ignored_not_416():
  # Malformed first: "bytes=200-150" names no byte, so the whole body.
  assert ranges.byte_range("bytes=200-150", SIZE) is None
