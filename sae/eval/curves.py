"""Rate-distortion curves: from results JSONs and from the paper's data.

A curve is the mean (bpp, PSNR-RGB, MS-SSIM-RGB) of each operating point,
ordered by rate. Results JSONs are sae.eval.evaluate's schema; CompressAI's older
files (keys ``psnr`` and ``ms-ssim``) are read too.  A layer's validation
curve during training is its ``val.csv`` (``layer_validation``).
"""

import csv
import itertools
import json
import pathlib
from typing import NamedTuple

from sae.config import LAYER_NAMES, layers_label
from sae.errors import InputError

# The paper's published points ship with the package (facts, with their
# source inside the file): see docs/rate-correction.md.
DEFAULT_PAPER_ANCHORS = (pathlib.Path(__file__).resolve().parent /
                         "published" / "paper-sae-kodak.json")
PAPER_CITATION = "Jia et al. MIPR 2019 supplementary data"


class Curve(NamedTuple):
  """Mean RD points of one codec or model, ordered by rate."""
  name: str
  bpp: tuple
  psnr: tuple
  ms_ssim: tuple  # linear, in [0, 1]
  labels: tuple = ()  # one per point: layer or quality setting
  source: str = ""
  metric: str = ""  # what a trained model minimized: "mse" or "ms-ssim"


def layer_validation(val_csv, k) -> list:
  """Layer ``k``'s validation rows in its ``val.csv``, each a dict of floats
  (step, loss, bpp, mse, psnr, ..), oldest first.

  A run that validates every cumulative layer (the nested family's base,
  the joint phase) writes a ``layers`` column and a row per prefix at each
  step; layer k's own line is then its prefix's (base, +el1, ..).  Rows a
  running trainer is still writing are left out.
  """
  def complete(row):
    try:
      return all(row[key] not in (None, "") for key in ("step", "loss", "bpp",
                                                         "psnr"))
    except KeyError as e:
      raise InputError(f"{str(val_csv)!r} has no column {e}") from None

  with pathlib.Path(val_csv).open() as f:
    rows = [row for row in csv.DictReader(f) if complete(row)]
  if rows and "layers" in rows[0]:
    rows = [row for row in rows if row.pop("layers") == layers_label(k)]
  return [{key: float(value) for key, value in row.items()
           if value not in (None, "")} for row in rows]


def joint_validation(val_csv) -> dict:
  """The joint phase's validation (``joint/val.csv``: a row per layer, with
  that layer's own bpp) as one curve per validated step, {step: Curve}:
  the cumulative layers, each prefix's bpp the sum of its layers'.  Steps
  not yet validated at every layer are left out.
  """
  lines = []  # layer k's rows by step
  for k in range(len(LAYER_NAMES)):
    rows = layer_validation(val_csv, k)
    if not rows:
      break
    lines.append({int(row["step"]): row for row in rows})
  steps = set.intersection(*(set(line) for line in lines)) if lines else ()
  by_step = {}
  for step in sorted(steps):
    rows = [line[step] for line in lines]
    by_step[step] = Curve(
        f"step {step}", tuple(itertools.accumulate(r["bpp"] for r in rows)),
        tuple(r["psnr"] for r in rows),
        tuple(r.get("ms_ssim", float("nan")) for r in rows),
        tuple(layers_label(k) for k in range(len(rows))), str(val_csv))
  return by_step


def read_json(path) -> dict:
  """The parsed JSON file, or InputError naming it."""
  try:
    return json.loads(pathlib.Path(path).read_text())
  except FileNotFoundError:
    raise InputError(f"{str(path)!r} does not exist") from None
  except (OSError, ValueError) as e:
    raise InputError(f"cannot read JSON {str(path)!r}: {e}") from None


def load_results(path) -> Curve:
  """The curve of a results JSON (one point per layer or quality).

  Raises:
    InputError: the file is missing or is not a results JSON.
  """
  summary = read_json(path)
  try:
    results = summary["results"]
    bpp = results["bpp"]
    psnr = results["psnr-rgb"] if "psnr-rgb" in results else results["psnr"]
    ms_ssim = results.get("ms-ssim-rgb", results.get("ms-ssim"))
    ms_ssim = ms_ssim if ms_ssim is not None else [float("nan")] * len(bpp)
    labels = summary.get("layers", ())
    name = summary.get("name") or pathlib.Path(path).stem
  except (KeyError, TypeError) as e:
    raise InputError(f"{str(path)!r} is not a results JSON (no {e})") from None
  if not len(bpp) == len(psnr) == len(ms_ssim) or not bpp:
    raise InputError(f"{str(path)!r}: bpp, PSNR and MS-SSIM lists differ in "
                     "length or are empty")
  order = sorted(range(len(bpp)), key=lambda i: bpp[i])
  pick = lambda values: tuple(float(values[i]) for i in order)
  return Curve(name, pick(bpp), pick(psnr), pick(ms_ssim),
               tuple(labels[i] for i in order) if len(labels) == len(bpp)
               else (), str(path), str(summary.get("metric") or ""))


def paper_sae(path=DEFAULT_PAPER_ANCHORS, model="mse",
              true_rate=True) -> Curve:
  """SAE as the authors published it (Kodak means of their decoded images).

  Args:
    path: the published points, by default sae/eval/published/paper-sae-kodak.json
      (or the same layout with more fields, e.g. per-image rows).
    model: "mse" or "ms-ssim", the published model.
    true_rate: bits / (H * W), three times the published rate; False gives
      the published figure (bits per pixel per colour channel).

  Raises:
    InputError: the file is missing or has no such model.
  """
  data = read_json(path)
  try:
    layers = data["layers"][model]
    key = "bpp_published_x3" if true_rate else "bpp_published"
    points = [(l[key], l["psnr_rgb"], l["ms_ssim_rgb"], l["layer"])
              for l in layers]
  except (KeyError, TypeError) as e:
    raise InputError(f"{str(path)!r} has no published {model!r} SAE layers "
                     f"(no {e})") from None
  bpp, psnr, ms_ssim, labels = zip(*sorted(points))
  rate = "true rate" if true_rate else "per-channel rate"
  return Curve(f"sae-paper-{model}-{rate.replace(' ', '-')}",
               tuple(map(float, bpp)), tuple(map(float, psnr)),
               tuple(map(float, ms_ssim)), labels, str(path))
