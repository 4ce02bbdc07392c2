"""The layered stream: prefixes are files, and damage is always refused.

The first tests need no model.  The property-based ones push mutated streams
of the tiny model through sae.codec.decode: every outcome must be a clean
refusal (InputError) or an image of the header's size, never another
exception or a hang.
"""

import struct
import tracemalloc
import zlib

from hypothesis import HealthCheck, given, settings, strategies as st
import numpy as np
import pytest

from sae.stream import bitstream
from sae.errors import InputError
from tiny import random_image

IDS = (b"\x01\x02\x03\x04", b"\x05\x06\x07\x08", b"\x09\x0a\x0b\x0c")
PAYLOADS = (b"base layer payload", b"", b"\x00\xff" * 7)
PROPERTY = settings(max_examples=200, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


def small_stream(layers=3, height=5, width=7):
  return bitstream.pack(height, width, PAYLOADS[:layers], IDS[:layers])


def header(magic=bitstream.MAGIC, version=bitstream.VERSION, layers=1,
           height=5, width=7, fix_crc=True):
  head = struct.pack(">4sBBHH", magic, version, layers, height, width)
  crc = zlib.crc32(head) if fix_crc else 0
  return head + struct.pack(">I", crc)


# Structure, no model.


def test_pack_unpack_round_trip():
  stream = bitstream.unpack(small_stream())
  assert (stream.height, stream.width, stream.num_layers) == (5, 7, 3)
  assert stream.payloads == PAYLOADS and stream.weights_ids == IDS
  assert stream.version == bitstream.VERSION


def test_truncate_is_the_stream_of_the_prefix():
  data = small_stream()
  for k in (1, 2, 3):
    assert bitstream.truncate(data, k) == small_stream(layers=k)
    assert data.startswith(bitstream.truncate(data, k)[bitstream.HEADER_BYTES:],
                           bitstream.HEADER_BYTES)


def test_layer_bytes_count_every_byte():
  data = small_stream()
  sizes = bitstream.layer_bytes(data)
  assert len(sizes) == 3 and sum(sizes) == len(data)


@pytest.mark.parametrize("layers", [0, bitstream.MAX_LAYERS + 1])
def test_truncate_refuses_layer_counts_out_of_range(layers):
  with pytest.raises(InputError, match="--layers"):
    bitstream.truncate(small_stream(), layers)


def test_every_cut_is_refused():
  data = small_stream()
  for n in range(len(data)):
    with pytest.raises(bitstream.StreamError):
      bitstream.unpack(data[:n])


def test_trailing_bytes_are_refused():
  with pytest.raises(bitstream.StreamError, match="unexpected bytes"):
    bitstream.unpack(small_stream() + b"\0")


def test_every_single_bit_flip_is_refused():
  data = small_stream()
  for bit in range(8 * len(data)):
    mutated = bytearray(data)
    mutated[bit // 8] ^= 1 << (bit % 8)
    with pytest.raises(bitstream.StreamError):
      bitstream.unpack(bytes(mutated))


@pytest.mark.parametrize("head,reason", [
    (b"PNG\x89" + bytes(20), "bad magic"),
    (b"PNG\x89", "bad magic"),
    (header(version=3), "version 3"),
    (header(fix_crc=False), "header is corrupted"),
    (header(height=60000, width=60000), "size"),
    (header(height=0), "size"),
    (header(layers=0), "layer count"),
    (header(layers=255), "layer count"),
])
def test_bad_headers_are_refused(head, reason):
  with pytest.raises(bitstream.StreamError, match=reason):
    bitstream.unpack(head + bytes(12) if len(head) >= 4 else head)


@pytest.mark.parametrize("data", [b"S", b"SAE\x1a\x01"])
def test_short_inputs_are_refused(data):
  with pytest.raises(bitstream.StreamError, match="cut"):
    bitstream.unpack(data)


def test_empty_input_is_not_a_stream():
  with pytest.raises(bitstream.StreamError, match="not an SAE stream"):
    bitstream.unpack(b"")


def test_absurd_sizes_allocate_nothing_large():
  huge_chunk = header() + struct.pack(">I4sI", 0xFFFFFFFF, IDS[0], 0) + b"x"
  tracemalloc.start()
  try:
    for data in (huge_chunk, header(height=60000, width=60000),
                 header(layers=8) + bytes(12)):
      with pytest.raises(bitstream.StreamError):
        bitstream.unpack(data)
    _, peak = tracemalloc.get_traced_memory()
  finally:
    tracemalloc.stop()
  assert peak < 1 << 20


def test_chunks_do_not_move_between_layers_or_images():
  # Each chunk's checksum binds it to its index and to the image size.
  head, (one, two) = split_chunks(bitstream.pack(5, 7, [b"1", b"2"], IDS[:2]))
  with pytest.raises(bitstream.StreamError, match="layer 1 is corrupted"):
    bitstream.unpack(head + two + one)
  _, (other_size,) = split_chunks(bitstream.pack(7, 5, [b"1"], IDS[:1]))
  with pytest.raises(bitstream.StreamError, match="layer 1 is corrupted"):
    bitstream.unpack(small_stream(layers=1)[:bitstream.HEADER_BYTES] +
                     other_size)


@PROPERTY
@given(data=st.binary(max_size=200))
def test_random_bytes_are_refused(data):
  with pytest.raises(bitstream.StreamError):
    bitstream.unpack(data)


# Mutated real streams through the decoder.


@pytest.fixture(scope="module")
def streams(tiny_model):
  """Two 4-layer streams of one size and one of another size."""
  from sae import codec
  make = lambda h, w, seed: codec.encode(  # noqa: E731
      tiny_model, random_image(h, w, seed), tiny_model.num_layers)
  return make(9, 13, 0), make(9, 13, 1), make(13, 9, 2)


def decode_outcome(model, data):
  """'refused' or 'decoded'; fails the test on anything else."""
  from sae import codec
  try:
    image = codec.decode(model, data)
  except InputError as e:
    assert "\n" not in str(e)
    return "refused"
  head = bitstream.unpack(data)
  assert image.shape == (head.height, head.width, 3)
  assert image.dtype == np.uint8
  return "decoded"


def test_the_unmutated_streams_decode(tiny_model, streams):
  for data in streams:
    assert decode_outcome(tiny_model, data) == "decoded"


def test_every_cut_of_a_real_stream_is_refused(tiny_model, streams):
  data = streams[0]
  for n in range(len(data)):
    assert decode_outcome(tiny_model, data[:n]) == "refused"


@PROPERTY
@given(st.data())
def test_bit_flips(tiny_model, streams, data):
  stream = data.draw(st.sampled_from(streams))
  bits = data.draw(st.lists(st.integers(0, 8 * len(stream) - 1), min_size=1,
                            max_size=8, unique=True))
  mutated = bytearray(stream)
  for bit in bits:
    mutated[bit // 8] ^= 1 << (bit % 8)
  assert decode_outcome(tiny_model, bytes(mutated)) == "refused"


@PROPERTY
@given(st.data())
def test_byte_changes_and_cuts(tiny_model, streams, data):
  stream = bytearray(data.draw(st.sampled_from(streams)))
  for _ in range(data.draw(st.integers(1, 4))):
    pos = data.draw(st.integers(0, len(stream) - 1))
    stream[pos] = data.draw(st.integers(0, 255))
  stream = stream[:data.draw(st.integers(0, len(stream)))]
  decode_outcome(tiny_model, bytes(stream))


def split_chunks(data):
  """Raw chunk bytes (header + payload) of a valid stream."""
  parsed, pos, chunks = bitstream.unpack(data), bitstream.HEADER_BYTES, []
  for payload in parsed.payloads:
    end = pos + 12 + len(payload)
    chunks.append(data[pos:end])
    pos = end
  return data[:bitstream.HEADER_BYTES], chunks


@PROPERTY
@given(st.data())
def test_spliced_chunks(tiny_model, streams, data):
  head, chunks = split_chunks(streams[0])
  donors = [split_chunks(s)[1] for s in streams]
  new = list(chunks)
  for _ in range(data.draw(st.integers(1, 3))):
    k = data.draw(st.integers(0, len(new) - 1))
    donor = data.draw(st.sampled_from(donors))
    new[k] = donor[data.draw(st.integers(0, len(donor) - 1))]
  outcome = decode_outcome(tiny_model, head + b"".join(new))
  # Only a chunk of the same image size, index and weights can be accepted.
  for k, chunk in enumerate(new):
    if chunk not in (donors[0][k], donors[1][k]):
      assert outcome == "refused"


@settings(max_examples=100, deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_garbage_payloads_with_valid_checksums(tiny_model, streams, data):
  # Checksums recomputed: the damage reaches the range decoder itself.
  parsed = bitstream.unpack(data.draw(st.sampled_from(streams)))
  payloads = list(parsed.payloads)
  k = data.draw(st.integers(0, len(payloads) - 1))
  payloads[k] = data.draw(st.one_of(
      st.binary(max_size=64),
      st.just(payloads[k][:data.draw(st.integers(0, len(payloads[k])))]),
      st.just(payloads[k] + data.draw(st.binary(min_size=1, max_size=8)))))
  height = data.draw(st.sampled_from([parsed.height, 1, 40]))
  width = data.draw(st.sampled_from([parsed.width, 1, 40]))
  crafted = bitstream.pack(height, width, payloads, parsed.weights_ids)
  decode_outcome(tiny_model, crafted)


def test_splice_of_a_same_size_stream_decodes_to_the_right_size(
    tiny_model, streams):
  head, a = split_chunks(streams[0])
  _, b = split_chunks(streams[1])
  assert decode_outcome(tiny_model, head + a[0] + b[1] + a[2] + b[3]) == "decoded"
