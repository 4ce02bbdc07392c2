"""Cut files and incremental decoding: bitstream.unpack_prefix,
sae.progressive, ``decompress --partial`` and ``info`` on a cut file.

A cut file is what an interrupted download leaves.  Whatever the cut point,
its complete layers decode to what the truncated file decodes to, or it is
refused cleanly; never a crash or an image of the wrong size.
"""

import json

import numpy as np
import pytest

from sae.stream import bitstream
from sae import codec, progressive
from sae.errors import InputError
from cli_helpers import cli, read_png, write_png
from tiny import random_image

IDS = (b"\x01\x02\x03\x04", b"\x05\x06\x07\x08", b"\x09\x0a\x0b\x0c")
PAYLOADS = (b"base layer payload", b"", b"\x00\xff" * 7)


def layer_ends(data):
  """Size of the k-layer file for k = 1..n (bitstream.truncate)."""
  return np.cumsum(bitstream.layer_bytes(data)).tolist()


def complete_layers(ends, size):
  return sum(end <= size for end in ends)


@pytest.fixture(scope="module")
def stream4(tiny_model):
  """A 4-layer stream of a 21x35 image and its k-layer images."""
  data = codec.encode(tiny_model, random_image(21, 35, seed=11), 4)
  images = [codec.decode(tiny_model, data, k) for k in range(1, 5)]
  return data, images


# The container alone.


def test_unpack_prefix_at_every_cut_point():
  data = bitstream.pack(5, 7, PAYLOADS, IDS)
  ends = layer_ends(data)
  for size in range(bitstream.HEADER_BYTES, len(data) + 1):
    stream, declared = bitstream.unpack_prefix(data[:size])
    assert declared == 3
    k = complete_layers(ends, size)
    assert stream.num_layers == k, size
    assert stream.payloads == PAYLOADS[:k]
    if k:
      assert bitstream.repack(stream) == bitstream.truncate(data, k)
  assert bitstream.unpack_prefix(data)[0] == bitstream.unpack(data)


@pytest.mark.parametrize("bad,reason", [
    (lambda d: d[:9], "cut in its header"),
    (lambda d: b"", "bad magic"),
    (lambda d: b"PNG" + d[3:], "bad magic"),
    (lambda d: d + b"\0", "unexpected bytes"),
    (lambda d: d[:20] + bytes([d[20] ^ 1]) + d[21:], "layer 1 is corrupted"),
    (lambda d: d[:-1] + bytes([d[-1] ^ 1]), "layer 3 is corrupted"),
])
def test_unpack_prefix_refuses_damage(bad, reason):
  data = bitstream.pack(5, 7, PAYLOADS, IDS)
  with pytest.raises(bitstream.StreamError, match=reason):
    bitstream.unpack_prefix(bad(data))


# The incremental decoder.


@pytest.mark.parametrize("piece", [1, 7, 100, 10**6])
def test_each_layer_appears_as_its_bytes_arrive(tiny_model, stream4, piece):
  data, images = stream4
  ends = layer_ends(data)
  decoder = progressive.ProgressiveDecoder(tiny_model)
  steps = []
  for start in range(0, len(data), piece):
    steps += decoder.feed(data[start:start + piece])
    # Never a layer early, never one late.
    assert decoder.layers == complete_layers(ends, min(start + piece,
                                                       len(data)))
  assert decoder.close() == 4 and decoder.done
  assert [s.layers for s in steps] == [1, 2, 3, 4]
  for step, image in zip(steps, images):
    assert step.declared_layers == 4
    assert step.bytes == len(bitstream.truncate(data, step.layers))
    np.testing.assert_array_equal(step.image, image)  # pixel for pixel
  np.testing.assert_array_equal(decoder.image, images[-1])


def test_each_layer_is_decoded_once_on_top_of_the_layers_below(
    tiny_model, stream4, monkeypatch):
  data, _ = stream4
  refined = []
  refine = tiny_model.refine

  def counting(k, *args):
    refined.append(int(k))
    return refine(k, *args)

  monkeypatch.setattr(tiny_model, "refine", counting)
  monkeypatch.setattr(codec, "decode", None)  # no restart from layer 0
  steps = list(progressive.decode_progressively(
      tiny_model, [data[i:i + 50] for i in range(0, len(data), 50)]))
  assert len(steps) == 4 and refined == [0, 1, 2, 3]


def test_a_cut_stream_yields_its_complete_layers_then_refuses(tiny_model,
                                                              stream4):
  data, images = stream4
  cut = data[:layer_ends(data)[1] + 5]
  got = []
  with pytest.raises(bitstream.StreamError, match="cut in layer 3 of 4"):
    for step in progressive.decode_progressively(tiny_model, [cut]):
      got.append(step)
  assert [s.layers for s in got] == [1, 2]
  np.testing.assert_array_equal(got[-1].image, images[1])


def other_ids(data):
  parsed = bitstream.unpack(data)
  return bitstream.pack(parsed.height, parsed.width, parsed.payloads,
                        [b"\xde\xad\xbe\xef"] * 4, parsed.version)


