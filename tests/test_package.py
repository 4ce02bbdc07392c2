"""Importing sae turns TensorFlow's oneDNN kernels on unless the user said no."""

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_ON = "oneDNN custom operations are on"


def _tensorflow_log(args, setting=None):
  """stderr of ``python ARGS``, with TensorFlow logging its choice at import."""
  env = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
  if setting is not None:
    env["TF_ENABLE_ONEDNN_OPTS"] = setting
  env["TF_CPP_MIN_LOG_LEVEL"] = "0"
  return subprocess.run([sys.executable, *args], env=env, check=True,
                        capture_output=True, text=True, cwd=ROOT).stderr


@pytest.mark.parametrize("setting, enabled", [(None, True), ("0", False)])
def test_onednn_default_respects_the_environment(setting, enabled):
  log = _tensorflow_log(["-c", "import sae, tensorflow"], setting)
  assert (_ON in log) == enabled


@pytest.mark.parametrize("script", ["benchmarks/train_speed.py",
                                    "benchmarks/reference_speed.py"])
def test_benchmarks_get_the_default(script):
  # A script that imports tensorflow before sae runs without oneDNN
  # (0.87 against 0.58 s per el2 training step here).
  assert _ON in _tensorflow_log([script, "--help"])
