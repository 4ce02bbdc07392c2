"""Rate-distortion figures and a visual comparison, from whatever results exist.

    python -m sae.eval.plots --results-dir results/kodak --figs-dir figs \
        [--sae results/kodak/sae-mse.json ...] [--recon-dir DIR]

Writes ``<prefix>_rd_psnr.png`` and ``<prefix>_rd_msssim.png``: SAE (each
cumulative layer a point), the classical codecs, and the paper's SAE curve as
published (per-channel rate) and at true rate (x3). With ``--recon-dir`` (the
PNGs ``test_elK.py --recon-dir`` writes) also ``<prefix>_visual.png``: crops
after 1..K SAE layers beside JPEG 2000 quality layers at the same rates.

Figures are drawn on a bare ``matplotlib.figure.Figure`` (Agg canvas, no
pyplot state) and written atomically.
"""

import argparse
import io
import pathlib
import sys

import numpy as np
try:  # the plot extra: run() says how to install it
  from matplotlib.backends.backend_agg import FigureCanvasAgg
  from matplotlib.figure import Figure
  from matplotlib.patches import Rectangle
except ImportError:
  FigureCanvasAgg = Figure = Rectangle = None

from sae.eval import bdrate, classical, curves, kodak
from sae.cli import cli
from sae.errors import InputError, require_extra
from sae.fileio import atomic_write

METRICS = {"psnr-rgb": ("psnr", "PSNR-RGB (dB)"),
           "ms-ssim-rgb": ("ms_ssim", "MS-SSIM-RGB")}
_CODEC_LABELS = {"jpeg": "JPEG", "webp": "WebP", "jpeg2000": "JPEG 2000",
                 "jpeg2000-layers": "JPEG 2000, quality layers (one stream)",
                 "avif": "AVIF (4:4:4)", "jxl": "JPEG XL"}
_CODEC_STYLES = {"jpeg": ("tab:brown", "v"), "webp": ("tab:olive", "^"),
                 "jpeg2000": ("tab:green", "s"),
                 "jpeg2000-layers": ("tab:green", "D"),
                 "avif": ("tab:purple", "P"), "jxl": ("tab:cyan", "X")}
# The models' curves, in turn: colours that no codec above and no paper
# curve (black, dimgray) has, so that a model is never mistaken for them.
_SAE_COLORS = ("tab:red", "tab:blue", "tab:orange", "tab:pink", "gold")


def _save(fig, path) -> None:
  FigureCanvasAgg(fig)
  buf = io.BytesIO()
  fig.savefig(buf, format="png", dpi=120, bbox_inches="tight")
  atomic_write(path, buf.getvalue())