@pytest.mark.parametrize("bad,reason,layers_before", [
    (lambda d: b"GIF89a" + d, "bad magic", 0),
    (lambda d: d + b"\0", "unexpected bytes", 4),
    (lambda d: d[:-1] + bytes([d[-1] ^ 1]), "layer 4 is corrupted", 3),
    (other_ids, "coded with weights deadbeef", 0),
])
def test_bad_streams_are_refused_at_the_bad_layer(tiny_model, stream4, bad,
                                                  reason, layers_before):
  data, _ = stream4
  decoder = progressive.ProgressiveDecoder(tiny_model)
  with pytest.raises(InputError, match=reason):
    for byte in range(len(bad(data))):
      decoder.feed(bad(data)[byte:byte + 1])
  assert decoder.layers == layers_before
  with pytest.raises(InputError, match=reason):  # spent
    decoder.feed(b"")


def test_a_pixel_limit_refuses_the_header(tiny_model, stream4):
  data, _ = stream4
  decoder = progressive.ProgressiveDecoder(tiny_model, max_pixels=21 * 35 - 1)
  with pytest.raises(InputError, match="more than the limit of 734"):
    decoder.feed(data[:bitstream.HEADER_BYTES])
  assert len(progressive.ProgressiveDecoder(
      tiny_model, max_pixels=21 * 35).feed(data)) == 4


# The command line: decompress --partial and info.


def assert_one_line_refusal(result):
  status, out, err = result
  assert (status, out) == (2, "")
  assert err.startswith("error: ") and err.count("\n") == 1, err
  return err


def test_decompress_partial_at_every_cut_point(tiny_weights, tiny_model,
                                               stream4, tmp_path):
  data, images = stream4
  ends = layer_ends(data)
  cut, png = tmp_path / "cut.sae", tmp_path / "out.png"
  for size in range(len(data) + 1):
    cut.write_bytes(data[:size])
    result = cli("decompress", cut, png, "--partial", "--weights", tiny_weights)
    k = complete_layers(ends, size) if size >= bitstream.HEADER_BYTES else 0
    if k == 0:
      err = assert_one_line_refusal(result)
      assert ("base layer" in err or "header" in err or "magic" in err), err
      assert not png.exists()
      continue
    status, out, err = result
    assert (status, out) == (0, ""), (size, err)
    why = "the file is complete" if size == len(data) else (
        f"the file is cut in layer {k + 1}")
    assert err == f"decoded {k} of 4 layers ({why})\n"
    np.testing.assert_array_equal(read_png(png), images[k - 1])
    png.unlink()


def test_decompress_partial_keeps_to_layers(tiny_weights, stream4, tmp_path):
  data, images = stream4
  cut = tmp_path / "cut.sae"
  cut.write_bytes(data[:layer_ends(data)[2] + 1])
  for layers, used in [(1, 1), (3, 3), (4, 3)]:
    status, _, err = cli("decompress", cut, tmp_path / "o.png", "--partial",
                         "--layers", layers, "--weights", tiny_weights)
    assert status == 0 and err.startswith(f"decoded {used} of 4 layers")
    np.testing.assert_array_equal(read_png(tmp_path / "o.png"),
                                  images[used - 1])


def test_without_partial_a_cut_file_is_still_refused(tiny_weights, stream4,
                                                     tmp_path):
  data, _ = stream4
  cut = tmp_path / "cut.sae"
  cut.write_bytes(data[:-1])
  err = assert_one_line_refusal(cli("decompress", cut, tmp_path / "o.png",
                                    "--weights", tiny_weights))
  assert "cut" in err


def test_info_reports_the_complete_layers_of_a_cut_file(stream4, tmp_path):
  data, _ = stream4
  ends = layer_ends(data)
  path = tmp_path / "s.sae"
  for size in (ends[0], ends[1] + 3, len(data) - 1, len(data)):
    path.write_bytes(data[:size])
    status, out, err = cli("info", path)
    assert (status, err) == (0, "")
    info = json.loads(out)
    k = complete_layers(ends, size)
    assert info["layers"] == len(info["layer_bytes"]) == len(info["bpp"]) == k
    assert info["declared_layers"] == 4 and info["cut"] == (k < 4)
    assert info["layer_bytes"] == bitstream.layer_bytes(data)[:k]
    assert info["bytes"] == size == ends[k - 1] + info["partial_bytes"]
    assert info["weights_id"] == info["layer_weights_ids"][-1]
  path.write_bytes(data[:ends[0] - 1])
  assert "not even the base layer" in assert_one_line_refusal(cli("info", path))


def test_partial_round_trip_through_a_real_file(tiny_weights, tiny_model,
                                                tmp_path):
  # compress -> cut at a layer boundary and in the middle of the next layer.
  src = write_png(tmp_path / "in.png", random_image(24, 40, seed=9))
  full = tmp_path / "full.sae"
  assert cli("compress", src, full, "--weights", tiny_weights)[0] == 0
  data = full.read_bytes()
  (tmp_path / "cut.sae").write_bytes(data[:layer_ends(data)[1] + 7])
  assert cli("decompress", tmp_path / "cut.sae", tmp_path / "o.png",
             "--partial", "--weights", tiny_weights)[0] == 0
  np.testing.assert_array_equal(read_png(tmp_path / "o.png"),
                                codec.decode(tiny_model, data, 2))
