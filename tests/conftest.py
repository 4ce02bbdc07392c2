"""Shared fixtures of the codec command-line tests.

``tiny_weights`` is a weights folder made by the real training entry points
(``cli.train_main``, what ``train_base.py`` .. ``train_el3.py`` run) on a few
synthetic images.  Building it is slow mostly because every run rebuilds the
range coding tables of the layers below, so the folder is kept in pytest's
cache, keyed by the sources that shape it; delete ``.pytest_cache`` or run
``pytest --cache-clear`` to rebuild.
"""

import fcntl
import hashlib
import math
import os
import pathlib
import shutil

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import sae  # noqa: E402,F401  before tensorflow: the oneDNN default users get

ROOT = pathlib.Path(__file__).resolve().parent.parent
TINY_NUM_LAYERS = 4


def _sources_key() -> str:
  h = hashlib.sha256()
  # Everything that shapes the weights; the CLI modules under test and the
  # layer server (sae/serve/) do not.
  sources = [p for p in sorted(ROOT.glob("sae/**/*.py"))
             if p.name not in ("commands.py", "export.py", "__main__.py",
                               "folders.py", "beam.py", "progressive.py",
                               "codec.py", "rangecode.py", "pillow_plugin.py")
             and p.parent.name != "serve"]
  for path in sources + [pathlib.Path(__file__)]:
    h.update(path.name.encode())
    h.update(path.read_bytes())
  return h.hexdigest()[:16]


def _train_tiny(root: pathlib.Path, corpus: pathlib.Path) -> None:
  from sae.cli import cli
  from tiny import write_corpus
  write_corpus(corpus, [(80, 80)] * 3)
  for k in range(TINY_NUM_LAYERS):
    status = cli.train_main(k, [
        "--preset", "tiny", "--corpus", str(corpus), "--checkpoint-dir",
        str(root), "--steps", "2", "--no-progress", "--seed", "1"])
    assert status == 0, f"training layer {k} failed"


@pytest.fixture(scope="session", autouse=True)
def coding_cache_dir(tmp_path_factory) -> pathlib.Path:
  """The stored coding functions of this run's commands (sae.coding_cache),
  in and out of process: never the user's cache."""
  folder = tmp_path_factory.mktemp("coding-cache")
  os.environ["SAE_CACHE_DIR"] = str(folder)
  return folder


@pytest.fixture(scope="session")
def tiny_weights(request, tmp_path_factory) -> pathlib.Path:
  """A weights folder with 4 tiny layers, each trained for 2 steps."""
  if getattr(request.config, "cache", None) is None:  # -p no:cacheprovider
    folder = tmp_path_factory.mktemp("tiny_weights") / "w"
    _train_tiny(folder, tmp_path_factory.mktemp("corpus"))
    return folder
  cache = request.config.cache.mkdir("sae_tiny_weights")
  folder = cache / _sources_key()
  # pytest-xdist's workers share the cache: one builds, the others wait.
  with open(cache.parent / "sae_tiny_weights.lock", "w") as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)
    if not (folder / "complete").is_file():
      shutil.rmtree(folder, ignore_errors=True)
      build = tmp_path_factory.mktemp("tiny_weights") / "w"
      _train_tiny(build, tmp_path_factory.mktemp("corpus"))
      for old in cache.iterdir():  # keep one version only
        shutil.rmtree(old, ignore_errors=True)
      shutil.copytree(build, folder)
      (folder / "complete").write_text("")
  return folder


@pytest.fixture(scope="session")
def tiny_model(tiny_weights):
  """The tiny weights loaded once, tables built; shared with in-process CLI
  calls through the model cache of sae.checkpoints."""
  from sae import checkpoints
  return checkpoints.cached_model(tiny_weights)


@pytest.fixture
def decoded_symbols(monkeypatch) -> list:
  """The symbol count of every range decode run eagerly while the test
  runs: what a test bounding the decoder's work asserts on, instead of wall
  time (each decode call of tfc's op decodes exactly that many)."""
  from sae.entropy import rangecode
  counts = []
  decode = rangecode.gen_ops.entropy_decode_index

  def counting(handle, index, shape, *args, **kwargs):
    counts.append(math.prod(int(n) for n in shape))
    return decode(handle, index, shape, *args, **kwargs)

  monkeypatch.setattr(rangecode.gen_ops, "entropy_decode_index", counting)
  return counts
