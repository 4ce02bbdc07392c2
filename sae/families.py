"""The model class of each family: one place that maps a weights folder's
config.json to what it builds (sae.config.FAMILIES lists the families)."""

from sae.config import ModelConfig
from sae.model import ScalableAutoEncoder
from sae.nested import NestedAutoEncoder


def build_model(config: ModelConfig) -> ScalableAutoEncoder:
  """The model ``config`` describes: a cascade, or the nested family's."""
  if config.family == "sae-nested":
    return NestedAutoEncoder(config.layers, config.metric)
  return ScalableAutoEncoder(config.layers, config.metric)
