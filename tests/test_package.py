"""Importing sae turns TensorFlow's oneDNN kernels on unless the user said no."""

import os
import subprocess
import sys

import pytest

# tensorflow first, as the benchmarks do: the variable must still count.
_PROBE = """
import tensorflow as tf
import sae
from tensorflow.python.util import _pywrap_util_port
tf.constant(1.0) + 1.0
print(_pywrap_util_port.IsMklEnabled())
"""


@pytest.mark.parametrize("setting, enabled", [(None, "True"), ("0", "False")])
def test_onednn_default_respects_the_environment(setting, enabled):
  env = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
  if setting is not None:
    env["TF_ENABLE_ONEDNN_OPTS"] = setting
  env["TF_CPP_MIN_LOG_LEVEL"] = "3"
  out = subprocess.run([sys.executable, "-c", _PROBE], env=env, check=True,
                       capture_output=True, text=True,
                       cwd=os.path.dirname(os.path.dirname(__file__)))
  assert out.stdout.split()[-1] == enabled
