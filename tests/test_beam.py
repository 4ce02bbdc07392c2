"""``python -m sae beam`` on the DirectRunner with two worker processes.

One pipeline run (a real ``python -m sae beam``, tiny weights, a few tiny
images and one broken file): every stream is byte for byte what ``compress``
writes, the results file has exactly the per-image measures of
sae.eval.evaluate (test_el3.py's), and the broken file is named, not fatal.
"""

import json

import numpy as np
import pytest

from cli_helpers import cli, cli_process, write_png
from tiny import random_image

# A real pipeline with two worker processes: minutes; CI runs it.
pytestmark = pytest.mark.full

pytest.importorskip("apache_beam", reason="apache_beam is not installed "
                    "(pip install -r requirements.txt)")


def test_direct_runner_two_workers_match_the_command_line(tiny_weights,
                                                          tiny_model, tmp_path):
  from sae.eval import evaluate
  from sae.images import load_image
  images = tmp_path / "images"
  images.mkdir()
  paths = [write_png(images / f"im{i}.png", random_image(16 + 3 * i, 24,
                                                         seed=i))
           for i in range(3)]
  (images / "broken.png").write_bytes(b"\x89PNG not an image")
  out = tmp_path / "out"
  done = cli_process("beam", "--input", images / "*.png", "--output", out,
                     "--weights", tiny_weights, "--evaluate",
                     "--direct_num_workers", "2", "--direct_running_mode",
                     "multi_processing", timeout=1200)
  assert done.returncode == 2, done.stderr
  assert "broken.png" in done.stderr
  assert "broken.png" in (out / "failures.txt").read_text()
  assert not (out / "broken.sae").exists()

  for path in paths:
    one = tmp_path / "one.sae"
    assert cli("compress", path, one, "--weights", tiny_weights)[0] == 0
    assert (out / (path.stem + ".sae")).read_bytes() == one.read_bytes()

  results = json.loads((out / "results.json").read_text())
  expected = evaluate.evaluate_model(tiny_model, [str(p) for p in paths],
                                     tiny_model.num_layers, progress=False)
  assert [r["image"] for r in results["per_image"]] == [
      r["image"] for r in expected]
  for got, want in zip(results["per_image"], expected):
    for key in ("bytes", "bpp", "psnr-rgb", "ms-ssim-rgb"):
      assert got[key] == want[key], (got["image"], key)
  assert results["layers"] == ["base", "+el1", "+el2", "+el3"]
  assert results["weights_ids"] == [i.hex() for i in tiny_model.weights_ids()]
  assert results["results"]["bpp"] == pytest.approx(
      np.mean([r["bpp"] for r in expected], axis=0).tolist())
  assert load_image(paths[0]).shape == (16, 24, 3)


def test_refusals_before_the_pipeline(tiny_weights, tmp_path):
  cases = [
      (["--input", tmp_path / "*.png", "--output", tmp_path / "o"],
       "no file matches"),
      (["--input", tmp_path / "*.png", "--output", tmp_path / "o",
        "--layers", "9"], "must be in"),
  ]
  for argv, reason in cases:
    status, out, err = cli("beam", *argv, "--weights", tiny_weights)
    assert status == 2 and out == ""
    assert err.startswith("error: ") and reason in err, err
  status, _, err = cli("compress", "a.png", "b.sae", "--runner=DirectRunner")
  assert status == 2 and "unrecognized arguments" in err
