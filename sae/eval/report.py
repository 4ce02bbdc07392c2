"""SAE's layers beside the paper's curve at the same true rate.

The targets of the trained models: at every cumulative layer, at least the
quality of the paper's model at the same true bpp, the paper's curve being
interpolated linearly in log rate between its measured points (and
extrapolated from its end segment, flagged, outside them).

    python -m sae.eval.report [--sae results/kodak/sae-mse.json ...]
        [--training weights/mse ...] [--rate-against checkpoints/mse]
        [--out FILE]

prints one Markdown table per results file (the README's), the trend of
each layer's validation loss with --training (and, for a folder fine-tuned
by train_joint.py, what the joint phase gained on the validation crops),
and with --out writes the same numbers as JSON.
"""

import argparse
import bisect
import csv
import math
import pathlib
import sys

import numpy as np

from sae.eval import bdrate, curves
from sae.cli import cli
from sae.config import JOINT_FOLDER, LAYER_NAMES, layer_name
from sae.errors import InputError
from sae.fileio import write_json


def at_rate(rates, values, bpp):
  """(value, extrapolated) of a curve at ``bpp``, linear in log rate.

  Args:
    rates: increasing rates of the curve's points (at least two).
    values: the quality at each point.
    bpp: where to read the curve.
  """
  if len(rates) < 2 or any(b <= a for a, b in zip(rates, rates[1:])):
    raise ValueError("need at least two points in increasing rate")
  logs = [math.log(r) for r in rates]
  x = math.log(bpp)
  i = min(max(bisect.bisect_right(logs, x) - 1, 0), len(logs) - 2)
  t = (x - logs[i]) / (logs[i + 1] - logs[i])
  return values[i] + t * (values[i + 1] - values[i]), not logs[0] <= x <= logs[-1]


def compare(result: curves.Curve, paper: curves.Curve) -> list:
  """One dict per point of ``result``: its numbers and the paper's there."""
  rows = []
  for k, bpp in enumerate(result.bpp):
    psnr, extrapolated = at_rate(paper.bpp, paper.psnr, bpp)
    ms_ssim, _ = at_rate(paper.bpp, paper.ms_ssim, bpp)
    rows.append(dict(
        layer=result.labels[k] if result.labels else str(k),
        bpp=bpp, psnr=result.psnr[k], ms_ssim=result.ms_ssim[k],
        paper_psnr=psnr, paper_ms_ssim=ms_ssim,
        psnr_gap=result.psnr[k] - psnr,
        ms_ssim_gap=result.ms_ssim[k] - ms_ssim,
        extrapolated=extrapolated))
  return rows


def markdown(rows, paper_name: str) -> str:
  """The README table of ``compare``'s rows."""
  lines = [
      f"| layers | true bpp | PSNR-RGB dB | MS-SSIM-RGB | {paper_name} at that "
      "bpp: PSNR / MS-SSIM | difference |",
      "|---|---|---|---|---|---|"]
  for r in rows:
    flag = " (extrapolated)" if r["extrapolated"] else ""
    lines.append(
        f"| {r['layer']} | {r['bpp']:.4f} | {r['psnr']:.2f} | "
        f"{r['ms_ssim']:.4f} | {r['paper_psnr']:.2f} / "
        f"{r['paper_ms_ssim']:.4f}{flag} | {r['psnr_gap']:+.2f} dB / "
        f"{r['ms_ssim_gap']:+.4f} |")
  return "\n".join(lines)


def validation_trend(val_csv, k=0, window=10_000) -> dict:
  """Layer ``k``'s last validation numbers and the loss slope over the last
  ``window`` steps (None while the file holds no validation yet); its rows
  are ``curves.layer_validation``'s.

  The slope is a least-squares line through the validation losses of the
  last ``window`` steps, given as a relative change per 10,000 steps: how
  much the layer was still improving when training stopped.
  """
  rows = curves.layer_validation(val_csv, k)
  if not rows:  # a layer that has just started training
    return None
  steps = np.array([float(r["step"]) for r in rows])
  loss = np.array([float(r["loss"]) for r in rows])
  recent = steps >= steps[-1] - window
  slope = (np.polyfit(steps[recent], loss[recent], 1)[0]
           if recent.sum() >= 2 else float("nan"))
  return dict(last=rows[-1], points=int(recent.sum()),
              first_step=int(steps[recent][0]),
              loss_change_per_10k_steps=float(slope * 10_000 / loss[-1]))


