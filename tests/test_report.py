import json

import pytest

from sae.eval import curves, report


def test_at_rate_is_linear_in_log_rate():
  rates, values = (0.1, 0.4, 1.6), (25.0, 27.0, 31.0)
  assert report.at_rate(rates, values, 0.4) == (27.0, False)
  value, outside = report.at_rate(rates, values, 0.2)  # halfway in log rate
  assert value == pytest.approx(26.0) and not outside
  # Beyond the ends: the end segment, extended and flagged.
  value, outside = report.at_rate(rates, values, 0.05)
  assert value == pytest.approx(24.0) and outside
  value, outside = report.at_rate(rates, values, 3.2)
  assert value == pytest.approx(33.0) and outside
  with pytest.raises(ValueError):
    report.at_rate((0.4, 0.1), values[:2], 0.2)


def test_compare_gives_the_gap_to_the_paper():
  paper = curves.Curve("paper", (0.1, 0.4), (25.0, 27.0), (0.88, 0.94))
  ours = curves.Curve("ours", (0.2,), (26.5,), (0.90,), ("base",))
  (row,) = report.compare(ours, paper)
  assert row["layer"] == "base" and not row["extrapolated"]
  assert row["psnr_gap"] == pytest.approx(0.5)
  assert row["ms_ssim_gap"] == pytest.approx(-0.01)
  assert "| base | 0.2000 | 26.50 | 0.9000 | 26.00 / 0.9100 |" in (
      report.markdown([row], "paper"))


def test_report_holds_each_model_to_its_paper_model(tmp_path, capsys):
  anchors = tmp_path / "anchors.json"
  layer = lambda name, bpp, psnr, ms: dict(
      layer=name, bpp_published_x3=bpp, bpp_published=bpp / 3, psnr_rgb=psnr,
      ms_ssim_rgb=ms)
  anchors.write_text(json.dumps({"layers": {
      "mse": [layer("base", 0.1, 25.0, 0.88), layer("+el1", 0.4, 27.0, 0.92)],
      "ms-ssim": [layer("base", 0.1, 23.0, 0.90), layer("+el1", 0.4, 25.0, 0.96)],
  }}))
  results = tmp_path / "sae-ms-ssim.json"
  results.write_text(json.dumps({
      "name": "sae-ms-ssim", "metric": "ms-ssim", "layers": ["base"],
      "results": {"bpp": [0.2], "psnr-rgb": [24.0], "ms-ssim-rgb": [0.95]}}))
  out = tmp_path / "report.json"
  assert report.main(["--sae", str(results), "--paper-anchors", str(anchors),
                      "--out", str(out)]) == 0
  (entry,) = json.loads(out.read_text()).values()
  assert entry["paper_model"] == "ms-ssim"
  assert entry["rows"][0]["ms_ssim_gap"] == pytest.approx(0.02)
  assert "paper ms-ssim model" in capsys.readouterr().out
  assert report.main(["--sae", str(tmp_path / "missing.json"),
                      "--paper-anchors", str(anchors)]) == 2


def test_validation_trend_fits_the_last_10k_steps(tmp_path, capsys):
  layer = tmp_path / "w" / "base"
  layer.mkdir(parents=True)
  # Flat until step 10k, then -1 % of the last loss per 10k steps.
  rows = ["step,loss,bpp,mse,psnr"]
  for step in range(1000, 25_001, 1000):
    loss = 1.0 if step <= 10_000 else 1.0 - 1e-6 * (step - 10_000)
    rows.append(f"{step},{loss},0.1,200,25")
  (layer / "val.csv").write_text("\n".join(rows) + "\n")
  trend = report.validation_trend(layer / "val.csv")
  assert trend["points"] == 11 and trend["last"]["step"] == 25_000
  assert trend["first_step"] == 15_000
  assert trend["loss_change_per_10k_steps"] == pytest.approx(-0.01 / 0.985)
  # The layer above has just started: its file holds the header only.
  (tmp_path / "w" / "el1").mkdir()
  (tmp_path / "w" / "el1" / "val.csv").write_text(rows[0] + "\n")
  assert report.main(["--training", str(tmp_path / "w")]) == 0
  out = capsys.readouterr().out
  assert "-1.02 % per 10k steps, fitted over steps 15000-25000" in out
  assert "el1: no validation yet" in out


def test_a_base_validating_every_prefix_is_reported_by_its_own(tmp_path, capsys):
  layer = tmp_path / "w" / "base"
  layer.mkdir(parents=True)
  rows = ["step,layers,loss,bpp,mse,psnr,ms_ssim"]
  for step in (1000, 2000):
    rows += [f"{step},base,0.4,0.09,330,22.9,0.84",
             f"{step},+el1,0.75,0.33,141,26.6,0.94"]
  (layer / "val.csv").write_text("\n".join(rows) + "\n")
  trend = report.validation_trend(layer / "val.csv", 0)
  assert trend["points"] == 2 and trend["last"]["psnr"] == 22.9
  assert report.main(["--training", str(tmp_path / "w")]) == 0
  assert "base: step 2000, validation loss 0.4000, bpp 0.0900, PSNR 22.90 dB" in (
      capsys.readouterr().out)


