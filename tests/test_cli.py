"""The shared argument parsing: help text and the one-line error contract."""

import os
import pathlib
import re
import subprocess
import sys

import pytest

from sae.eval import bdrate, bench, plots
from sae.cli import cli

PARSERS = {
    "train_el1": lambda: cli.train_parser(1),
    "test_el3": lambda: cli.test_parser(3),
    "bdrate": bdrate.parser,
    "bench": bench.parser,
    "plots": plots.parser,
}


def _help(name):
  # Joined into one line: argparse wraps at the terminal width.
  return " ".join(PARSERS[name]().format_help().split())


@pytest.mark.parametrize("name", sorted(PARSERS))
def test_help_shows_no_empty_flag_or_doubled_defaults(name):
  text = _help(name)
  for noise in ("(default: None)", "(default: True)", "(default: False)"):
    assert noise not in text
  # An option whose help already names its default gets no second one.
  assert not re.search(r"default[^()]*\) \(default:", text)


def test_help_keeps_the_defaults_that_say_something():
  text = _help("train_el1")
  assert "(default: checkpoints/mse)" in text
  assert "(default: 40000)" in text and "(default: paper)" in text
  assert "global batch size (default: the preset's, 8 for paper) --" in text
  assert "(default: shipped weights/sae-conditional)" in _help("test_el3")


def test_bad_argument_is_one_line_and_status_2(capsys):
  with pytest.raises(SystemExit) as stop:
    cli.train_parser(0).parse_args(["--steps", "0"])
  assert stop.value.code == 2
  err = capsys.readouterr().err
  assert err.count("\n") == 1 and err.startswith("error: argument --steps")


def test_training_help_names_the_layers_it_builds_on():
  assert "Train the base layer of SAE" in _help_of(cli.train_parser(0))
  el2 = _help_of(cli.train_parser(2))
  assert "enhancement layer el2" in el2 and "on top of base, el1" in el2
  assert "0..k-1" not in el2


def _help_of(parser):
  return " ".join(parser.format_help().split())


def test_a_closed_pipe_stops_quietly():
  # `python -m sae.eval.report | head -1`: no "error: [Errno 32] Broken pipe".
  # A pipe whose reader is gone before the first write fails every time.
  read, write = os.pipe()
  os.close(read)
  try:
    run = subprocess.run([sys.executable, "-m", "sae.eval.report"], stdout=write,
                         stderr=subprocess.PIPE, text=True, timeout=120,
                         cwd=pathlib.Path(__file__).resolve().parents[1])
  finally:
    os.close(write)
  assert run.returncode == 1 and run.stderr == ""
