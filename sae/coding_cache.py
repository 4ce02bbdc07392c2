"""A weights folder's traced coding functions, stored on disk.

A one-shot ``python -m sae compress`` / ``decompress`` used to spend about
2 s above the TensorFlow import building the model's layers, restoring
them, preparing the coding tables and tracing ``compress`` or
``decompress``: the same work every time, for the same weights.  Here it is
done once.  The command that first uses a function stores it, frozen (every
variable a constant, the tables included) as a FunctionDef library; the
next commands register it with TensorFlow's runtime and call it, without a
Keras layer or a trace (docs/performance.md has the figures).

An entry is keyed by everything that shapes the functions: the weights
folder's files (config, weights, tables), the package's model and entropy
sources, and the TensorFlow and tensorflow-compression versions.  Any
change makes a new key, so an entry is never stale; a damaged or unreadable
entry is ignored and rewritten.  The functions compute what the model's
functions compute, op for op (tests/test_coding_cache.py compares streams
and pixels).

The cache lives in ``$SAE_CACHE_DIR``, else ``$XDG_CACHE_HOME/sae``, else
``~/.cache/sae``; ``SAE_CACHE_DIR=`` (empty) turns it off.
"""

import gc
import hashlib
import importlib.metadata
import json
import os
import pathlib
from typing import Optional

import tensorflow as tf
from tensorflow.core.framework import function_pb2
from tensorflow.python.eager import context, execute
from tensorflow.python.framework import convert_to_constants

from sae import checkpoints
from sae.config import layer_name
from sae.fileio import atomic_write
from sae.models.transforms import BAND_LATENT_PIXELS, fits_one_band

# The coding functions of sae.models.base.LayeredModel that can be stored.
FUNCTIONS = ("compress", "compress_one_band", "decompress",
             "decompress_one_band")
META_FILE = "meta.json"
_PACKAGE = pathlib.Path(__file__).resolve().parent
# The code traced into the functions.
_SOURCES = ("config.py", "models", "entropy")

_TFC_VERSION = importlib.metadata.version("tensorflow-compression")
_registered = set()  # function names added to this process's runtime


def cache_root() -> Optional[pathlib.Path]:
  """Where entries are stored, or None when the cache is off."""
  value = os.environ.get("SAE_CACHE_DIR")
  if value is not None:
    return pathlib.Path(value) if value else None
  base = os.environ.get("XDG_CACHE_HOME") or pathlib.Path.home() / ".cache"
  return pathlib.Path(base) / "sae"


def _weights_files(root, num_layers):
  files = [pathlib.Path(root) / checkpoints.CONFIG_FILE]
  for k in range(num_layers):
    prefix = pathlib.Path(checkpoints.weights_prefix(root, k))
    files += sorted(prefix.parent.glob(prefix.name + ".*"))
    files.append(checkpoints.tables_path(root, k))
  return files


def _sources():
  for name in _SOURCES:
    path = _PACKAGE / name
    yield from sorted(path.glob("*.py")) if path.is_dir() else [path]


def entry_key(root, num_layers: int,
              band_latent_pixels: int = BAND_LATENT_PIXELS) -> str:
  """The key of the functions of a folder's first ``num_layers`` layers,
  coding in bands of ``band_latent_pixels``."""
  h = hashlib.sha256()
  h.update(f"tf {tf.__version__} tfc {_TFC_VERSION} layers {num_layers} "
           f"bands {band_latent_pixels}\n".encode())
  for path in list(_sources()) + _weights_files(root, num_layers):
    h.update(path.name.encode() + b"\0")
    h.update(path.read_bytes() if path.is_file() else b"(absent)")
  return h.hexdigest()[:32]


class StoredCoder:
  """What sae.codec codes with, from a cache entry: the model's
  ``num_layers``, ``weights_ids``, ``fits_one_band`` and the four coding
  functions, each returning what the model's returns.  Functions are
  registered with the runtime when first called."""

  def __init__(self, folder: pathlib.Path, meta: dict):
    self._folder = folder
    self._meta = meta
    self.num_layers = int(meta["num_layers"])
    self.band_latent_pixels = int(meta["band_latent_pixels"])
    for name in FUNCTIONS:
      setattr(self, name, _StoredFunction(folder / f"{name}.pb",
                                          meta["functions"].get(name),
                                          name.startswith("compress")))

  def weights_ids(self) -> list:
    return [bytes.fromhex(i) for i in self._meta["weights_ids"]]

  def fits_one_band(self, height: int, width: int) -> bool:
    return fits_one_band(height, width, self.band_latent_pixels)

  def has(self, name: str) -> bool:
    return getattr(self, name).stored


