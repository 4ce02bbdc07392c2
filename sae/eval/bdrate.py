"""Bjontegaard delta rate and delta quality of SAE against classical codecs.

Bjontegaard (VCEG-M33, 2001), for an anchor curve A and a test curve T,
each a set of (rate R, quality D) points:

  BD-rate: fit ln R as a cubic polynomial of D, p_A(D) and p_T(D), and
  average their gap over the common quality range [D_lo, D_hi]:

      BD-rate = exp( 1/(D_hi - D_lo) * integral_{D_lo}^{D_hi}
                     (p_T(D) - p_A(D)) dD ) - 1          (times 100 %)

  BD-quality (BD-PSNR): fit D as a cubic polynomial of r = ln R, q_A(r) and
  q_T(r), over the common range [r_lo, r_hi]:

      BD-D = 1/(r_hi - r_lo) * integral_{r_lo}^{r_hi} (q_T(r) - q_A(r)) dr

Negative BD-rate and positive BD-PSNR mean the test needs fewer bits for
the same quality. Quality is PSNR-RGB in dB, or MS-SSIM-RGB in dB
(-10 log10(1 - MS-SSIM)). Fits are least squares. A curve with many points
(a codec's quality sweep) is fitted only on the points inside the common
range and the two that bracket it (at least four), so that the cubic is a
faithful local fit; with four points per curve this is the classic
computation. Curves with 2 or 3 points get a polynomial of degree 1 or 2.

    python -m sae.eval.bdrate --results-dir results/kodak \
        [--sae results/kodak/sae-mse.json ...] [--paper]  # -> results/bd-rates.json
"""

import argparse
import math
import os
import pathlib
import sys

import numpy as np

from sae.eval import classical, curves
from sae.cli import cli
from sae.errors import InputError
from sae.fileio import write_json

_DEGREE = 3


def _sorted_xy(x, y):
  x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
  if x.shape != y.shape or x.ndim != 1 or len(x) < 2:
    raise ValueError(f"need two or more (rate, quality) points, got "
                     f"{x.shape} and {y.shape}")
  if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
    raise ValueError("rates and qualities must be finite")
  order = np.argsort(x)
  return x[order], y[order]


def _local(x, y, lo, hi):
  """The points that bracket [lo, hi] and those inside; four if there are."""
  first = max(int(np.searchsorted(x, lo, side="right")) - 1, 0)
  last = min(int(np.searchsorted(x, hi, side="left")), len(x) - 1)
  while last - first < _DEGREE and (first > 0 or last < len(x) - 1):
    first, last = max(first - 1, 0), min(last + 1, len(x) - 1)
  return x[first:last + 1], y[first:last + 1]


def _mean_gap(anchor_x, anchor_y, test_x, test_y) -> float:
  """Mean of test(x) - anchor(x) over the common x range (polynomial fits)."""
  anchor_x, anchor_y = _sorted_xy(anchor_x, anchor_y)
  test_x, test_y = _sorted_xy(test_x, test_y)
  lo = max(anchor_x[0], test_x[0])
  hi = min(anchor_x[-1], test_x[-1])
  if not hi > lo:
    raise ValueError(f"the curves do not overlap: [{anchor_x[0]:.4g}, "
                     f"{anchor_x[-1]:.4g}] and [{test_x[0]:.4g}, "
                     f"{test_x[-1]:.4g}]")
  areas = []
  for x, y in ((anchor_x, anchor_y), (test_x, test_y)):
    x, y = _local(x, y, lo, hi)
    integral = np.polyint(np.polyfit(x, y, min(_DEGREE, len(x) - 1)))
    areas.append(np.polyval(integral, hi) - np.polyval(integral, lo))
  return float((areas[1] - areas[0]) / (hi - lo))


def bd_rate(anchor_rate, anchor_quality, test_rate, test_quality) -> float:
  """Bjontegaard delta rate of test against anchor, in percent.

  Args:
    anchor_rate, anchor_quality: the anchor's points (bpp, dB).
    test_rate, test_quality: the test's points.

  Returns:
    The mean rate change at equal quality: -10 means 10 % fewer bits.

  Raises:
    ValueError: fewer than two points, a non-positive rate, quality that
      does not rise with rate (then rate is no function of quality: an
      MS-SSIM-trained model's PSNR levels off), or no common quality range.
  """
  for name, rate in (("anchor_rate", anchor_rate), ("test_rate", test_rate)):
    if np.any(np.asarray(rate, np.float64) <= 0):
      raise ValueError(f"{name} must be positive, got {list(rate)}")
  for name, rate, quality in (("anchor", anchor_rate, anchor_quality),
                              ("test", test_rate, test_quality)):
    _, quality = _sorted_xy(rate, quality)
    if np.any(np.diff(quality) <= 0):
      raise ValueError(f"the {name}'s quality does not rise with its rate "
                       f"({', '.join(f'{q:.4g}' for q in quality)})")
  gap = _mean_gap(anchor_quality, np.log(anchor_rate), test_quality,
                  np.log(test_rate))
  return 100.0 * math.expm1(gap)


