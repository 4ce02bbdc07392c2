"""Tests of sae.eval.bdrate: Bjontegaard deltas and the CLI."""

import json

import numpy as np
import pytest

from sae.eval import bdrate

# The paper's SAE curve at true rate (Jia et al. supp. data), a realistic shape.
RATES = np.array([0.101, 0.306, 0.776, 1.606, 3.020])
PSNR = np.array([25.59, 27.41, 30.19, 32.82, 34.71])


def test_curve_against_itself_is_zero():
  assert bdrate.bd_rate(RATES, PSNR, RATES, PSNR) == pytest.approx(0, abs=1e-9)
  assert bdrate.bd_quality(RATES, PSNR, RATES, PSNR) == pytest.approx(
      0, abs=1e-9)


def test_ten_percent_fewer_bits_is_minus_ten_percent():
  assert bdrate.bd_rate(RATES, PSNR, 0.9 * RATES, PSNR) == pytest.approx(
      -10, abs=0.1)
  assert bdrate.bd_rate(RATES, PSNR, 1.1 * RATES, PSNR) == pytest.approx(
      10, abs=0.1)


def test_signs_agree():
  # A better test curve: more quality at each rate, fewer bits at each quality.
  assert bdrate.bd_quality(RATES, PSNR, RATES, PSNR + 1) == pytest.approx(1)
  assert bdrate.bd_rate(RATES, PSNR, RATES, PSNR + 1) < 0
  # A worse one: more bits for the same quality.
  assert bdrate.bd_quality(RATES, PSNR, 1.2 * RATES, PSNR) < 0
  assert bdrate.bd_rate(RATES, PSNR, 1.2 * RATES, PSNR) > 0


def test_order_of_points_does_not_matter():
  order = [3, 0, 4, 1, 2]
  assert bdrate.bd_rate(RATES, PSNR, 0.8 * RATES[order], PSNR[order]) == (
      pytest.approx(bdrate.bd_rate(RATES, PSNR, 0.8 * RATES, PSNR)))


def test_long_sweep_is_fitted_locally():
  # A sweep over a much wider range than the test curve: a shift of the
  # rates by 20 % must still read as -20 % (one global cubic gives -19.4).
  rates = np.geomspace(0.03, 8, 25)
  quality = 30 + 6 * np.tanh(np.log(rates)) + 2 * np.log(rates)
  test = 0.8 * rates[8:14], quality[8:14]
  assert bdrate.bd_rate(rates, quality, *test) == pytest.approx(-20, abs=0.1)


def test_disjoint_curves_raise():
  with pytest.raises(ValueError, match="do not overlap"):
    bdrate.bd_rate(RATES, PSNR, RATES, PSNR + 20)


def test_bad_points_raise():
  with pytest.raises(ValueError):
    bdrate.bd_rate(RATES, PSNR, [1.0], [30.0])
  with pytest.raises(ValueError, match="positive"):
    bdrate.bd_rate(RATES, PSNR, [0.0, 1.0], [30.0, 31.0])


def _results(path, name, bpp, psnr, ms_ssim):
  results = {"bpp": list(bpp), "psnr-rgb": list(psnr),
             "ms-ssim-rgb": list(ms_ssim), "encoding_time": [0] * len(bpp),
             "decoding_time": [0] * len(bpp)}
  path.write_text(json.dumps({"name": name, "description": "",
                              "layers": [str(b) for b in bpp],
                              "results": results, "per_image": []}))


def test_cli_writes_bd_rates_beside_the_results_folder(tmp_path, capsys):
  ms_ssim = 1 - 10 ** (-PSNR / 20)
  results = tmp_path / "kodak"
  results.mkdir()
  _results(results / "jpeg.json", "jpeg", 2 * RATES, PSNR, ms_ssim)
  _results(results / "sae-mse.json", "sae-mse", RATES, PSNR, ms_ssim)
  assert bdrate.main(["--results-dir", str(results)]) == 0
  # The results folder keeps results files only (CompressAI's schema).
  assert sorted(p.name for p in results.iterdir()) == ["jpeg.json",
                                                       "sae-mse.json"]
  report = json.loads((tmp_path / "bd-rates.json").read_text())
  (row,) = report["comparisons"]
  assert (row["test"], row["anchor"]) == ("sae-mse", "jpeg")
  assert row["bd_rate_psnr_percent"] == pytest.approx(-50, abs=0.1)
  assert row["bd_rate_ms_ssim_percent"] == pytest.approx(-50, abs=0.1)
  assert row["bd_psnr_db"] > 0
  assert "sae-mse" in capsys.readouterr().out
  assert bdrate.main(["--results-dir", str(results), "--markdown"]) == 0
  assert "| sae-mse | jpeg | -50.0 % |" in capsys.readouterr().out


