"""A layer's training record: TensorBoard scalars, log.csv and val.csv."""

import math

import tensorflow as tf

from sae.errors import InputError
from sae.fileio import atomic_write

TRAIN_COLUMNS = ("step", "loss", "bpp", "mse", "psnr", "lr", "seconds")
VAL_COLUMNS = ("step", "loss", "bpp", "mse", "psnr", "ms_ssim")
# Joint fine-tuning validates every cumulative layer: one row per layer.
VAL_COLUMNS_BY_LAYER = ("step", "layers") + VAL_COLUMNS[1:]


def upgrade_csv(path, columns):
  """Creates the CSV with its header, or gives a file written by an older
  version with fewer columns the new header, its old rows left with empty
  fields.

  Raises:
    InputError: the file has other columns.
  """
  header = ",".join(columns)
  lines = path.read_text().splitlines() if path.exists() else []
  if not lines:
    atomic_write(path, (header + "\n").encode())
  elif lines[0] != header:
    old = lines[0].split(",")
    if old != list(columns[:len(old)]):
      raise InputError(f"{path} has columns {lines[0]!r}, expected {header!r}")
    padding = "," * (len(columns) - len(old))
    atomic_write(path, "\n".join(
        [header] + [line + padding for line in lines[1:]]).encode() + b"\n")


def append_csv(path, columns, values):
  """Appends a row (see upgrade_csv for the header)."""
  upgrade_csv(path, columns)
  with open(path, "a") as f:
    f.write(",".join(f"{v:.6g}" if isinstance(v, float) else str(v)
                     for v in values) + "\n")


class TrainLog:
  """Writes a layer's curves into its folder; only the chief writes.

  Created before the first step, so that a val.csv of other columns stops
  training at once rather than at the first validation.
  """

  def __init__(self, folder, chief: bool, by_layer: bool = False):
    self.chief = chief
    self.writer = tf.summary.create_file_writer(str(folder / "logs"))
    self.train_csv, self.val_csv = folder / "log.csv", folder / "val.csv"
    self.val_columns = VAL_COLUMNS_BY_LAYER if by_layer else VAL_COLUMNS
    if chief:
      if not self.train_csv.exists():
        self.train_csv.write_text(",".join(TRAIN_COLUMNS) + "\n")
      upgrade_csv(self.val_csv, self.val_columns)

  def training(self, step, rows, lr, seconds) -> dict:
    """Logs the mean of ``rows`` ([loss, bpp, mse] per step) at ``step``;
    returns it as a dict with the PSNR."""
    loss, bpp, mse = (sum(c) / len(rows) for c in zip(*rows))
    last = {"step": step, "loss": loss, "bpp": bpp, "mse": mse,
            "psnr": 10 * math.log10(255 ** 2 / max(mse, 1e-10))}
    if self.chief:
      with self.writer.as_default(step=step):
        for name in ("loss", "bpp", "mse", "psnr"):
          tf.summary.scalar(name, last[name])
        tf.summary.scalar("learning_rate", lr)
      with open(self.train_csv, "a") as f:
        f.write(f"{step},{loss:.6f},{bpp:.6f},{mse:.4f},{last['psnr']:.4f},"
                f"{lr:.2e},{seconds:.1f}\n")
    return last

  def validation(self, step, val: dict, layers: str = "") -> None:
    """Logs ``val`` at ``step``; ``layers`` labels the cumulative layers
    measured when a run validates several ("+el1"), else empty."""
    if self.chief:
      prefix = f"validation/{layers}/" if layers else "validation/"
      with self.writer.as_default(step=step):
        for name, value in val.items():
          tf.summary.scalar(prefix + name, value)
      row = [step] + ([layers] if layers else [])
      append_csv(self.val_csv, self.val_columns,
                 row + [val[c] for c in VAL_COLUMNS[1:]])
