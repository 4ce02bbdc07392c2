"""sae.train.train_folder.resolve_config: which layer table a run may train where."""

import pytest

from sae import checkpoints
from sae.cli import cli
from sae.train import train_folder
from sae.errors import InputError


def _config(folder, k, *options):
  args = cli.train_parser(k).parse_args(
      ["--preset", "tiny", "--checkpoint-dir", str(folder), *options])
  return train_folder.resolve_config(args, k)


def test_a_layer_takes_its_own_width_and_the_next_keeps_it(tiny_weights,
                                                            tmp_path):
  fork = tmp_path / "fork"
  checkpoints.copy_layers(tiny_weights, fork, 2)
  config = _config(fork, 2, "--conv-filters", "12")
  assert [s.conv_filters for s in config.layers] == [8, 8, 12]
  assert config.layers[2].latent_channels == 16  # the table's
  # Once el2 is trained (config.json records it), el3 keeps its width.
  checkpoints.write_config(fork, config)
  checkpoints.copy_files(checkpoints.layer_dir(tiny_weights, 2),
                         checkpoints.layer_dir(fork, 2), checkpoints.LAYER_FILES)
  assert [s.conv_filters for s in _config(fork, 3).layers] == [8, 8, 12, 8]


def test_resuming_with_another_width_is_refused(tiny_weights, tmp_path):
  import shutil
  folder = shutil.copytree(tiny_weights, tmp_path / "w")
  shutil.rmtree(checkpoints.layer_dir(folder, 3) / "train", ignore_errors=True)
  with pytest.raises(InputError, match="--conv-filters"):
    _config(folder, 3, "--conv-filters", "12", "--from-weights")
  assert _config(folder, 3, "--conv-filters", "8",
                 "--from-weights").layers[3].conv_filters == 8


def test_a_lower_layer_of_other_latent_channels_is_refused(tiny_weights,
                                                          tmp_path):
  fork = tmp_path / "fork"
  checkpoints.copy_layers(tiny_weights, fork, 1)
  with pytest.raises(InputError, match="base in .* has 8 latent channels; preset 'paper' has 48"):
    train_folder.resolve_config(cli.train_parser(1).parse_args(
        ["--checkpoint-dir", str(fork)]), 1)


def test_the_option_is_refused_below_one():
  with pytest.raises(SystemExit) as exit_info:
    cli.train_parser(1).parse_args(["--conv-filters", "0"])
  assert exit_info.value.code == 2
