"""sae.serve.paths.Folder: what the layer server may read, without a server
(tests/test_serve.py checks the same over HTTP): nothing outside the folder,
no hidden or non-regular file, nothing over the size limit."""

import os

import pytest

from sae.serve import paths, ranges
from sae.serve.refusal import Refusal
from sae.stream import bitstream

IDS = (b"\x01\x02\x03\x04", b"\x05\x06\x07\x08", b"\x09\x0a\x0b\x0c")
DATA = bitstream.pack(5, 7, (b"base", b"second", b"third"), IDS)


@pytest.fixture
def folder(tmp_path):
  root = tmp_path / "served"
  root.mkdir()
  (root / "a.sae").write_bytes(DATA)
  (root / "cut.sae").write_bytes(DATA[:-3])  # 2 complete layers of 3
  (root / "base.sae").write_bytes(DATA[:bitstream.HEADER_BYTES + 3])
  (root / "notes.txt").write_text("not a stream\n")
  (root / ".hidden.sae").write_bytes(DATA)
  (root / "sub").mkdir()
  (tmp_path / "secret.sae").write_bytes(DATA)
  (root / "out.sae").symlink_to(tmp_path / "secret.sae")
  (root / "in.sae").symlink_to(root / "a.sae")
  return paths.Folder(root, max_file_bytes=len(DATA))


def refused(call, *args):
  with pytest.raises(Refusal) as raised:
    call(*args)
  return raised.value.status, raised.value.reason


@pytest.mark.parametrize("name", [
    "", ".", "..", ".hidden.sae", "sub/a.sae", "../a.sae", "/etc/passwd",
    "a\\b", "a\0b", "x" * 256, "é" * 128])
def test_a_name_that_is_not_a_plain_visible_file_name_is_400(folder, name):
  status, reason = refused(folder.path, name)
  assert status == 400 and reason.startswith("bad file name")


def test_the_longest_name_is_255_bytes(folder):
  assert folder.path("x" * 255) == os.path.join(folder.root, "x" * 255)
  assert refused(folder.stamp, "x" * 255)[0] == 404


@pytest.mark.parametrize("name", ["out.sae", "missing.sae", "sub"])
def test_a_link_out_an_absent_file_and_a_folder_are_404(folder, name):
  assert refused(folder.stamp, name) == (404, f"no stream named {name!r}")


def test_a_link_inside_the_folder_reads_its_target(folder):
  path, stamp = folder.stamp("in.sae")
  assert path == os.path.join(folder.root, "a.sae")
  entry = folder.read("in.sae", path)
  assert entry.data == DATA and entry.stamp == stamp


def test_a_stream_is_read_and_parsed(folder):
  entry = folder.read("a.sae", folder.stamp("a.sae")[0])
  assert (entry.name, entry.data, entry.declared) == ("a.sae", DATA, 3)
  assert entry.stream == bitstream.unpack(DATA)
  assert entry.etag == ranges.etag_of(DATA)
  cut = folder.read("cut.sae", folder.stamp("cut.sae")[0])
  assert (cut.stream.num_layers, cut.declared) == (2, 3)


@pytest.mark.parametrize("name,reason", [
    ("notes.txt", "'notes.txt' is not a usable stream: "),
    ("base.sae", "'base.sae' is cut in layer 1 of 3: not even the base "
     "layer is complete"),
])
def test_a_file_that_is_no_usable_stream_is_422(folder, name, reason):
  status, text = refused(folder.read, name, folder.stamp(name)[0])
  assert status == 422 and text.startswith(reason)


def test_a_file_over_the_limit_is_not_read(folder):
  small = paths.Folder(folder.root, max_file_bytes=len(DATA) - 1)
  assert refused(small.read, "a.sae", small.stamp("a.sae")[0]) == (
      422, f"'a.sae' is {len(DATA)} bytes, more than this server reads "
      f"({len(DATA) - 1})")


def test_a_link_is_never_followed_by_the_read_itself(folder):
  # The real path is checked first; a link put in its place afterwards is
  # not opened (O_NOFOLLOW).
  assert refused(folder.read, "in.sae",
                 os.path.join(folder.root, "in.sae"))[0] == 404


def test_names_are_the_visible_entries_sorted(folder):
  assert folder.names() == ["a.sae", "base.sae", "cut.sae", "in.sae",
                            "notes.txt", "out.sae", "sub"]