def bd_quality(anchor_rate, anchor_quality, test_rate, test_quality) -> float:
  """Bjontegaard delta quality (e.g. BD-PSNR in dB) of test against anchor.

  Positive means the test is better at equal rate. Arguments and errors as
  ``bd_rate``.
  """
  for name, rate in (("anchor_rate", anchor_rate), ("test_rate", test_rate)):
    if np.any(np.asarray(rate, np.float64) <= 0):
      raise ValueError(f"{name} must be positive, got {list(rate)}")
  return _mean_gap(np.log(anchor_rate), anchor_quality, np.log(test_rate),
                   test_quality)


def ms_ssim_db(ms_ssim):
  """MS-SSIM on a dB scale, -10 log10(1 - MS-SSIM), where BD fits are made."""
  return -10.0 * np.log10(1.0 - np.asarray(ms_ssim, np.float64))


def _relative(path) -> str:
  # Relative paths keep the report free of this machine's layout.
  try:
    return os.path.relpath(path) if path else path
  except ValueError:  # another drive
    return path


def compare(test: curves.Curve, anchor: curves.Curve) -> dict:
  """BD-rate and BD-quality of ``test`` against ``anchor``, PSNR and MS-SSIM.

  A delta the curves do not support (no common range; for BD-rate, quality
  that does not rise with rate) is None, and ``<quality>_note`` says why.
  """
  row = {"test": test.name, "test_source": _relative(test.source),
         "anchor": anchor.name, "anchor_source": _relative(anchor.source)}
  for key, quality in (("psnr", lambda c: c.psnr),
                       ("ms_ssim", lambda c: ms_ssim_db(c.ms_ssim))):
    args = (anchor.bpp, quality(anchor), test.bpp, quality(test))
    for name, delta in ((f"bd_rate_{key}_percent", bd_rate),
                        (f"bd_{key}_db", bd_quality)):
      try:
        row[name] = delta(*args)
      except ValueError as e:
        row[name] = None
        row.setdefault(f"{key}_note", str(e))
  return row


def format_table(rows) -> str:
  fmt = lambda v, spec: "n/a" if v is None else format(v, spec)
  lines = [f"{'test':<32}{'anchor':<18}{'BD-rate PSNR':>13}{'BD-PSNR':>9}"
           f"{'BD-rate MS-SSIM':>16}{'BD-MS-SSIM':>11}"]
  for r in rows:
    lines.append(f"{r['test']:<32}{r['anchor']:<18}"
                 f"{fmt(r['bd_rate_psnr_percent'], '+.1f') + ' %':>13}"
                 f"{fmt(r['bd_psnr_db'], '+.2f'):>9}"
                 f"{fmt(r['bd_rate_ms_ssim_percent'], '+.1f') + ' %':>16}"
                 f"{fmt(r['bd_ms_ssim_db'], '+.2f'):>11}")
  return "\n".join(lines)


def format_markdown(rows) -> str:
  """The same numbers as a Markdown table (the README's)."""
  fmt = lambda v, spec: "n/a" if v is None else format(v, spec)
  pct = lambda v: "n/a" if v is None else f"{v:+.1f} %"
  lines = ["| test | anchor | BD-rate (PSNR) | BD-PSNR dB | BD-rate (MS-SSIM) "
           "| BD-MS-SSIM dB |", "|---|---|---|---|---|---|"]
  for r in rows:
    lines.append(
        f"| {r['test']} | {r['anchor']} | "
        f"{pct(r['bd_rate_psnr_percent'])} | "
        f"{fmt(r['bd_psnr_db'], '+.2f')} | "
        f"{pct(r['bd_rate_ms_ssim_percent'])} | "
        f"{fmt(r['bd_ms_ssim_db'], '+.2f')} |")
  return "\n".join(lines)


