"""The probes of the nested model (research/probes/latent_floor.py,
probe_top_synthesis.py) on a tiny nested folder trained through the
scripts.  Not in the default set (pytest's testpaths is tests/):

    python -m pytest -q research/probes/tests
"""

import pathlib

import pytest

import train_base
import train_el1
from tests.tiny import write_corpus

ROOT = pathlib.Path(__file__).resolve().parents[3]
# A cascade's folder: the probes refuse it from its config.json alone.
CASCADE = ROOT / "weights" / "mse"


@pytest.fixture(scope="module")
def nested_weights(tmp_path_factory):
  """(corpus, checkpoint folder): base and el1 of the tiny nested preset,
  two steps each, through the training scripts."""
  root = tmp_path_factory.mktemp("nested")
  corpus = write_corpus(root / "corpus", [(64, 64), (80, 96)])
  ckpt = root / "ckpt"
  common = ["--preset", "tiny", "--corpus", str(corpus), "--checkpoint-dir",
            str(ckpt), "--steps", "2", "--no-progress", "--seed", "1"]
  assert train_base.main(common + ["--family", "sae-nested"]) == 0
  assert train_el1.main(common) == 0
  return corpus, ckpt


def test_the_latent_floor_benchmark_decodes_every_step_by_every_synthesis(
    nested_weights, capsys):
  from research.probes import latent_floor
  corpus, ckpt = nested_weights
  assert latent_floor.main(["--weights", str(ckpt), "--corpus", str(corpus),
                            "--patch-size", "64"]) == 0
  rows = capsys.readouterr().out.strip().splitlines()
  # A row per step and the unquantized latent; a column per synthesis.
  # (all the family's steps, while the folder has two layers).
  assert [r.rsplit(maxsplit=2)[0] for r in rows[1:]] == [
      "step 27", "step 9", "step 3", "step 1", "unquantized"]
  psnrs = [[float(v) for v in r.split()[-2:]] for r in rows[1:]]
  assert all(0 < v < 100 for row in psnrs for v in row)
  # A cascade refines no shared latent: refused in one line.
  assert latent_floor.main(["--weights", str(CASCADE), "--corpus",
                            str(corpus)]) == 2
  error = capsys.readouterr().err.strip().splitlines()
  assert len(error) == 1 and "refine no shared latent" in error[0]


def test_the_top_synthesis_probe_trains_validates_and_refuses_other_runs(
    nested_weights, tmp_path, capsys):
  import csv
  from research.probes import probe_top_synthesis as probe
  corpus, ckpt = nested_weights
  out = tmp_path / "probe"
  argv = ["--weights", str(ckpt), "--corpus", str(corpus), "--out-dir",
          str(out), "--filters", "8", "--steps", "2", "--validate-every", "1",
          "--patch-size", "64"]
  assert probe.main(argv) == 0
  rows = list(csv.DictReader((out / "val.csv").open()))
  assert [int(r["step"]) for r in rows] == [1, 2]
  # The model's own top synthesis, on the same crops: the reference line.
  assert rows[0]["own_psnr"] == rows[1]["own_psnr"]
  assert all(0 < float(r["psnr"]) < 100 for r in rows)
  assert rows[0]["psnr"] != rows[1]["psnr"]  # it trains
  assert probe.main(argv) == 0  # finished: resumes to nothing
  assert len(list(csv.DictReader((out / "val.csv").open()))) == 2
  capsys.readouterr()
  # Other settings in the same folder (steps; corpus), a folder that holds
  # something else, a cascade: refused in one line, nothing written.
  other_corpus = write_corpus(tmp_path / "c2", [(64, 64)])
  foreign = tmp_path / "foreign"
  foreign.mkdir()
  (foreign / "keep.txt").write_text("mine")
  for bad in (argv[:-5] + ["4"] + argv[-4:],
              argv[:3] + [str(other_corpus)] + argv[4:],
              argv[:5] + [str(foreign)] + argv[6:],
              ["--weights", str(CASCADE)] + argv[2:4] + [
                  "--out-dir", str(tmp_path / "other"), "--filters", "8"]):
    assert probe.main(bad) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and error[0].startswith("error: ")
  assert not (tmp_path / "other").exists()
  assert [p.name for p in foreign.iterdir()] == ["keep.txt"]