def rd_figure(metric, out, sae=(), codecs=(), paper_anchors=None,
              xlim=(0.0, 3.5), title="Kodak (24 images)") -> Figure:
  """Draws quality vs true bpp of every curve given and writes a PNG.

  Args:
    metric: "psnr-rgb" or "ms-ssim-rgb".
    out: PNG path.
    sae: SAE results JSON paths (each cumulative layer one point).
    codecs: the bench's results JSON paths.
    paper_anchors: the published points (curves.paper_sae), or None to leave
      the published SAE curves out.
    xlim: bpp range shown.
    title: figure title.

  Returns:
    The figure written (tests read its curves).

  Raises:
    ValueError: unknown metric.
    InputError: a results file is missing or malformed.
  """
  if metric not in METRICS:
    raise ValueError(f"metric must be one of {list(METRICS)}, got {metric!r}")
  field, ylabel = METRICS[metric]
  fig = Figure(figsize=(8, 6))
  ax = fig.add_subplot()
  shown = []

  def draw(curve, label, **style):
    x, y = np.asarray(curve.bpp), np.asarray(getattr(curve, field))
    ax.plot(x, y, label=label, **style)
    keep = (x <= xlim[1]) & np.isfinite(y)
    shown.extend(y[keep])

  for path in codecs:
    curve = curves.load_results(path)
    color, marker = _CODEC_STYLES.get(curve.name, (None, "."))
    layered = curve.name == "jpeg2000-layers"
    draw(curve, _CODEC_LABELS.get(curve.name, curve.name), color=color,
         marker=marker, markersize=6 if layered else 4,
         linewidth=1.2, linestyle="--" if layered else "-",
         markerfacecolor="white" if layered else color)
  if paper_anchors is not None:
    for true_rate in (True, False):
      curve = curves.paper_sae(paper_anchors, true_rate=true_rate)
      rate = ("true rate (published x3)" if true_rate else
              "published per-channel rate (bits/(3HW))")
      draw(curve, f"SAE MSE, {rate}\n[{curves.PAPER_CITATION}]",
           color="black", marker="s", linewidth=1.5,
           linestyle="-" if true_rate else ":",
           markerfacecolor="black" if true_rate else "white")
  if paper_anchors is not None and metric == "ms-ssim-rgb":
    # The target of the MS-SSIM model, on the plot of its own metric.
    curve = curves.paper_sae(paper_anchors, model="ms-ssim")
    draw(curve, "SAE MS-SSIM model, true rate (published x3)\n"
         f"[{curves.PAPER_CITATION}]", color="dimgray", marker="D",
         linewidth=1.2, linestyle="-.", markersize=5)
  for i, path in enumerate(sae):
    curve = curves.load_results(path)
    color = _SAE_COLORS[i % len(_SAE_COLORS)]
    draw(curve, f"SAE (this port): {curve.name}", color=color,
         marker="o", linewidth=2.2, markersize=7, zorder=5)
    for x, y, label in zip(curve.bpp, getattr(curve, field), curve.labels):
      if x <= xlim[1]:
        ax.annotate(label, (x, y), textcoords="offset points",
                    xytext=(5, -11), fontsize=7, color=color)
  ax.set_xlim(*xlim)
  if shown:
    lo, hi = min(shown), max(shown)
    if field == "psnr":
      ax.set_ylim(np.floor(lo) - 0.5, np.ceil(hi) + 0.5)
    else:
      # Below 0.8 lie only the lowest JPEG points; they would squash the
      # region where the curves differ.
      ax.set_ylim(max(0.8, np.floor(lo * 20) / 20), 1.0)
  ax.set_xlabel("rate (bits per pixel = 8 * file bytes / (H * W))")
  ax.set_ylabel(ylabel)
  ax.set_title(f"{title}: {ylabel} vs rate")
  ax.grid(True, alpha=0.3)
  if shown:
    ax.legend(loc="lower right", fontsize=8)
  else:
    ax.text(0.5, 0.5, "no results yet", transform=ax.transAxes, ha="center")
  _save(fig, out)
  return fig


def _find_row(summary, stem, path):
  for row in summary.get("per_image", []):
    if pathlib.Path(row["image"]).stem == stem:
      return row
  raise InputError(f"{str(path)!r} has no per-image results for {stem!r}")


def _crop_box(shape, crop):
  h, w = shape[:2]
  if crop is None:
    size = min(192, h, w)
    top, left = (h - size) // 2, (w - size) // 2
  else:
    top, left, size = crop
  if top < 0 or left < 0 or top + size > h or left + size > w:
    raise InputError(f"crop {top},{left},{size} does not fit a {h}x{w} image")
  return top, left, size