def joint_gain(val_csv) -> dict:
  """What a joint phase gained: its last validation against its first
  (step 0, the layer-wise model) on the same crops, from
  ``curves.joint_validation``.  None before a second validation.

  Each prefix's numbers at both steps and its PSNR against the first curve
  at its new rate (``at_rate``; None where the first curve's rates do not
  increase); BD-rate and BD-PSNR of the last curve
  against the first (None where a curve leaves no common range or, for
  BD-rate, its quality does not rise).  Fine-tuning may slide a point
  along the curve rather than lift it: the gaps at equal rate tell which,
  though a chord lies under a concave curve, so a small positive gap
  between two points may be the chord's error; BD-PSNR's cubic fit follows
  the curve.
  """
  by_step = curves.joint_validation(val_csv)
  if len(by_step) < 2:
    return None
  first, last = by_step[min(by_step)], by_step[max(by_step)]
  prefixes = []
  for k, bpp in enumerate(last.bpp):
    try:
      on_first, extrapolated = at_rate(first.bpp, first.psnr, bpp)
      gap = last.psnr[k] - on_first
    except ValueError:  # no line: rates not increasing, or not positive
      gap, extrapolated = None, False
    prefixes.append(dict(
        layers=last.labels[k], first_bpp=first.bpp[k],
        first_psnr=first.psnr[k], bpp=bpp, psnr=last.psnr[k],
        psnr_gap=gap, extrapolated=extrapolated))

  def bd(measure):
    try:
      return measure(first.bpp, first.psnr, last.bpp, last.psnr)
    except ValueError:
      return None

  return dict(first_step=min(by_step), last_step=max(by_step),
              prefixes=prefixes, bd_rate=bd(bdrate.bd_rate),
              bd_psnr=bd(bdrate.bd_quality))


def _print_joint_gain(folder, gain):
  print(f"{folder} joint fine-tuning, step {gain['last_step']} against step "
        f"{gain['first_step']} (validation crops; cumulative bpp / dB, and "
        f"the PSNR against step {gain['first_step']}'s line at that rate):")
  number = lambda v, unit: "n/a" if v is None else f"{v:+.2f}{unit}"
  for p in gain["prefixes"]:
    flag = " (extrapolated)" if p["extrapolated"] else ""
    print(f"  {p['layers']}: {p['first_bpp']:.4f} / {p['first_psnr']:.2f} -> "
          f"{p['bpp']:.4f} / {p['psnr']:.2f}, "
          f"{number(p['psnr_gap'], ' dB')}{flag}")
  print(f"  BD-PSNR {number(gain['bd_psnr'], ' dB')}, BD-rate "
        f"{number(gain['bd_rate'], ' %')} (where the curve is flat at the "
        "top, a small lift reads as a large saving of bits)")


def rate_at_matched_steps(log_csv, reference_csv, window=1000) -> dict:
  """Training bpp of a layer beside another run's at the same steps.

  Each MS-SSIM lambda is chosen to put its layer near the MSE model's rate
  (docs/models.md); a short run is judged by its mean training bpp over the last
  ``window`` steps it has, against the reference run (the MSE model's
  log.csv of the same layer) over the very same steps.  Also reads
  val.csv files (``window=1``: the last validation step both have).  None
  when the files share no such steps yet.
  """
  def bpp_by_step(path):
    with pathlib.Path(path).open() as f:
      try:
        return {int(r["step"]): float(r["bpp"]) for r in csv.DictReader(f)
                if r.get("step") and r.get("bpp")}
      except KeyError as e:
        raise InputError(f"{str(path)!r} has no column {e}") from None

  run, reference = bpp_by_step(log_csv), bpp_by_step(reference_csv)
  common = sorted(set(run) & set(reference))
  if not common:
    return None
  steps = [s for s in common if s > common[-1] - window]
  bpp = float(np.mean([run[s] for s in steps]))
  reference_bpp = float(np.mean([reference[s] for s in steps]))
  return dict(first_step=steps[0], last_step=steps[-1], bpp=bpp,
              reference_bpp=reference_bpp, ratio=bpp / reference_bpp)


