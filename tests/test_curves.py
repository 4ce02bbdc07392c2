"""Tests of sae.eval.curves: results JSONs and the paper's published curve."""

import json
import pathlib

import pytest

from sae.eval import curves
from sae.errors import InputError


def test_results_json_is_read_in_rate_order(tmp_path):
  path = tmp_path / "jpeg.json"
  path.write_text(json.dumps({
      "name": "jpeg", "layers": ["q90", "q10"],
      "results": {"bpp": [2.0, 0.5], "psnr-rgb": [38.0, 27.0],
                  "ms-ssim-rgb": [0.99, 0.9]}}))
  curve = curves.load_results(path)
  assert curve.name == "jpeg"
  assert curve.bpp == (0.5, 2.0) and curve.psnr == (27.0, 38.0)
  assert curve.ms_ssim == (0.9, 0.99) and curve.labels == ("q10", "q90")


def test_compressai_keys_are_read(tmp_path):
  path = tmp_path / "old.json"
  path.write_text(json.dumps({"name": "JPEG", "results": {
      "bpp": [0.5, 1.0], "psnr": [28.0, 31.0], "ms-ssim": [0.9, 0.95]}}))
  assert curves.load_results(path).psnr == (28.0, 31.0)


@pytest.mark.parametrize("text", ["{", "{}", '{"results": {"bpp": []}}'])
def test_malformed_results_raise(tmp_path, text):
  path = tmp_path / "bad.json"
  path.write_text(text)
  with pytest.raises(InputError):
    curves.load_results(path)
  with pytest.raises(InputError, match="does not exist"):
    curves.load_results(tmp_path / "missing.json")


def test_paper_curve_at_true_rate_is_three_times_the_published_rate():
  true = curves.paper_sae(true_rate=True)
  published = curves.paper_sae(true_rate=False)
  assert len(true.bpp) == 5
  assert true.bpp == pytest.approx([3 * b for b in published.bpp], rel=1e-3)
  assert true.psnr == published.psnr
  # Jia et al. supp. data (docs/rate-correction.md): base 0.101 bpp,
  # 25.59 dB; +el3 1.606 bpp, 32.82 dB.
  assert (true.bpp[0], true.psnr[0]) == pytest.approx((0.101, 25.59),
                                                      abs=0.005)
  assert (true.bpp[3], true.psnr[3]) == pytest.approx((1.606, 32.82),
                                                      abs=0.005)


ANCHORS = pathlib.Path(__file__).resolve().parents[2] / "shared" / "anchors"


@pytest.mark.skipif(not (ANCHORS / "paper-sae-kodak-supp-metrics.json").is_file(),
                    reason="the measurement record ../shared/anchors/"
                    "paper-sae-kodak-supp-metrics.json is not here")
def test_shipped_published_points_match_their_measurement_record():
  full = ANCHORS / "paper-sae-kodak-supp-metrics.json"
  for model in ("mse", "ms-ssim"):
    for true_rate in (True, False):
      shipped = curves.paper_sae(model=model, true_rate=true_rate)
      record = curves.paper_sae(full, model=model, true_rate=true_rate)
      assert shipped._replace(source="") == record._replace(source="")


def test_a_layer_validation_is_its_own_line(tmp_path):
  one = tmp_path / "one.csv"
  one.write_text("step,loss,bpp,mse,psnr,ms_ssim\n"
                 "1000,0.5,0.1,300,23.4,\n"
                 "2000,0.4,0.1,280,23.7,0.85\n"
                 "3000,0.3,")  # a row the trainer is still writing
  assert curves.layer_validation(one, 0) == [
      dict(step=1000, loss=0.5, bpp=0.1, mse=300, psnr=23.4),
      dict(step=2000, loss=0.4, bpp=0.1, mse=280, psnr=23.7, ms_ssim=0.85)]
  # A run validating every prefix (the nested base): a row per prefix.
  by_layer = tmp_path / "by_layer.csv"
  by_layer.write_text("step,layers,loss,bpp,mse,psnr,ms_ssim\n"
                      "1000,base,0.5,0.1,300,23.4,0.8\n"
                      "1000,+el1,0.9,0.4,150,26.4,0.9\n"
                      "2000,base,0.4,0.1,280,23.7,0.8\n"
                      "2000,+el1,0.8,0.3,140,26.6,0.9\n")
  assert [r["psnr"] for r in curves.layer_validation(by_layer, 0)] == [23.4, 23.7]
  assert [r["psnr"] for r in curves.layer_validation(by_layer, 1)] == [26.4, 26.6]
  assert curves.layer_validation(by_layer, 2) == []
  bad = tmp_path / "bad.csv"
  bad.write_text("step,loss,bpp\n1000,0.5,0.1\n")
  with pytest.raises(InputError, match="no column 'psnr'"):
    curves.layer_validation(bad, 0)


def test_joint_validation_sums_each_prefix_own_rates(tmp_path):
  val = tmp_path / "val.csv"
  val.write_text("step,layers,loss,bpp,mse,psnr,ms_ssim\n"
                 "0,base,0.4,0.08,300,23.3,0.86\n"
                 "0,+el1,0.6,0.22,130,26.9,0.95\n"
                 "1000,base,0.4,0.06,330,22.9,0.84\n"
                 "1000,+el1,0.6,0.18,150,26.3,0.94\n"
                 "2000,base,0.4,0.06,330,22.9,0.84\n")  # +el1 still to come
  by_step = curves.joint_validation(val)
  assert list(by_step) == [0, 1000]
  assert by_step[0].bpp == pytest.approx((0.08, 0.30))
  assert by_step[1000].bpp == pytest.approx((0.06, 0.24))
  assert by_step[1000].psnr == (22.9, 26.3)
  assert by_step[1000].labels == ("base", "+el1")
  empty = tmp_path / "empty.csv"
  empty.write_text("step,layers,loss,bpp,mse,psnr,ms_ssim\n")
  assert curves.joint_validation(empty) == {}