def visual_figure(out, image_dir, recon_dir, sae_results,
                  stems=("kodim04", "kodim23"), num_layers=4,
                  crop=None) -> None:
  """Crops after 1..K SAE layers and JPEG 2000 layers at the same rates.

  JPEG 2000 codes each image once with quality layers at that image's SAE
  cumulative rates and decodes each prefix. Labels give the whole image's
  bpp / PSNR-RGB / MS-SSIM-RGB, measured on the decoded PNG.

  Args:
    out: PNG path.
    image_dir: folder of the originals (``<stem>.png``).
    recon_dir: SAE decoded images, ``<stem>_<k>.png`` for k layers.
    sae_results: the SAE results JSON of the same run (per-image bpp).
    stems: images to show.
    num_layers: at most this many layers (fewer if the results have fewer).
    crop: (top, left, size) for every image; None is a centred 192x192.

  Raises:
    InputError: a file is missing, or the JSON lacks one of the images.
  """
  # Imported here so that `python -m sae.eval.plots` can quiet TensorFlow first.
  from sae import images  # pylint: disable=import-outside-toplevel
  from sae.eval import metrics
  summary = curves.read_json(sae_results)
  codec = classical.LayeredJpeg2000()
  rows = []
  for stem in stems:
    original = images.load_image(pathlib.Path(image_dir) / f"{stem}.png")
    row = _find_row(summary, stem, sae_results)
    rates = row["bpp"][:num_layers]
    h, w = original.shape[:2]
    sae_tiles, j2k_tiles = [], []
    stream = codec.encode(original, rates)
    for k, rate in enumerate(rates, start=1):
      decoded = images.load_image(pathlib.Path(recon_dir) / f"{stem}_{k}.png")
      sae_tiles.append((decoded, rate))
      part = codec.truncate(stream, k)
      j2k_tiles.append((codec.decode(part), 8 * len(part) / (h * w)))
    for tiles in (sae_tiles, j2k_tiles):
      for i, (decoded, rate) in enumerate(tiles):
        tiles[i] = (decoded, f"{rate:.3f} bpp\n"
                    f"{metrics.psnr(original, decoded):.2f} dB / "
                    f"{metrics.ms_ssim(original, decoded):.4f}")
    rows.append((stem, original, sae_tiles, j2k_tiles))

  cols = 1 + max(len(r[2]) for r in rows)
  fig = Figure(figsize=(2.3 * cols, 2.75 * 2 * len(rows)))
  for i, (stem, original, sae_tiles, j2k_tiles) in enumerate(rows):
    top, left, size = _crop_box(original.shape, crop)
    cut = lambda a: a[top:top + size, left:left + size]
    for j, (codec_name, tiles) in enumerate((("SAE", sae_tiles),
                                             ("JPEG 2000", j2k_tiles))):
      r = 2 * i + j
      ax = fig.add_subplot(2 * len(rows), cols, r * cols + 1)
      if j == 0:
        ax.imshow(cut(original))
        ax.set_title(f"{stem}, original", fontsize=8)
      else:
        ax.imshow(original)
        ax.add_patch(Rectangle((left, top), size, size, fill=False,
                               edgecolor="red", linewidth=1))
        ax.set_title("crop", fontsize=8)
      ax.set_xticks([])
      ax.set_yticks([])
      for k, (decoded, label) in enumerate(tiles, start=1):
        ax = fig.add_subplot(2 * len(rows), cols, r * cols + 1 + k)
        ax.imshow(cut(decoded))
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_xlabel(label, fontsize=7)
        layers = f"{k} layer" + ("s" if k > 1 else "")
        ax.set_title(f"{codec_name}, {layers}", fontsize=8)
  fig.suptitle("SAE layers vs JPEG 2000 quality layers at the same rates "
               "(labels: whole image bpp, PSNR-RGB / MS-SSIM-RGB)",
               fontsize=9)
  fig.tight_layout()
  _save(fig, out)


def training_figure(weights_dir, out) -> None:
  """Loss, bpp, PSNR (and validation MS-SSIM) against steps, per layer.

  Each layer's curve is its own loss and rate, and the PSNR of the total
  reconstruction up to that layer, on the training crops.
  """
  from sae.config import LAYER_NAMES
  fig = Figure(figsize=(17, 3.8))
  axes = fig.subplots(1, 4)
  found = False
  for k, name in enumerate(LAYER_NAMES):
    path = pathlib.Path(weights_dir) / name / "log.csv"
    if not path.is_file():
      continue
    log = np.genfromtxt(path, delimiter=",", names=True)
    if log.size < 2:
      continue
    found = True
    lines = []
    for ax, key in zip(axes, ("loss", "bpp", "psnr")):
      lines += ax.plot(log["step"], log[key], label=name, lw=1)
    val_path = path.with_name("val.csv")
    val = curves.layer_validation(val_path, k) if val_path.is_file() else []
    if val:
      steps = [row["step"] for row in val]
      for ax, key, line in zip(axes, ("loss", "bpp", "psnr"), lines):
        ax.plot(steps, [row[key] for row in val], "--", color=line.get_color(),
                lw=1.5, label=f"{name} validation (quantized)")
      if "ms_ssim" in val[-1]:  # recorded since session 2
        axes[3].plot([row["step"] for row in val if "ms_ssim" in row],
                     [row["ms_ssim"] for row in val if "ms_ssim" in row], "--",
                     color=lines[0].get_color(), lw=1.5, label=name)
  if not found:
    raise InputError(f"no training logs (<layer>/log.csv) in {weights_dir}")
  for ax, label in zip(axes, ("training loss (own rate + lambda D)",
                              "bpp of the layer (estimate)",
                              "PSNR-RGB of the total (dB)",
                              "validation MS-SSIM-RGB of the total")):
    ax.set_xlabel("step")
    ax.set_title(label, fontsize=10)
    ax.grid(alpha=0.3)
  axes[0].set_yscale("log")
  axes[0].legend()
  if not axes[3].lines:  # logs from before validation recorded MS-SSIM
    axes[3].set_visible(False)
  fig.suptitle(f"Training curves: {weights_dir} (256x256 crops, means over "
               "100 steps)", fontsize=10)
  _save(fig, out)


