"""The results schema, built in one place for SAE and the classical codecs.

CompressAI's schema (its plot tool reads it), one entry per operating point
(a cumulative SAE layer, or a codec's quality setting):

    {"name", "description", "layers": [label per point],
     "results": {"bpp", "psnr-rgb", "ms-ssim-rgb", "encoding_time",
                 "decoding_time"}: the means over images, one per point,
     "per_image": [{"image", "height", "width", "bytes", "bpp", ...}]}

The protocol (docs/evaluation.md): bpp from the bytes written, PSNR-RGB and
MS-SSIM-RGB of the 8-bit decoded image, every image at its own size.
"""

import numpy as np

PER_IMAGE_KEYS = ("bytes", "bpp", "psnr-rgb", "ms-ssim-rgb", "encoding_time",
                  "decoding_time")
RESULT_KEYS = PER_IMAGE_KEYS[1:]


def new_row(name, image) -> dict:
  """An image's per_image entry, before its first operating point."""
  h, w = image.shape[:2]
  return {"image": name, "height": h, "width": w,
          **{key: [] for key in PER_IMAGE_KEYS}}


def record(row, image, data: bytes, decoded, encoding_time, decoding_time):
  """Adds one operating point: ``data`` the bytes written, ``decoded`` what
  they decode to."""
  # Imported here so that command lines can quiet TensorFlow first.
  from sae.eval import metrics  # pylint: disable=import-outside-toplevel
  if decoded.shape != image.shape:
    raise RuntimeError(f"{row['image']}: decoded {decoded.shape}, expected "
                       f"{image.shape}")
  h, w = image.shape[:2]
  row["bytes"].append(len(data))
  row["bpp"].append(metrics.bits_per_pixel(len(data), h, w))
  row["psnr-rgb"].append(metrics.psnr(image, decoded))
  row["ms-ssim-rgb"].append(metrics.ms_ssim(image, decoded))
  row["encoding_time"].append(encoding_time)
  row["decoding_time"].append(decoding_time)


def summarize(name, description, labels, per_image) -> dict:
  """The results file: the means over images of each operating point."""
  results = {key: [float(np.mean([r[key][i] for r in per_image]))
                   for i in range(len(labels))] for key in RESULT_KEYS}
  return {"name": name, "description": description, "layers": list(labels),
          "results": results, "per_image": per_image}


def format_table(summary) -> str:
  """The means as a text table, one row per operating point."""
  lines = [f"{'layers':<12}{'bpp':>9}{'PSNR-RGB':>10}{'MS-SSIM':>9}"
           f"{'enc s':>8}{'dec s':>8}"]
  r = summary["results"]
  for i, name in enumerate(summary["layers"]):
    lines.append(f"{name:<12}{r['bpp'][i]:>9.4f}{r['psnr-rgb'][i]:>10.2f}"
                 f"{r['ms-ssim-rgb'][i]:>9.4f}{r['encoding_time'][i]:>8.3f}"
                 f"{r['decoding_time'][i]:>8.3f}")
  return "\n".join(lines)
