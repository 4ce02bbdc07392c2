"""An enhancement layer of the nested family: a rung of one latent's ladder.

The nested family (sae.models.nested) has one analysis and one hyperprior, in
its base.  An enhancement layer k sends the trits that refine the latent
from the step below to its own step (sae.entropy.trits), and owns the synthesis
that decodes the latent at its step: a decoder of k + 1 layers runs that
synthesis alone.  Its variables are the synthesis's; its range coding
tables are the trit tables, stored with shipped weights as the other
layers' tables are.
"""

import numpy as np
import tensorflow as tf

from sae.entropy import meanscale, trits
from sae.config import LayerSpec
from sae.entropy.layer import CodecDigests
from sae.models.transforms import SynthesisTransform

TRIT_KEYS = ("trit_cdf",)


def scale_grid():
  """The Gaussian scales of sae.entropy.meanscale's grid, NumPy float32."""
  levels = np.arange(meanscale.SCALES_LEVELS, dtype=np.float32)
  return meanscale.scale_fn(levels).numpy()


class RungCodec(CodecDigests, tf.keras.Model):
  """A synthesis of the latent at ``spec.step``, and the trit coder."""

  table_keys = TRIT_KEYS

  def __init__(self, spec: LayerSpec, name: str):
    super().__init__(name=name)
    self.spec = spec
    self.synthesis = SynthesisTransform(spec)
    self.synthesis.build((None, None, None, spec.latent_channels))
    self.coder = None  # trits.TritCoder, once prepared

  def checkpoint_objects(self) -> dict:
    return {"synthesis": self.synthesis}

  @property
  def weight_variables(self):
    return list(self.synthesis.weights)

  @property
  def is_prepared(self) -> bool:
    return self.coder is not None

  def freeze_transforms(self, on=True):
    self.synthesis.freeze(on)

  def prepare_for_coding(self, tables=None):
    """Builds the trit coder from stored tables, or derives them from the
    scale grid."""
    if tables is not None:
      missing = set(self.table_keys) - set(tables)
      if missing:
        raise ValueError(f"{self.name}: stored tables lack {sorted(missing)}")
      cdf = np.asarray(tables["trit_cdf"])
      expected = meanscale.SCALES_LEVELS * trits.PARENT_LEVELS * (trits.RATIO + 3)
      if cdf.shape != (expected,):
        raise ValueError(f"{self.name}: stored trit tables have {cdf.size} "
                         f"entries, not {expected}")
    else:
      cdf = trits.trit_cdf(scale_grid())
    self.coder = trits.TritCoder(cdf)
    self.freeze_transforms()

  def coding_tables(self) -> dict:
    if self.coder is None:
      raise RuntimeError(
          f"{self.name}: call prepare_for_coding() before coding")
    return {"trit_cdf": self.coder.cdf}

  def call(self, y_hat, training=False):
    return self.synthesis(y_hat, training=training)