def _crop_arg(text):
  try:
    top, left, size = (int(t) for t in text.split(","))
  except ValueError:
    raise argparse.ArgumentTypeError(f"expected TOP,LEFT,SIZE, got {text!r}"
                                     ) from None
  return top, left, size


def parser() -> argparse.ArgumentParser:
  p = cli.Parser(
      prog="python -m sae.eval.plots", description="RD figures (PSNR-RGB, MS-SSIM-RGB vs bpp) and a visual "
      "comparison, from the results that exist.",
      formatter_class=cli.HelpFormatter)
  p.add_argument("--results-dir", default="results/kodak",
                 help="holds <codec>.json (sae.eval.bench) and sae*.json")
  p.add_argument("--sae", nargs="*", default=None,
                 help="SAE results JSONs (default: <results-dir>/sae*.json)")
  p.add_argument("--paper-anchors", default=str(curves.DEFAULT_PAPER_ANCHORS),
                 help="the paper's published points ('' to leave out)")
  p.add_argument("--figs-dir", default="figs")
  p.add_argument("--prefix", default="kodak", help="figure file name prefix")
  p.add_argument("--title", default="Kodak (24 images)",
                 help="data set named in the RD figures' titles")
  p.add_argument("--images", default=kodak.DEFAULT_FOLDER,
                 help="original images, for the visual comparison")
  p.add_argument("--recon-dir", default=None,
                 help="SAE decoded PNGs <stem>_<k>.png (test_elK.py "
                 "--recon-dir); without it no visual comparison")
  p.add_argument("--visual-sae", default=None,
                 help="SAE results JSON of the --recon-dir run (default: "
                 "<results-dir>/sae-mse.json, else the first SAE results)")
  p.add_argument("--visual-images", default="kodim04,kodim23",
                 help="comma list of image stems to show")
  p.add_argument("--crop", type=_crop_arg, default=None,
                 help="TOP,LEFT,SIZE of the crop (default: centred 192)")
  p.add_argument("--training", nargs="*", default=[],
                 help="weights folders whose training curves to plot "
                 "(figs/training_<folder name>.png)")
  return p


def run(args) -> int:
  require_extra("plot", "matplotlib")
  figs = pathlib.Path(args.figs_dir)
  figs.mkdir(parents=True, exist_ok=True)
  codecs = bdrate.codec_results(args.results_dir)
  sae = bdrate.sae_results(args.results_dir) if args.sae is None else args.sae
  anchors = args.paper_anchors or None
  if anchors and not pathlib.Path(anchors).is_file():
    print(f"notice: {anchors} not found; the paper's curve is left out",
          file=sys.stderr)
    anchors = None
  if not sae:
    print("notice: no SAE results yet; plotting without them",
          file=sys.stderr)
  for folder in args.training:
    out = figs / f"training_{pathlib.Path(folder).name}.png"
    training_figure(folder, out)
    print(f"-> {out}")
  for metric, suffix in (("psnr-rgb", "psnr"), ("ms-ssim-rgb", "msssim")):
    out = figs / f"{args.prefix}_rd_{suffix}.png"
    rd_figure(metric, out, sae, codecs, anchors, title=args.title)
    print(f"-> {out}")
  if args.recon_dir is None:
    print("notice: no --recon-dir; no visual comparison", file=sys.stderr)
    return 0
  # The MSE model's results by default: test_el3.py --recon-dir wrote them.
  preferred = pathlib.Path(args.results_dir) / "sae-mse.json"
  visual_sae = args.visual_sae or (
      str(preferred) if str(preferred) in map(str, sae) else
      (sae[0] if sae else None))
  if visual_sae is None:
    raise InputError("the visual comparison needs SAE results (--visual-sae)")
  out = figs / f"{args.prefix}_visual.png"
  visual_figure(out, args.images, args.recon_dir, visual_sae,
                [s.strip() for s in args.visual_images.split(",")
                 if s.strip()], crop=args.crop)
  print(f"-> {out}")
  return 0


def main(argv=None) -> int:
  args = parser().parse_args(argv)
  cli.quiet_tensorflow()
  return cli.guarded(run, args)


if __name__ == "__main__":
  sys.exit(main())
