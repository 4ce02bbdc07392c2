"""results/kodak holds results files only, each in CompressAI's schema.

CompressAI's plot tool (``python -m compressai.utils.plot -f
results/kodak/*.json``) reads ``results`` with ``bpp`` and the metric it
plots (``psnr-rgb`` or ``ms-ssim-rgb``; older versions ``psnr``) from every
file it is given, and ``name`` if present; a file without them stops it.
"""

import json
import math
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
FILES = sorted((ROOT / "results" / "kodak").iterdir())


def test_results_folder_holds_only_results_json():
  assert FILES and all(p.is_file() and p.suffix == ".json" for p in FILES)


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_compressai_schema(path):
  data = json.loads(path.read_text())
  assert isinstance(data["name"], str) and data["name"]
  results = data["results"]
  n = len(results["bpp"])
  assert n >= 1
  for key in ("bpp", "psnr-rgb", "ms-ssim-rgb", "encoding_time",
              "decoding_time"):
    assert len(results[key]) == n, key
    assert all(isinstance(v, (int, float)) and math.isfinite(v)
               for v in results[key]), key
  assert all(0 < m < 1 for m in results["ms-ssim-rgb"])  # plotted in dB
  assert len(data["per_image"]) >= 1
  for row in data["per_image"]:
    assert len(row["bpp"]) == n and row["height"] > 0 and row["width"] > 0
