"""The registry of families (sae.models.families): the model a folder builds, its
preset, the check of its config.json, and --family."""

import json
import pathlib

import pytest

from sae import checkpoints
from sae.cli import cli
from sae.models import families
from sae.config import DEFAULT_FAMILY, ModelConfig, get_preset
from sae.errors import InputError
from sae.models.model import ScalableAutoEncoder
from sae.models.nested import NestedAutoEncoder

ROOT = pathlib.Path(__file__).resolve().parent.parent


def config_of(family, num_layers):
  layers = families.get(family).preset("tiny").layers[:num_layers]
  return ModelConfig(layers, preset="tiny", family=family)


def test_each_family_builds_its_model():
  assert type(families.build_model(config_of("sae", 2))) is ScalableAutoEncoder
  assert type(families.build_model(config_of("sae-nested", 2))) is (
      NestedAutoEncoder)


def test_only_the_nested_base_trains_with_the_layers_above():
  preset = families.get("sae-nested").preset("tiny").layers
  base = families.training_config(config_of("sae-nested", 1), preset)
  assert [s.step for s in base.layers] == [27.0, 9.0, 3.0, 1.0]
  el1 = config_of("sae-nested", 2)
  assert families.training_config(el1, preset) == el1
  cascade = config_of("sae", 1)
  assert families.training_config(cascade, get_preset("tiny").layers) == (
      cascade)


def test_each_family_has_its_presets_and_layer_kinds():
  assert DEFAULT_FAMILY in families.FAMILIES
  assert families.get("sae").preset("paper", "ms-ssim") == get_preset(
      "paper", "ms-ssim")
  assert families.get("sae").kinds == ("factorized",) * 5
  assert families.get("sae-nested").kinds == ("meanscale",) + ("nested",) * 3
  tiny = families.get("sae-nested").preset("tiny")
  assert {(s.conv_filters, s.latent_channels) for s in tiny.layers} == {
      (8, 16)}
  with pytest.raises(ValueError, match="no ms-ssim preset"):
    families.get("sae-nested").preset("paper", "ms-ssim")
  with pytest.raises(ValueError, match="preset"):
    families.get("sae-nested").preset("huge")
  with pytest.raises(ValueError, match="unknown family 'sae-plus'"):
    families.get("sae-plus")


def _folder(tmp_path, config_dict):
  (tmp_path / checkpoints.CONFIG_FILE).write_text(json.dumps(config_dict))
  return tmp_path


def test_a_config_json_of_an_unknown_family_or_kind_is_refused(tmp_path):
  config = json.loads(config_of("sae-nested", 2).to_json())
  config["family"] = "sae-plus-hyper"
  with pytest.raises(InputError, match="unknown family 'sae-plus-hyper'"):
    checkpoints.read_config(_folder(tmp_path, config))
  config["family"] = "sae"
  with pytest.raises(InputError, match="base is a 'meanscale' layer; the sae "
                     "family's is 'factorized'"):
    checkpoints.read_config(_folder(tmp_path, config))


def test_the_shipped_config_files_read_as_they_are():
  for name, family in (("mse", "sae"), ("ms-ssim", "sae"),
                       ("sae-nested", "sae-nested")):
    folder = ROOT / "weights" / name
    config = checkpoints.read_config(folder)
    assert config.family == family and len(config.layers) == 4
    assert ("family" in json.loads((folder / "config.json").read_text())) == (
        family != "sae")


def test_family_choices_and_help_come_from_the_registry():
  action = next(a for a in cli.train_parser(0)._actions
                if a.dest == "family")
  assert action.choices == tuple(families.FAMILIES)
  text = " ".join(cli.train_parser(0).format_help().split())
  for family in families.FAMILIES.values():
    assert f"{family.name}, {' '.join(family.help.split())}" in text
  assert "sae-plus" not in text


def test_a_new_family_is_one_entry(monkeypatch):
  toy = families.Family("toy", "sae.models.model:ScalableAutoEncoder",
                        help="a toy cascade", description="Toy")
  monkeypatch.setitem(families.FAMILIES, "toy", toy)
  assert cli.train_parser(1).parse_args(["--family", "toy"]).family == "toy"
  model = families.build_model(config_of("toy", 2))
  assert type(model) is ScalableAutoEncoder and model.num_layers == 2
  assert families.checked(config_of("toy", 2)).family == "toy"
