"""The model families, in one registry.

A family is a model class and the layer table its presets give; a weights
folder's config.json names it.  Everything that depends on the family
reads it here: train_base.py's ``--family`` (choices and help), the check
of a folder's config.json (sae.checkpoints.read_config), the model a
folder builds, the preset a run trains, what results call the model.

Adding a family: a module with its model class (a LayeredModel,
taking the layer specs and the metric) and one entry in FAMILIES.

No TensorFlow here: the command line builds its parsers and reads
config.json without it, so a family's class is named "module:Class" and
imported when a model is built.
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import Callable, Optional

from sae.config import (PAPER_LAYERS, LayerSpec, ModelConfig, Preset,
                        get_preset, layer_name)


@dataclasses.dataclass(frozen=True)
class Family:
  """One model family.

  Attributes:
    name: as config.json and ``--family`` spell it.
    model: "module:Class" of its model class.
    help: one line, for ``--family``'s help.
    description: what results files and reports call its model.
    metrics: the distortions it has presets for.
    table: preset name ("paper", "tiny") -> its layer table (kinds, steps
      and rates included); None: the paper's tables of each metric
      (sae.config.get_preset).
    base_trains_every_layer: the base trains with the specs of the layers
      above (their steps and lambdas), as the nested base learns the latent
      for every layer's step.
    shared_width: a nested enhancement layer has the base's conv_filters
      (it starts from the synthesis below it; a conditional layer has its
      own width).
  """

  name: str
  model: str
  help: str
  description: str
  metrics: tuple = ("mse", "ms-ssim")
  table: Optional[Callable[[str], tuple]] = None
  base_trains_every_layer: bool = False
  shared_width: bool = False

  def preset(self, name: str = "paper", metric: str = "mse") -> Preset:
    """The named preset ("paper" or "tiny") of this family for ``metric``.

    Raises:
      ValueError: an unknown preset or metric, or one the family lacks.
    """
    preset = get_preset(name, metric)  # refuses other names and metrics
    if metric not in self.metrics:
      raise ValueError(f"the {self.name} family has no {metric} preset "
                       f"({', '.join(self.metrics)} only)")
    if self.table is None:
      return preset
    return dataclasses.replace(preset, layers=self.table(name))

  @property
  def kinds(self) -> tuple:
    """The kind of each layer (LayerSpec.kind), base first."""
    return tuple(s.kind for s in self.preset("paper", self.metrics[0]).layers)

  def model_class(self):
    module, name = self.model.split(":")
    return getattr(importlib.import_module(module), name)


# The nested family (sae.models.nested): one latent every layer refines, at
# steps 3x apart, so each layer sends one trit per element.  The base
# trains the latent for every step at once with the layers' lambdas (the
# faithful model's); each enhancement layer then trains a synthesis of its
# own for its step.  Width: 64 filters, 128 latent channels (one
# synthesis decodes any prefix, so it may cost what the cascade's four do;
# docs/models.md, "How the nested family was chosen").
NESTED_STEPS = (27.0, 9.0, 3.0, 1.0)
# The base at 5e-4: at 1e-3 its loss blew up twice in the first 3,500
# steps (PSNR to 2-4 dB, docs/models.md).  An enhancement
# layer fine-tunes a copy of the synthesis below it: at 1e-4, as its probe.
NESTED_LAYERS: tuple[LayerSpec, ...] = tuple(
    LayerSpec(64, 128, spec.lmbda, spec.paper_lambda,
              learning_rate=5e-4 if k == 0 else 1e-4,
              kind="meanscale" if k == 0 else "nested", step=step)
    for k, (spec, step) in enumerate(zip(PAPER_LAYERS, NESTED_STEPS)))


def nested_table(preset: str) -> tuple:
  """The nested family's layers; "tiny": 8 filters, 16 latent channels."""
  if preset == "paper":
    return NESTED_LAYERS
  return tuple(dataclasses.replace(s, conv_filters=8, latent_channels=16)
               for s in NESTED_LAYERS)


# SAE-2 (sae.models.sae2): the nested layers of one wide latent (tapered
# transforms: 48, 96, 192 filters, 320 latent channels), the base trained
# single-rate at the top layer's lambda, 0.05 (CompressAI's 0.0483 gives its
# M = 320 hyperprior about 0.94 bpp on Kodak), with Adam at 2e-4 (5e-4
# diverged with plain kernels, docs/sae2.md); the layers' lambdas below the
# top weigh the prefixes in the joint phase.
SAE2_LAYERS: tuple[LayerSpec, ...] = tuple(
    dataclasses.replace(spec, conv_filters=192, latent_channels=320,
                        lmbda=0.05 if k == len(NESTED_LAYERS) - 1 else spec.lmbda,
                        learning_rate=2e-4 if k == 0 else 1e-4,
                        transforms="tapered")
    for k, spec in enumerate(NESTED_LAYERS))


