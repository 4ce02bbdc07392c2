"""`python -m sae`: usage, its name, and the refusals a new user meets first."""

import json
import pathlib

from sae.stream import bitstream
from sae.cli import commands
from tests.cli_helpers import cli

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_no_arguments_print_the_usage_line():
  status, out, err = cli()
  assert status == 2 and out == ""
  assert err.strip().startswith("usage: ") and "COMMAND" in err
  assert len(err.strip().splitlines()) == 1


def test_the_console_script_calls_itself_sae(monkeypatch):
  monkeypatch.setattr("sys.argv", ["/usr/local/bin/sae", "--help"])
  assert commands.build_parser().format_usage().startswith("usage: sae ")
  monkeypatch.setattr("sys.argv", ["/repo/sae/__main__.py", "--help"])
  assert commands.build_parser().format_usage().startswith(
      "usage: python -m sae ")


def _stream_of_shipped_mse(layers=2):
  """A stream as weights/mse would write it: header, ids, dummy payloads
  (the ids are compared before any payload is decoded)."""
  manifest = json.loads((ROOT / "weights/mse/manifest.json").read_text())
  ids = [bytes.fromhex(e["weights_id"]) for e in manifest["layers"][:layers]]
  return bitstream.pack(24, 40, [b"\x00\x01"] * layers, ids), manifest


def test_other_weights_are_named_with_the_id_the_stream_needs(
    tmp_path, tiny_weights, tiny_model):
  data, manifest = _stream_of_shipped_mse(layers=2)
  stream = tmp_path / "s.sae"
  stream.write_bytes(data)
  status, _, err = cli("decompress", stream, tmp_path / "o.png", "--weights",
                       tiny_weights)
  assert status == 2 and len(err.strip().splitlines()) == 1
  need = manifest["layers"][1]["weights_id"]
  assert err.startswith("error: the stream's base was coded with weights "
                        f"{manifest['layers'][0]['weights_id']}, not with")
  assert f"whose el1 has id {need}" in err
  assert "pass --weights weights/mse" in err or "weights/mse has them" in err
  assert not (tmp_path / "o.png").exists()


def test_truncate_refuses_to_write_over_its_input(tmp_path):
  data, _ = _stream_of_shipped_mse(layers=2)
  stream = tmp_path / "x.sae"
  stream.write_bytes(data)
  status, _, err = cli("truncate", stream, stream, "--layers", 1)
  assert status == 2 and "is the input" in err
  assert stream.read_bytes() == data
  # Another name for the same file is the same file.
  (tmp_path / "link.sae").symlink_to(stream)
  assert cli("truncate", stream, tmp_path / "link.sae", "--layers", 1)[0] == 2
  assert stream.read_bytes() == data
  assert cli("truncate", stream, tmp_path / "y.sae", "--layers", 1)[0] == 0


def test_help_says_photos_are_turned_upright():
  text = " ".join(commands.build_parser().format_help().split())
  assert "EXIF orientation" in text