def test_cli_compares_against_named_anchors(tmp_path, capsys):
  ms_ssim = 1 - 10 ** (-PSNR / 20)
  _results(tmp_path / "jpeg.json", "jpeg", 2 * RATES, PSNR, ms_ssim)
  _results(tmp_path / "sae-mse.json", "sae-mse", 2 * RATES, PSNR, ms_ssim)
  _results(tmp_path / "sae-nested.json", "sae-nested", RATES, PSNR, ms_ssim)
  out = tmp_path / "bd.json"
  assert bdrate.main(["--results-dir", str(tmp_path), "--sae",
                      str(tmp_path / "sae-nested.json"), "--anchors",
                      str(tmp_path / "sae-mse.json"), "--out", str(out)]) == 0
  (row,) = json.loads(out.read_text())["comparisons"]
  assert (row["test"], row["anchor"]) == ("sae-nested", "sae-mse")
  assert row["bd_rate_psnr_percent"] == pytest.approx(-50, abs=0.1)
  # Not into the default file, which holds the classical comparisons.
  assert bdrate.main(["--results-dir", str(tmp_path), "--anchors",
                      str(tmp_path / "sae-mse.json")]) == 2
  assert "--out" in capsys.readouterr().err


def test_cli_without_codec_results_fails(tmp_path, capsys):
  assert bdrate.main(["--results-dir", str(tmp_path)]) == 2
  assert capsys.readouterr().err.startswith("error: no codec results")


def test_paper_flag_adds_both_published_models(tmp_path, capsys):
  ms_ssim = 1 - 10 ** (-PSNR / 20)
  _results(tmp_path / "jpeg.json", "jpeg", 2 * RATES, PSNR, ms_ssim)
  _results(tmp_path / "sae-mse.json", "sae-mse", RATES, PSNR, ms_ssim)
  layers = [dict(layer=f"l{i}", bpp_published_x3=float(r),
                 bpp_published=float(r) / 3, psnr_rgb=float(q),
                 ms_ssim_rgb=float(m))
            for i, (r, q, m) in enumerate(zip(RATES, PSNR, ms_ssim))]
  anchors = tmp_path / "paper.json"
  anchors.write_text(json.dumps({"layers": {"mse": layers,
                                            "ms-ssim": layers[:4]}}))
  out = tmp_path / "bd.json"
  assert bdrate.main(["--results-dir", str(tmp_path), "--paper",
                      "--paper-anchors", str(anchors), "--out", str(out)]) == 0
  rows = json.loads(out.read_text())["comparisons"]
  assert [r["test"] for r in rows] == [
      "sae-mse", "sae-paper-mse-true-rate", "sae-paper-ms-ssim-true-rate"]
  # The published curve at true rate is the test curve: rates equal.
  assert rows[1]["bd_rate_psnr_percent"] == pytest.approx(-50, abs=0.1)


def test_quality_that_falls_with_rate_has_no_bd_rate():
  # An MS-SSIM-trained model's PSNR levels off and may dip (the paper's
  # MS-SSIM SAE: 27.54 dB at 1.78 bpp, 27.51 at 3.26): rate is then no
  # function of quality, and a fit of one would give nonsense.
  dipping = PSNR.copy()
  dipping[-1] = dipping[-2] - 0.05
  with pytest.raises(ValueError, match="test's quality does not rise"):
    bdrate.bd_rate(RATES, PSNR, RATES, dipping)
  with pytest.raises(ValueError, match="anchor's quality does not rise"):
    bdrate.bd_rate(RATES, dipping, RATES, PSNR)
  # BD-quality (quality as a function of rate) is still defined.
  assert bdrate.bd_quality(RATES, PSNR, RATES, dipping) < 0