def sae2_table(preset: str) -> tuple:
  """SAE-2's layers; "tiny": 12 filters (3, 6, 12), 16 latent channels."""
  if preset == "paper":
    return SAE2_LAYERS
  return tuple(dataclasses.replace(s, conv_filters=12, latent_channels=16)
               for s in SAE2_LAYERS)


# The conditional family (sae.models.conditional): the nested family's
# base, el1 and el2, and a conditional top layer with a latent of its own
# (64, 96, 128 filters into 192 channels), its Gaussians predicted from
# the nested latent at el2's step; trained at the nested el3's lambda with
# Adam at 2e-4, as the research run that chose it (docs/sae2.md).
CONDITIONAL_LAYERS: tuple[LayerSpec, ...] = NESTED_LAYERS[:3] + (
    dataclasses.replace(NESTED_LAYERS[3], conv_filters=128,
                        latent_channels=192, learning_rate=2e-4,
                        kind="conditional", step=1.0),)


def conditional_table(preset: str) -> tuple:
  """The conditional family's layers; "tiny": the nested family's tiny
  ladder and a top of 8 filters and 16 latent channels."""
  if preset == "paper":
    return CONDITIONAL_LAYERS
  return nested_table("tiny")[:3] + (dataclasses.replace(
      CONDITIONAL_LAYERS[3], conv_filters=8, latent_channels=16),)


FAMILIES = {family.name: family for family in (
    Family(
        "sae", "sae.models.model:ScalableAutoEncoder",
        help="the paper's cascade: each layer a factorized-prior "
        "auto-encoder of what the layers below left",
        description="SAE (Jia et al. MIPR 2019)"),
    Family(
        "sae-nested", "sae.models.nested:NestedAutoEncoder",
        help="one mean-scale latent that every layer refines in trits, any "
        "number of layers decoded by one synthesis (MSE only)",
        description="SAE+ nested (one mean-scale latent, refined in trits "
        "by every layer)",
        metrics=("mse",), table=nested_table, base_trains_every_layer=True,
        shared_width=True),
    Family(
        "sae2", "sae.models.sae2:WideNestedAutoEncoder",
        help="one wide mean-scale latent (320 channels) trained for the top "
        "layer first, then refined in trits by every layer (MSE only; "
        "in progress, issue #39)",
        description="SAE-2 (one wide latent trained for the top, nested "
        "layers)",
        metrics=("mse",), table=sae2_table, base_trains_every_layer=True,
        shared_width=True),
    Family(
        "sae-conditional", "sae.models.conditional:ConditionalNestedAutoEncoder",
        help="sae-nested's base, el1 and el2, and a top layer with a latent "
        "of its own coded given theirs (MSE only)",
        description="SAE+ conditional (sae-nested's three lower layers and "
        "a conditional top layer)",
        metrics=("mse",), table=conditional_table,
        base_trains_every_layer=True, shared_width=True),
)}


def get(name: str) -> Family:
  """The family called ``name``.

  Raises:
    ValueError: no such family.
  """
  if name not in FAMILIES:
    raise ValueError(f"unknown family {name!r} (one of "
                     f"{', '.join(FAMILIES)})")
  return FAMILIES[name]


def help_text() -> str:
  """``--family``'s help: each family and its line."""
  return "model family: " + "; ".join(
      f"{f.name}, {f.help}" for f in FAMILIES.values())


def checked(config: ModelConfig) -> ModelConfig:
  """``config`` (a folder's config.json) if its family is known and its
  layers are of that family's kinds.

  Raises:
    ValueError: an unknown family or layer kind.
  """
  family = get(config.family)
  for i, (s, kind) in enumerate(zip(config.layers, family.kinds)):
    if s.kind != kind:
      raise ValueError(f"{layer_name(i)} is a {s.kind!r} layer; the "
                       f"{config.family} family's is {kind!r}")
  return config


def build_model(config: ModelConfig):
  """The model ``config`` describes (its family's class, untrained)."""
  return get(config.family).model_class()(config.layers, config.metric)


def training_config(config: ModelConfig, preset_layers) -> ModelConfig:
  """The layers a model needs to train the top layer of ``config``: those,
  except for a base that trains with the layers above
  (base_trains_every_layer), which takes theirs from the preset's table."""
  if get(config.family).base_trains_every_layer and len(config.layers) == 1:
    return with_layers_above(config, preset_layers)
  return config


def with_layers_above(config: ModelConfig, preset_layers) -> ModelConfig:
  """``config``'s layers, then the preset's above them."""
  return ModelConfig(config.layers + tuple(preset_layers[len(config.layers):]),
                     config.metric, config.preset, config.family)
