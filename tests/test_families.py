"""A folder's family decides the model it builds (sae.families)."""

from sae.config import ModelConfig, get_preset
from sae.families import build_model, training_config
from sae.model import ScalableAutoEncoder
from sae.nested import NestedAutoEncoder


def config_of(family, num_layers):
  layers = get_preset("tiny", family=family).layers[:num_layers]
  return ModelConfig(layers, preset="tiny", family=family)


def test_each_family_builds_its_model():
  assert type(build_model(config_of("sae", 2))) is ScalableAutoEncoder
  assert type(build_model(config_of("sae-plus-hyper", 2))) is ScalableAutoEncoder
  assert type(build_model(config_of("sae-nested", 2))) is NestedAutoEncoder


def test_only_the_nested_base_trains_with_the_layers_above():
  preset = get_preset("tiny", family="sae-nested").layers
  base = training_config(config_of("sae-nested", 1), preset)
  assert [s.step for s in base.layers] == [27.0, 9.0, 3.0, 1.0]
  el1 = config_of("sae-nested", 2)
  assert training_config(el1, preset) == el1
  cascade = config_of("sae", 1)
  assert training_config(cascade, get_preset("tiny").layers) == cascade
