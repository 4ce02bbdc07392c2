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


def training_config(config: ModelConfig, preset_layers) -> ModelConfig:
  """The layers a model needs to train the top layer of ``config``: those,
  except for the nested family's base, which learns the latent for every
  layer's step and so needs the layers above too (their steps and lambdas,
  from the preset's table)."""
  if config.family == "sae-nested" and len(config.layers) == 1:
    return with_layers_above(config, preset_layers)
  return config


def with_layers_above(config: ModelConfig, preset_layers) -> ModelConfig:
  """``config``'s layers, then the preset's above them."""
  return ModelConfig(config.layers + tuple(preset_layers[len(config.layers):]),
                     config.metric, config.preset, config.family)