def _joint_val(path, steps):
  """A joint val.csv: {step: [(own bpp, psnr) per layer]}."""
  rows = ["step,layers,loss,bpp,mse,psnr,ms_ssim"]
  for step, layers in steps.items():
    rows += [f"{step},{label},1.0,{bpp},100,{psnr},0.9"
             for label, (bpp, psnr) in zip(("base", "+el1", "+el2", "+el3"),
                                           layers)]
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_text("\n".join(rows) + "\n")


def test_joint_gain_tells_a_lift_from_a_slide(tmp_path, capsys):
  start = [(0.1, 24.0), (0.2, 27.0), (0.4, 29.0), (0.8, 30.5)]  # cumulative
  own = lambda curve: [(b - a, q) for (a, _), (b, q) in zip([(0, 0)] + curve,
                                                            curve)]
  lifted = [(bpp, psnr + 0.5) for bpp, psnr in start]
  val = tmp_path / "w" / "joint" / "val.csv"
  _joint_val(val, {0: own(start), 1000: own(start), 2000: own(lifted)})
  gain = report.joint_gain(val)
  assert (gain["first_step"], gain["last_step"]) == (0, 2000)
  assert [p["psnr_gap"] for p in gain["prefixes"]] == pytest.approx([0.5] * 4)
  assert gain["bd_psnr"] == pytest.approx(0.5)
  assert gain["bd_rate"] < -10
  # Sliding down the same line gains nothing at equal rate.
  # (Half way between two points in log rate, half way in PSNR.)
  slid = [(0.05, 21.0), (0.02 ** 0.5, 25.5), (0.08 ** 0.5, 28.0),
          (0.32 ** 0.5, 29.75)]
  _joint_val(val, {0: own(start), 1000: own(slid)})
  gain = report.joint_gain(val)
  assert [p["psnr_gap"] for p in gain["prefixes"][1:]] == pytest.approx(
      [0.0] * 3, abs=1e-9)
  assert gain["prefixes"][0]["extrapolated"]
  assert gain["bd_psnr"] < 0  # below the first curve's cubic fit
  assert report.main(["--training", str(tmp_path / "w")]) == 0
  out = capsys.readouterr().out
  assert "joint fine-tuning, step 1000 against step 0" in out
  assert "+el1: 0.2000 / 27.00 -> 0.1414 / 25.50, +0.00 dB" in out
  # A layer that sent nothing at step 0 leaves no line there: no gap, no
  # crash.
  _joint_val(val, {0: [(0.1, 24.0), (0.0, 24.5)], 1000: [(0.1, 24.0),
                                                         (0.1, 27.0)]})
  gain = report.joint_gain(val)
  assert [p["psnr_gap"] for p in gain["prefixes"]] == [None, None]
  assert report.main(["--training", str(tmp_path / "w")]) == 0
  assert "-> 0.2000 / 27.00, n/a" in capsys.readouterr().out
  # One validation so far: nothing to compare.
  _joint_val(val, {0: own(start)})
  assert report.joint_gain(val) is None


def test_rate_against_compares_training_bpp_at_the_same_steps(tmp_path, capsys):
  def log(folder, bpp_of_step, last):
    layer = tmp_path / folder / "base"
    layer.mkdir(parents=True)
    rows = ["step,loss,bpp,mse,psnr,lr,seconds"] + [
        f"{s},1,{bpp_of_step(s)},200,25,1e-3,{s}" for s in range(100, last + 1, 100)]
    (layer / "log.csv").write_text("\n".join(rows) + "\n")
    return layer / "log.csv"

  short = log("ms-ssim", lambda s: 0.3 if s > 2000 else 0.9, 3000)
  long = log("mse", lambda s: 0.2 if s > 2000 else 0.5, 60_000)
  r = report.rate_at_matched_steps(short, long)
  assert (r["first_step"], r["last_step"]) == (2100, 3000)
  assert r["ratio"] == pytest.approx(1.5)
  assert report.main(["--training", str(tmp_path / "ms-ssim"),
                      "--rate-against", str(tmp_path / "mse")]) == 0
  out = capsys.readouterr().out
  assert "training bpp 0.3000 over steps 2100-3000" in out
  assert "validation" not in out  # no val.csv yet

  def val(folder, bpp_of_step, last):
    rows = ["step,loss,bpp,mse,psnr"] + [
        f"{s},1,{bpp_of_step(s)},200,25" for s in range(1000, last + 1, 1000)]
    (tmp_path / folder / "base" / "val.csv").write_text("\n".join(rows) + "\n")

  val("ms-ssim", lambda s: 0.19 if s == 3000 else 0.5, 3000)
  val("mse", lambda s: 0.2 if s == 3000 else 0.3, 60_000)
  out_json = tmp_path / "rates.json"
  assert report.main(["--training", str(tmp_path / "ms-ssim"),
                      "--rate-against", str(tmp_path / "mse"),
                      "--out", str(out_json)]) == 0
  assert "validation bpp 0.1900 at step 3000" in capsys.readouterr().out
  rates = json.loads(out_json.read_text())[str(tmp_path / "ms-ssim")]
  v = rates["rate_against"]["base"]["validation"]
  assert (v["first_step"], v["last_step"]) == (3000, 3000)
  assert v["ratio"] == pytest.approx(0.95)
  assert rates["rate_against"]["base"]["ratio"] == pytest.approx(1.5)
