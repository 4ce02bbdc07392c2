import pytest

from sae.config import ModelConfig, PAPER_LAYERS, get_preset, layer_name


def test_paper_table_matches_design():
  assert [(s.conv_filters, s.latent_channels, s.lmbda) for s in PAPER_LAYERS] == [
      (48, 48, 0.001), (48, 48, 0.003), (48, 96, 0.01), (48, 144, 0.03),
      (48, 192, 0.1)]
  # tfc lambda = 3 / paper lambda (docs/models.md).
  for s in PAPER_LAYERS:
    assert s.lmbda == pytest.approx(3 / s.paper_lambda)


def test_layer_names():
  assert [layer_name(k) for k in range(4)] == ["base", "el1", "el2", "el3"]
  with pytest.raises(ValueError):
    layer_name(7)


def test_config_round_trip():
  config = ModelConfig(get_preset("tiny").layers, "mse", "tiny")
  assert ModelConfig.from_json(config.to_json()) == config
  assert config.prefix(2).layers == config.layers[:2]


def test_bad_preset_and_metric():
  with pytest.raises(ValueError, match="preset"):
    get_preset("huge")
  with pytest.raises(ValueError, match="metric"):
    get_preset("paper", "psnr")


def test_model_names():
  from sae.config import model_name
  assert model_name("sae", "mse") == "sae-mse"
  assert model_name("sae", "ms-ssim") == "sae-ms-ssim"
  assert model_name("sae-nested", "mse") == "sae-nested"
  assert model_name("sae-nested", "ms-ssim") == "sae-nested-ms-ssim"
