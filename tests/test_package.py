"""The package: importing sae turns TensorFlow's oneDNN kernels on unless
the user said no; the optional parts are extras, which the core never
imports and whose commands say how to install them."""

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



# The modules of pyproject.toml's extras (serve, beam, plot, bench).
OPTIONAL = ("starlette", "uvicorn", "apache_beam", "matplotlib", "imagecodecs")


def _run_without(modules, code, *argv):
  """``python -c CODE ARGV`` in which importing ``modules`` fails."""
  script = (f"import sys\nfor m in {tuple(modules)!r}: sys.modules[m] = None\n"
            + code)
  return subprocess.run([sys.executable, "-c", script, *map(str, argv)],
                        cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_the_extras_are_declared_and_requirements_install_them():
  tomllib = pytest.importorskip("tomllib")
  with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
    project = tomllib.load(f)["project"]
  extras = project["optional-dependencies"]
  core = " ".join(project["dependencies"])
  for extra, names in (("serve", {"starlette", "uvicorn"}),
                       ("beam", {"apache-beam"}), ("plot", {"matplotlib"}),
                       ("bench", {"imagecodecs"})):
    assert {pin.split("=")[0].split(">")[0] for pin in extras[extra]} == names
    assert not any(name in core for name in names)
  with open(os.path.join(ROOT, "requirements.txt")) as f:
    required = f.read().split()
  for pins in [project["dependencies"], *extras.values()]:
    assert set(pins) <= set(required)


def test_the_command_line_imports_no_extra():
  # compress and decompress run without them: tests/test_commands.py,
  # test_real_process_round_trip_matches_in_process.
  done = _run_without((), "import sys, sae, sae.cli.commands\n"
                      f"print([m for m in {OPTIONAL!r} if m in sys.modules])")
  assert (done.returncode, done.stdout.strip()) == (0, "[]"), done.stderr


@pytest.mark.parametrize("command, missing, extra", [
    ("from sae.cli import commands; sys.exit(commands.main(['serve', '.']))",
     "starlette and uvicorn", "serve"),
    ("from sae.eval import plots; sys.exit(plots.main(['--figs-dir', sys.argv[1]]))",
     "matplotlib", "plot"),
])
def test_a_command_without_its_extra_says_how_to_install_it(
    command, missing, extra, tmp_path):
  done = _run_without(OPTIONAL, command, tmp_path)
  assert done.returncode == 2
  assert done.stderr.strip().splitlines() == [
      f"error: {missing} not installed: pip install -e '.[{extra}]' in the "
      "clone (requirements.txt installs every extra)"]
  assert not list(tmp_path.iterdir())
