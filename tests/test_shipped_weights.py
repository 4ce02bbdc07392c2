"""The shipped weights reproduce the committed Kodak results."""

import json
import pathlib

import numpy as np
import pytest

from sae import checkpoints, evaluate
from sae.data import list_images

ROOT = pathlib.Path(__file__).resolve().parents[1]
KODAK = ROOT.parent / "shared" / "data" / "kodak"


@pytest.mark.slow
@pytest.mark.parametrize("weights,results", [("weights/mse", "results/kodak/sae-mse.json"),
                                             ("weights/ms-ssim", "results/kodak/sae-ms-ssim.json")])
def test_shipped_weights_reproduce_results(weights, results):
  weights, results = ROOT / weights, ROOT / results
  if not KODAK.is_dir():
    pytest.skip(f"needs {KODAK}")
  if not (weights / "config.json").is_file():
    # Only a model that is not shipped yet may be skipped; its results must
    # not exist without it.
    assert not results.is_file(), f"{results} exists but {weights} does not"
    pytest.skip(f"{weights} is not shipped yet")
  assert results.is_file(), f"{weights} ships without {results}"
  recorded = json.loads(results.read_text())
  n = len(recorded["layers"])
  # Every shipped layer is evaluated: results of fewer layers do not pass.
  assert n == checkpoints.available_layers(weights)
  model = checkpoints.load_model(weights, n)
  assert recorded["weights_ids"] == [i.hex() for i in model.weights_ids()]
  assert recorded["layers"] == ["base"] + [f"+el{k}" for k in range(1, n)]
  per_image = evaluate.evaluate_model(
      model, list_images(KODAK, recursive=False), n, progress=False)
  assert [r["image"] for r in per_image] == [r["image"] for r in recorded["per_image"]]
  for new, old in zip(per_image, recorded["per_image"]):
    np.testing.assert_allclose(new["bpp"], old["bpp"], atol=0.001)
    np.testing.assert_allclose(new["psnr-rgb"], old["psnr-rgb"], atol=0.01)
    np.testing.assert_allclose(new["ms-ssim-rgb"], old["ms-ssim-rgb"], atol=1e-4)
  # The means, which the README's table quotes.
  means = evaluate.summarize("", "", recorded["layers"], per_image)["results"]
  for key, atol in (("bpp", 0.001), ("psnr-rgb", 0.01), ("ms-ssim-rgb", 1e-4)):
    np.testing.assert_allclose(means[key], recorded["results"][key], atol=atol)