def parser() -> argparse.ArgumentParser:
  p = cli.Parser(
      prog="python -m sae.eval.report", description=__doc__,
      formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--sae", nargs="+", default=None,
                 help="results JSONs (default without --training: "
                 "results/kodak/sae-*.json)")
  p.add_argument("--paper-anchors", default=str(curves.DEFAULT_PAPER_ANCHORS))
  p.add_argument("--training", nargs="*", default=(),
                 help="weights or checkpoint folders: the validation loss "
                 "trend of each layer (<layer>/val.csv)")
  p.add_argument("--rate-against", default=None, metavar="DIR",
                 help="with --training: each layer's training bpp beside "
                 "this run's at the same steps (choosing MS-SSIM lambdas)")
  p.add_argument("--out", default=None, help="also write the numbers as JSON")
  return p


def run(args) -> int:
  paths = args.sae
  if paths is None and not args.training:
    paths = sorted(pathlib.Path("results/kodak").glob("sae-*.json"))
  report = {}
  for path in paths or ():
    result = curves.load_results(path)
    # The MS-SSIM model is held to the paper's MS-SSIM model, the MSE one to
    # the MSE model.
    model = "ms-ssim" if result.metric == "ms-ssim" else "mse"
    paper = curves.paper_sae(args.paper_anchors, model)
    rows = compare(result, paper)
    name = f"paper {model} model ({curves.PAPER_CITATION}, true rate)"
    print(f"{path}\n\n{markdown(rows, name)}\n")
    report[str(path)] = dict(paper_model=model, rows=rows)
  for folder in args.training:
    trends = {}
    for k in range(len(LAYER_NAMES)):
      val_csv = pathlib.Path(folder) / layer_name(k) / "val.csv"
      if not val_csv.is_file():
        continue
      t = validation_trend(val_csv, k)
      if t is None:
        print(f"{folder} {layer_name(k)}: no validation yet")
        continue
      trends[layer_name(k)] = t
      print(f"{folder} {layer_name(k)}: step {t['last']['step']:.0f}, "
            f"validation loss {t['last']['loss']:.4f}, bpp "
            f"{t['last']['bpp']:.4f}, PSNR {t['last']['psnr']:.2f} dB; "
            f"loss {100 * t['loss_change_per_10k_steps']:+.2f} % per 10k "
            f"steps, fitted over steps {t['first_step']}-"
            f"{t['last']['step']:.0f} ({t['points']} points)")
    report[str(folder)] = dict(validation=trends)
    joint_csv = pathlib.Path(folder) / JOINT_FOLDER / "val.csv"
    gain = joint_gain(joint_csv) if joint_csv.is_file() else None
    if gain is not None:
      _print_joint_gain(folder, gain)
      report[str(folder)]["joint_fine_tuning"] = gain
    if args.rate_against:
      report[str(folder)]["rate_against"] = _rates_against(
          folder, args.rate_against)
  if args.out:
    write_json(args.out, report)
  return 0


def _rates_against(folder, reference) -> dict:
  """Prints and returns rate_at_matched_steps for every layer in both.

  Training bpp (random crops, noisy but dense) and, under "validation", the
  held-out crops' bpp at the last validation step both runs have.  At step
  38,000 the MS-SSIM base spent 15 % fewer bits than the MSE base on
  training crops, 5 % fewer on the validation crops and about as many on
  Kodak, so a lambda is judged on the validation crops first.
  """
  rates = {}
  for k in range(len(LAYER_NAMES)):
    layer = layer_name(k)
    logs = [pathlib.Path(f) / layer / "log.csv" for f in (folder, reference)]
    if not all(log.is_file() for log in logs):
      continue
    r = rate_at_matched_steps(*logs)
    if r is None:
      continue
    print(f"{folder} {layer}: training bpp {r['bpp']:.4f} over "
          f"steps {r['first_step']}-{r['last_step']}, {reference} "
          f"{r['reference_bpp']:.4f} ({100 * (r['ratio'] - 1):+.1f} %)")
    vals = [pathlib.Path(f) / layer / "val.csv" for f in (folder, reference)]
    v = (rate_at_matched_steps(*vals, window=1)
         if all(val.is_file() for val in vals) else None)
    if v is not None:
      r["validation"] = v
      print(f"{folder} {layer}: validation bpp {v['bpp']:.4f} at step "
            f"{v['last_step']}, {reference} {v['reference_bpp']:.4f} "
            f"({100 * (v['ratio'] - 1):+.1f} %)")
    rates[layer] = r
  return rates


def main(argv=None) -> int:
  return cli.guarded(run, parser().parse_args(argv))


if __name__ == "__main__":
  sys.exit(main())
