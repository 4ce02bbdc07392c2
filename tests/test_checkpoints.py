"""sae.checkpoints.copy_layers and tools/fork_weights.py, on the tiny weights."""

import importlib.util
import pathlib

import pytest

from sae import checkpoints
from sae.errors import InputError

TOOL = pathlib.Path(__file__).resolve().parent.parent / "tools" / "fork_weights.py"


def _fork_tool():
  spec = importlib.util.spec_from_file_location("fork_weights", TOOL)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def test_copy_keeps_weights_and_records_without_training_state(
    tiny_weights, tmp_path):
  dst = tmp_path / "fork"
  checkpoints.copy_layers(tiny_weights, dst, 2)
  config = checkpoints.read_config(dst)
  assert len(config.layers) == 2 and config.family == "sae"
  assert checkpoints.available_layers(dst) == 2
  for k in range(2):
    for name in ("weights.index", "state.json"):
      assert ((checkpoints.layer_dir(dst, k) / name).read_bytes() ==
              (checkpoints.layer_dir(tiny_weights, k) / name).read_bytes())
  assert not list(dst.rglob("train"))
  with pytest.raises(InputError, match="exists"):
    checkpoints.copy_layers(tiny_weights, dst, 1)


def test_the_tool_forks_the_layers_asked_for_and_refuses_more(
    tiny_weights, tmp_path, capsys):
  fork = _fork_tool()
  assert fork.main([str(tiny_weights), str(tmp_path / "same"), "--layers",
                    "3"]) == 0
  assert checkpoints.available_layers(tmp_path / "same") == 3
  assert checkpoints.read_config(tmp_path / "same").family == "sae"
  assert fork.main([str(tiny_weights), str(tmp_path / "x"), "--layers",
                    "9"]) == 2
  err = capsys.readouterr().err.strip().splitlines()
  assert len(err) == 1 and "asked for 9" in err[0]
  assert not (tmp_path / "x").exists()
  assert not list(tmp_path.glob(".*"))  # nothing half-built is left


def test_a_fork_keeps_the_record_of_a_joint_fine_tuning_of_its_layers(
    tiny_weights, tmp_path):
  import shutil
  tuned = shutil.copytree(tiny_weights, tmp_path / "tuned")
  joint = tuned / checkpoints.JOINT_FOLDER
  checkpoints.write_record(joint, {"source": "x", "steps": 5, "finished": True,
                                   "layer_weights": [1, 1, 1, 1]})
  (joint / "val.csv").write_text("step,layers,loss\n5,1,0.5\n")
  (joint / "train").mkdir()
  (joint / "train" / "ckpt-5.index").write_bytes(b"state")
  checkpoints.copy_layers(tuned, tmp_path / "fork", 4)
  copied = tmp_path / "fork" / checkpoints.JOINT_FOLDER
  assert checkpoints.read_record(copied)["steps"] == 5
  assert (copied / "val.csv").read_bytes() == (joint / "val.csv").read_bytes()
  assert not (copied / "train").exists()
  # Not for fewer layers than the phase tuned, nor for a new joint phase,
  # nor while the phase is unfinished: the record would not hold.
  checkpoints.copy_layers(tuned, tmp_path / "part", 2)
  checkpoints.copy_layers(tuned, tmp_path / "again", 4, joint_record=False)
  checkpoints.write_record(joint, {"steps": 3, "layer_weights": [1, 1, 1, 1]})
  checkpoints.copy_layers(tuned, tmp_path / "unfinished", 4)
  for name in ("part", "again", "unfinished"):
    assert not (tmp_path / name / checkpoints.JOINT_FOLDER).exists()


def test_a_fork_into_a_family_of_other_layer_kinds_is_refused(
    tiny_weights, tmp_path):
  with pytest.raises(InputError, match="cannot start a sae-conditional"):
    checkpoints.copy_layers(tiny_weights, tmp_path / "fork", 2,
                            family="sae-conditional")
  assert not (tmp_path / "fork").exists()
