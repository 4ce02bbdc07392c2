"""Smoke tests of sae.eval.plots: the figures are written from what exists."""

import json

import numpy as np
import pytest
from matplotlib.colors import to_hex

from sae.eval import curves, plots
from sae.images import save_png

PNG = b"\x89PNG\r\n\x1a\n"


def _results(path, name, bpp, psnr, per_image=()):
  ms_ssim = [1 - 10 ** (-p / 20) for p in psnr]
  path.write_text(json.dumps({
      "name": name, "description": "", "layers": [f"p{i}" for i in
                                                  range(len(bpp))],
      "results": {"bpp": bpp, "psnr-rgb": psnr, "ms-ssim-rgb": ms_ssim,
                  "encoding_time": [0] * len(bpp),
                  "decoding_time": [0] * len(bpp)},
      "per_image": list(per_image)}))
  return path


def _anchors():
  path = curves.DEFAULT_PAPER_ANCHORS
  return path if path.is_file() else None


@pytest.mark.parametrize("metric", list(plots.METRICS))
def test_rd_figure_is_written(tmp_path, metric):
  jpeg = _results(tmp_path / "jpeg.json", "jpeg", [0.2, 0.8, 2.5],
                  [24.0, 30.0, 37.0])
  layers = _results(tmp_path / "jpeg2000-layers.json", "jpeg2000-layers",
                    [0.1, 0.3, 0.8, 1.6], [26.0, 29.0, 32.7, 37.2])
  sae = _results(tmp_path / "sae-mse.json", "sae-mse", [0.1, 0.3, 0.8],
                 [25.5, 27.5, 30.0])
  out = tmp_path / "figs" / "rd.png"
  out.parent.mkdir()
  fig = plots.rd_figure(metric, out, [sae], [jpeg, layers], _anchors())
  assert out.read_bytes().startswith(PNG)
  ax = fig.axes[0]
  lines = {line.get_label(): line for line in ax.get_lines()}
  sae_line = lines["SAE (this port): sae-mse"]
  np.testing.assert_allclose(sae_line.get_xdata(), [0.1, 0.3, 0.8])
  expected = [25.5, 27.5, 30.0] if metric == "psnr-rgb" else [
      1 - 10 ** (-p / 20) for p in (25.5, 27.5, 30.0)]
  np.testing.assert_allclose(sae_line.get_ydata(), expected)
  assert "JPEG" in lines and "JPEG 2000, quality layers (one stream)" in lines
  if _anchors() is not None:  # the paper's curve at true rate is cited
    assert any("true rate" in label and curves.PAPER_CITATION in label
               for label in lines)
  assert "bits per pixel" in ax.get_xlabel()
  assert ax.get_ylim()[0] <= min(sae_line.get_ydata())
  assert [t.get_text() for t in ax.texts] == ["p0", "p1", "p2"]  # layers


@pytest.mark.parametrize("metric", list(plots.METRICS))
def test_each_model_has_a_colour_no_other_curve_has(tmp_path, metric):
  names = ("jpeg", "webp", "jpeg2000", "jpeg2000-layers", "avif", "jxl")
  codecs = [_results(tmp_path / f"{n}.json", n, [0.2, 0.8], [25.0, 31.0])
            for n in names]
  models = [_results(tmp_path / f"sae-{i}.json", f"sae-{i}", [0.1, 0.9],
                     [25.0, 31.0]) for i in range(4)]
  fig = plots.rd_figure(metric, tmp_path / "rd.png", models, codecs,
                        curves.DEFAULT_PAPER_ANCHORS)
  lines = fig.axes[0].get_lines()
  mine = [to_hex(line.get_color()) for line in lines
          if line.get_label().startswith("SAE (this port)")]
  others = {to_hex(line.get_color()) for line in lines
            if not line.get_label().startswith("SAE (this port)")}
  assert len(mine) == 4 and len(set(mine)) == 4 and not set(mine) & others


def test_rd_figure_without_any_results(tmp_path):
  plots.rd_figure("psnr-rgb", tmp_path / "empty.png")
  assert (tmp_path / "empty.png").read_bytes().startswith(PNG)


def test_visual_figure_is_written(tmp_path):
  rng = np.random.default_rng(0)
  (tmp_path / "images").mkdir()
  (tmp_path / "recon").mkdir()
  rows = []
  for stem, shape in (("kodimA", (96, 128, 3)), ("kodimB", (128, 96, 3))):
    original = rng.integers(0, 256, shape, dtype=np.uint8)
    save_png(original, tmp_path / "images" / f"{stem}.png")
    for k in range(1, 5):
      noise = rng.normal(0, 40 / k, shape)
      save_png(np.clip(original + noise, 0, 255).astype(np.uint8),
               tmp_path / "recon" / f"{stem}_{k}.png")
    rows.append({"image": f"{stem}.png", "bpp": [0.5, 1.0, 2.0, 3.0]})
  sae = _results(tmp_path / "sae.json", "sae", [0.5, 1.0, 2.0, 3.0],
                 [20.0, 25.0, 30.0, 35.0], rows)
  out = tmp_path / "visual.png"
  plots.visual_figure(out, tmp_path / "images", tmp_path / "recon", sae,
                      stems=("kodimA", "kodimB"))
  assert out.read_bytes().startswith(PNG)


def test_cli_plots_what_exists(tmp_path, capsys):
  _results(tmp_path / "webp.json", "webp", [0.2, 0.8, 2.5],
           [25.0, 31.0, 38.0])
  figs = tmp_path / "figs"
  assert plots.main(["--results-dir", str(tmp_path), "--figs-dir",
                     str(figs)]) == 0
  for name in ("kodak_rd_psnr.png", "kodak_rd_msssim.png"):
    assert (figs / name).read_bytes().startswith(PNG)
  assert "no SAE results" in capsys.readouterr().err


def test_training_figure_from_logs(tmp_path):
  from sae.eval import plots
  from sae.errors import InputError
  layer = tmp_path / "w" / "base"
  layer.mkdir(parents=True)
  (layer / "log.csv").write_text("step,loss,bpp,mse,psnr,lr,seconds\n"
                                 "100,2.0,0.9,900,18.6,1e-3,20\n"
                                 "200,1.0,0.5,500,21.1,1e-3,40\n")
  (layer / "val.csv").write_text("step,loss,bpp,mse,psnr\n200,1.1,0.5,550,20.7\n")
  out = tmp_path / "t.png"
  plots.training_figure(tmp_path / "w", out)
  assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
  with pytest.raises(InputError, match="no training logs"):
    plots.training_figure(tmp_path, tmp_path / "u.png")
  # The nested base validates every prefix: a row per prefix at each step.
  (layer / "val.csv").write_text("step,layers,loss,bpp,mse,psnr,ms_ssim\n"
                                 "200,base,1.1,0.5,550,20.7,0.8\n"
                                 "200,+el1,1.9,0.9,300,23.4,0.9\n")
  plots.training_figure(tmp_path / "w", out)
  assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