DESCRIPTION = (
    "Bjontegaard deltas of each test curve (SAE) against each anchor "
    "(a classical codec, or another model's results with --anchors), means over the images per operating point: "
    "bd_rate_*_percent = exp(mean gap of cubic fits of ln(bpp) vs quality "
    "over the common quality range) - 1, negative = the test needs fewer "
    "bits; bd_*_db = mean gap of cubic fits of quality vs ln(bpp) over the "
    "common rate range, positive = the test is better. Quality: PSNR-RGB "
    "(dB), MS-SSIM-RGB as -10 log10(1 - MS-SSIM) dB. Sweeps are fitted on "
    "their points inside the common range and the two bracketing it (at "
    "least four). bpp = 8*bytes/(H*W).")


def parser() -> argparse.ArgumentParser:
  p = cli.Parser(
      prog="python -m sae.eval.bdrate", description="BD-rate of SAE against the classical codecs' results.",
      formatter_class=cli.HelpFormatter)
  p.add_argument("--results-dir", default="results/kodak",
                 help="holds <codec>.json from sae.eval.bench (the anchors)")
  p.add_argument("--sae", nargs="*", default=None,
                 help="SAE results JSONs (default: <results-dir>/sae*.json)")
  p.add_argument("--anchors", nargs="+", default=None, metavar="JSON",
                 help="results JSONs to compare against instead of the "
                 "classical codecs in --results-dir, e.g. another SAE model")
  p.add_argument("--paper", action="store_true",
                 help="also compare the paper's SAE curves at true rate, "
                 "its MSE and its MS-SSIM model (the MSE one always, when "
                 "there are no SAE results)")
  p.add_argument("--paper-anchors", default=str(curves.DEFAULT_PAPER_ANCHORS),
                 help="the published points (default: shipped with sae)")
  p.add_argument("--out", default=None,
                 help="output JSON (default: bd-rates.json beside the "
                 "results folder, e.g. results/bd-rates.json; the results "
                 "folder holds results files only)")
  p.add_argument("--markdown", action="store_true",
                 help="print the table as Markdown")
  return p


def codec_results(results_dir) -> list:
  """The classical codecs' results JSONs in ``results_dir``, bench order."""
  folder = pathlib.Path(results_dir)
  return [folder / f"{name}.json" for name in classical.CODECS
          if (folder / f"{name}.json").is_file()]


def sae_results(results_dir) -> list:
  return sorted(pathlib.Path(results_dir).glob("sae*.json"))


def default_out(results_dir) -> pathlib.Path:
  """Where the BD-rates go by default: beside the results folder, which
  holds only results files (CompressAI's plot tool reads every one)."""
  folder = pathlib.Path(results_dir)
  parent = folder.parent if folder.name not in ("", "..") else (
      folder.resolve().parent)
  return parent / "bd-rates.json"


def run(args) -> int:
  if args.anchors is not None and args.out is None:
    raise InputError("--anchors needs --out: the default file holds the "
                     "comparisons with the classical codecs")
  anchor_paths = (codec_results(args.results_dir) if args.anchors is None
                  else args.anchors)
  anchors = [curves.load_results(p) for p in anchor_paths]
  if not anchors:
    raise InputError(f"no codec results in {args.results_dir!r}; run "
                     "python -m sae.eval.bench first")
  sae_paths = sae_results(args.results_dir) if args.sae is None else args.sae
  tests = [curves.load_results(p) for p in sae_paths]
  if not tests:
    print("notice: no SAE results; comparing the paper's SAE curve at true "
          f"rate ({curves.PAPER_CITATION}) instead", file=sys.stderr)
    tests.append(curves.paper_sae(args.paper_anchors, true_rate=True))
  elif args.paper:
    tests += [curves.paper_sae(args.paper_anchors, model, true_rate=True)
              for model in ("mse", "ms-ssim")]
  rows = [compare(t, a) for t in tests for a in anchors]
  out = args.out or default_out(args.results_dir)
  description = DESCRIPTION
  if any(t.name.startswith("sae-paper") for t in tests):
    description += (" sae-paper-*: SAE as published, "
                    f"{curves.PAPER_CITATION}, rates x3 (true bpp).")
  report = {"description": description, "comparisons": rows}
  write_json(out, report)
  print(format_markdown(rows) if args.markdown else format_table(rows))
  print(f"-> {out}")
  return 0


def main(argv=None) -> int:
  return cli.guarded(run, parser().parse_args(argv))


if __name__ == "__main__":
  sys.exit(main())