class _StoredFunction:

  def __init__(self, path, signature, returns_tuple):
    self._path = path
    self._signature = signature  # {"name": ..., "outputs": n} or None
    self._returns_tuple = returns_tuple
    self._library = None
    self.stored = signature is not None and path.is_file()

  def library(self):
    """The parsed FunctionDefLibrary (raises on a damaged file)."""
    if self._library is None:
      self._library = function_pb2.FunctionDefLibrary.FromString(
          self._path.read_bytes())
    return self._library

  def __call__(self, *args):
    name = self._signature["name"]
    ctx = context.context()
    if name not in _registered:
      library = self.library()
      ctx.ensure_initialized()
      for fdef in library.function:
        if not ctx.has_function(fdef.signature.name):
          ctx.add_function_def(fdef)
      _registered.add(name)
    outputs = execute.execute(name.encode(), self._signature["outputs"],
                              [tf.convert_to_tensor(a) for a in args], (),
                              ctx)
    return tuple(outputs) if self._returns_tuple else outputs[0]


def lookup(root, num_layers: int, name: str,
           band_latent_pixels: int = BAND_LATENT_PIXELS
           ) -> Optional[StoredCoder]:
  """The stored coder of the folder's first ``num_layers`` layers when its
  function ``name`` is stored, else None."""
  base = cache_root()
  if base is None:
    return None
  folder = base / "coding" / entry_key(root, num_layers, band_latent_pixels)
  try:
    meta = json.loads((folder / META_FILE).read_text())
    coder = StoredCoder(folder, meta)
    if not coder.has(name) or coder.num_layers != num_layers:
      return None
    # Parsed here, so that a damaged entry falls back to the model
    # instead of failing the command.
    getattr(coder, name).library()
  except Exception:  # noqa: BLE001  whatever the damage, the model codes
    return None
  return coder


def store(model, root, name: str) -> bool:
  """Stores ``model``'s function ``name`` (model loaded from ``root`` with
  all its layers, prepared for coding).  False when the cache is off or
  not writable; a command goes on without it."""
  base = cache_root()
  if base is None:
    return False
  folder = base / "coding" / entry_key(root, model.num_layers,
                                      model.band_latent_pixels)
  try:
    library, signature = _frozen(getattr(model, name), name)
    folder.mkdir(parents=True, exist_ok=True)
    meta_path = folder / META_FILE
    try:
      meta = json.loads(meta_path.read_text())
    except (OSError, ValueError):
      meta = {"num_layers": model.num_layers,
              "layers": [layer_name(k) for k in range(model.num_layers)],
              "weights_ids": [i.hex() for i in model.weights_ids()],
              "band_latent_pixels": model.band_latent_pixels,
              "functions": {}}
    atomic_write(folder / f"{name}.pb", library.SerializeToString())
    meta["functions"][name] = signature
    atomic_write(meta_path, (json.dumps(meta, indent=1) + "\n").encode())
  except OSError:
    return False
  return True


def _frozen(function, label):
  """(FunctionDefLibrary, signature) of a tf.function with an input
  signature, its variables made constants.  Its functions are renamed
  sae_``label``_<digest of their contents>_N: two libraries registered in
  one runtime never share a name unless they are the same."""
  concrete = function.get_concrete_function()
  frozen = convert_to_constants.convert_variables_to_constants_v2(concrete)
  fdefs = [frozen.function_def] + list(
      frozen.graph.as_graph_def().library.function)
  digest = hashlib.sha256()
  for fdef in fdefs:
    digest.update(fdef.SerializeToString(deterministic=True))
  prefix = f"sae_{label}_{digest.hexdigest()[:16]}"
  names = {f.signature.name: f"{prefix}_{i}" for i, f in enumerate(fdefs)}
  library = function_pb2.FunctionDefLibrary()
  for fdef in fdefs:
    fdef = _renamed(fdef, names)
    library.function.append(fdef)
  signature = {"name": names[frozen.function_def.signature.name],
               "outputs": len(frozen.function_def.signature.output_arg)}
  # The frozen graph's functions hold reference cycles: collected now, not
  # at the interpreter's exit, when TensorFlow's modules are gone and their
  # finalizers print errors.
  del concrete, frozen
  gc.collect()
  return library, signature


def _renamed(fdef, names):
  fdef = function_pb2.FunctionDef.FromString(fdef.SerializeToString())
  fdef.signature.name = names[fdef.signature.name]
  for node in fdef.node_def:
    if node.op in names:  # a function called as an op
      node.op = names[node.op]
    for attr in node.attr.values():
      if attr.HasField("func") and attr.func.name in names:
        attr.func.name = names[attr.func.name]
      for func in attr.list.func:
        if func.name in names:
          func.name = names[func.name]
  return fdef
