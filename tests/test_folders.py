"""``compress`` / ``decompress`` of several files and folders (sae.cli.folders).

In-process through ``commands.main`` with the tiny weights: each output
equals what the one-file command writes, up-to-date outputs are skipped,
a bad file is reported and the others still coded, never a partial file.
"""

import os
import pathlib

import numpy as np

from cli_helpers import cli, read_png, write_png
from tiny import random_image


def _images(folder, count=3):
  folder.mkdir(parents=True, exist_ok=True)
  return [write_png(folder / f"img{i}.png", random_image(17 + i, 23, seed=i))
          for i in range(count)]


def _summary(out):
  lines = out.strip().splitlines()
  assert len(lines) == 1, out
  return lines[0]


def test_folder_equals_one_file_commands(tiny_weights, tmp_path):
  sources = _images(tmp_path / "photos")
  (tmp_path / "photos" / "notes.txt").write_text("not an image")
  status, out, err = cli("compress", tmp_path / "photos", tmp_path / "streams",
                         "--weights", tiny_weights)
  assert (status, err) == (0, "")
  assert _summary(out).startswith("compressed 3 file(s)")
  streams = sorted((tmp_path / "streams").iterdir())
  assert [p.name for p in streams] == ["img0.sae", "img1.sae", "img2.sae"]
  for source, stream in zip(sources, streams):
    one = tmp_path / "one.sae"
    assert cli("compress", source, one, "--weights", tiny_weights)[0] == 0
    assert stream.read_bytes() == one.read_bytes()

  status, out, err = cli("decompress", tmp_path / "streams", tmp_path / "png",
                         "--weights", tiny_weights, "--layers", 2)
  assert (status, err) == (0, "")
  assert _summary(out).startswith("decompressed 3 file(s)")
  for stream in streams:
    one = tmp_path / "one.png"
    assert cli("decompress", stream, one, "--weights", tiny_weights,
               "--layers", 2)[0] == 0
    np.testing.assert_array_equal(
        read_png(tmp_path / "png" / (stream.stem + ".png")), read_png(one))


def test_several_files_into_a_folder_like_cp(tiny_weights, tmp_path):
  a, b = _images(tmp_path / "in", 2)
  out = tmp_path / "out"
  out.mkdir()
  assert cli("compress", a, b, out, "--weights", tiny_weights)[0] == 0
  assert sorted(p.name for p in out.iterdir()) == ["img0.sae", "img1.sae"]
  # One file into an existing folder, as cp does.
  assert cli("decompress", out / "img0.sae", out, "--weights",
             tiny_weights)[0] == 0
  assert read_png(out / "img0.png").shape == (17, 23, 3)


def test_up_to_date_outputs_are_skipped_unless_forced(tiny_weights, tmp_path):
  sources = _images(tmp_path / "in", 2)
  out = tmp_path / "out"
  assert cli("compress", tmp_path / "in", out, "--weights", tiny_weights)[0] == 0
  stale = out / "img1.sae"
  stale.write_bytes(b"old")
  # Outputs older than their input are redone; newer ones are kept.
  later = sources[1].stat().st_mtime + 10
  os.utime(sources[1], (later, later))
  status, out_text, _ = cli("compress", tmp_path / "in", out, "--weights",
                            tiny_weights)
  assert status == 0
  assert "compressed 1 file(s)" in out_text and "1 up to date" in out_text
  assert stale.read_bytes() != b"old"
  first = (out / "img0.sae").stat().st_mtime_ns
  status, out_text, _ = cli("compress", tmp_path / "in", out, "--weights",
                            tiny_weights, "--force")
  assert status == 0 and "compressed 2 file(s)" in out_text
  assert (out / "img0.sae").stat().st_mtime_ns >= first


def test_bad_files_are_reported_and_the_rest_coded(tiny_weights, tmp_path):
  _images(tmp_path / "in", 2)
  (tmp_path / "in" / "broken.png").write_bytes(b"\x89PNG not really")
  out = tmp_path / "out"
  status, _, err = cli("compress", tmp_path / "in", out, "--weights",
                       tiny_weights, "--no-progress")
  assert status == 2
  lines = err.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith("error: ")
  assert "broken.png" in lines[0]
  assert sorted(p.name for p in out.iterdir()) == ["img0.sae", "img1.sae"]

  streams = tmp_path / "streams"
  streams.mkdir()
  good = (out / "img0.sae").read_bytes()
  (streams / "good.sae").write_bytes(good)
  (streams / "cut.sae").write_bytes(good[:len(good) // 2])
  png = tmp_path / "png"
  status, out_text, err = cli("decompress", streams, png, "--weights",
                              tiny_weights)
  assert status == 2
  assert err.count("\n") == 1 and "cut.sae" in err
  assert "1 failed" in out_text
  # Nothing partial: only the good image, no temporary files.
  assert [p.name for p in png.iterdir()] == ["good.png"]


def test_refusals_before_any_work(tiny_weights, tmp_path):
  a, = _images(tmp_path / "in", 1)
  (tmp_path / "in" / "img0.jpg").write_bytes(a.read_bytes())
  cases = [
      (["compress", tmp_path / "in", tmp_path / "out"], "would both be written"),
      (["compress", a, tmp_path / "missing.png", tmp_path / "out"],
       "does not exist"),
      (["compress", tmp_path / "empty", tmp_path / "out"], "does not exist"),
      (["decompress", tmp_path / "in", tmp_path / "out"], "no .sae files"),
      (["compress", a, a, a], "not a folder"),
      (["compress", tmp_path / "in", tmp_path / "no" / "out"],
       "does not exist"),
  ]
  for argv, reason in cases:
    status, out, err = cli(*argv, "--weights", tiny_weights)
    assert status == 2 and out == "", (argv, out)
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert reason in err, (argv, err)
    assert not (tmp_path / "out").exists()
  assert pathlib.Path(a).read_bytes()[:4] == b"\x89PNG"
