"""Running ``python -m sae`` from tests, in-process or as a real process."""

import contextlib
import io
import os
import pathlib
import subprocess
import sys

import numpy as np
from PIL import Image

from sae.cli import commands

ROOT = pathlib.Path(__file__).resolve().parent.parent


def cli(*argv):
  """Runs ``python -m sae`` in-process -> (status, stdout, stderr)."""
  out, err = io.StringIO(), io.StringIO()
  with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
    try:
      status = commands.main([str(a) for a in argv])
    except SystemExit as e:  # argparse
      status = e.code
  return status, out.getvalue(), err.getvalue()


def cli_process(*argv, timeout=300, blocked=()):
  """Runs the real ``python -m sae`` -> CompletedProcess (text), in which
  importing the modules ``blocked`` fails (those of an extra not
  installed)."""
  env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
  start = ["-m", "sae"]
  if blocked:
    start = ["-c", f"import runpy, sys\nfor m in {tuple(blocked)!r}: "
             "sys.modules[m] = None\nsys.argv = ['sae'] + sys.argv[1:]\n"
             "runpy.run_module('sae', run_name='__main__')\n"]
  return subprocess.run([sys.executable, *start, *map(str, argv)],
                        cwd=ROOT, env=env, capture_output=True, text=True,
                        timeout=timeout)


def write_png(path, array):
  Image.fromarray(array).save(path)
  return path


def read_png(path):
  with Image.open(path) as img:
    return np.asarray(img)
