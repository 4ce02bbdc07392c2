"""Per-layer, object-based checkpoints and self-describing weight folders.

A weights folder (a training checkpoint directory or the shipped
``weights/mse``) looks like::

    config.json            layer specs (sae.config.ModelConfig)
    base/weights.*         weights-only checkpoint of layer 0
    base/state.json        training record: steps, schedule, time, weights_sha256
    base/train/ckpt-N.*    resumable training state (layer + optimizer)
    el1/...

so evaluation and the CLI need no ``--preset``.  Each layer's identifier is a
hash chained over its own weights and the identifiers below it, so a stream
chunk is refused by any decoder whose layers 0..k differ from the encoder's.
"""

import dataclasses
import io
import json
import pathlib
import shutil
import zipfile

import numpy as np

import tensorflow as tf

from sae.models import families
from sae.config import (DEFAULT_NUM_LAYERS, JOINT_FOLDER, ModelConfig,
                        layer_name)
from sae.errors import InputError
from sae.fileio import atomic_write, write_json
from sae.entropy.layer import LayerCodec

CONFIG_FILE = "config.json"
MANIFEST_FILE = "manifest.json"  # written by ship_weights
# The joint phase's record, without its training state.
JOINT_RECORD_FILES = ("state.json", "log.csv", "val.csv")
# The codec's default (issue #39's rule: every layer above the faithful
# model's curve); weights/mse stays, for the paper.
DEFAULT_WEIGHTS = (pathlib.Path(__file__).resolve().parent.parent / "weights" /
                   "sae-conditional")


def layer_dir(root, k) -> pathlib.Path:
  return pathlib.Path(root) / layer_name(k)


def weights_prefix(root, k) -> str:
  return str(layer_dir(root, k) / "weights")


def has_weights(root, k) -> bool:
  return pathlib.Path(weights_prefix(root, k) + ".index").exists()


def tables_path(root, k) -> pathlib.Path:
  return layer_dir(root, k) / "tables.npz"


def save_tables(codec: LayerCodec, root, k) -> None:
  """Stores the layer's range coding tables (shipped weights carry them)."""
  buf = io.BytesIO()
  np.savez(buf, **codec.coding_tables())
  atomic_write(tables_path(root, k), buf.getvalue())


def read_tables(root, k):
  """Stored tables of layer k, or None (then they are built from the prior).
  The layer's codec checks the keys (LayerCodec.table_keys)."""
  path = tables_path(root, k)
  if not path.is_file():
    return None
  try:
    with np.load(path) as stored:
      return {key: stored[key] for key in stored.files}
  except (OSError, ValueError, KeyError, zipfile.BadZipFile) as e:
    raise InputError(f"{path} is damaged: {e}") from None


def layer_checkpoint(codec: LayerCodec, **extra) -> tf.train.Checkpoint:
  """The objects that make up one layer (plus training state in ``extra``)."""
  return tf.train.Checkpoint(**codec.checkpoint_objects(), **extra)


def save_weights(codec: LayerCodec, root, k) -> None:
  layer_dir(root, k).mkdir(parents=True, exist_ok=True)
  layer_checkpoint(codec).write(weights_prefix(root, k))


def restore_weights(codec: LayerCodec, root, k) -> None:
  if not has_weights(root, k):
    raise InputError(f"{root}: no weights for layer {k} ({layer_name(k)})")
  # Kernels frozen for coding would keep the values read before.
  codec.freeze_transforms(False)
  try:
    status = layer_checkpoint(codec).read(weights_prefix(root, k))
    status.assert_existing_objects_matched().expect_partial()
  except (AssertionError, ValueError, tf.errors.OpError) as e:
    first_line = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    raise InputError(f"{root}: the weights of layer {k} ({layer_name(k)}) do "
                     f"not match its config.json or are damaged: {first_line}"
                     ) from None


def read_config(root) -> ModelConfig:
  path = pathlib.Path(root) / CONFIG_FILE
  if not path.is_file():
    raise InputError(f"{str(root)!r} is not a weights folder (no {CONFIG_FILE})")
  try:
    return families.checked(ModelConfig.from_json(path.read_text()))
  except (ValueError, KeyError, TypeError) as e:
    raise InputError(f"{path} is not a valid layer table: {e}") from None


def write_config(root, config: ModelConfig) -> None:
  pathlib.Path(root).mkdir(parents=True, exist_ok=True)
  atomic_write(pathlib.Path(root) / CONFIG_FILE, (config.to_json() + "\n").encode())


def read_state(root, k) -> dict:
  """The training record of layer ``k`` ({} before its first checkpoint)."""
  return read_record(layer_dir(root, k))


def write_state(root, k, state: dict) -> None:
  write_record(layer_dir(root, k), state)


def read_record(folder) -> dict:
  """A training run's state.json in ``folder`` ({} before its first
  checkpoint): a layer's, or the joint fine-tuning's.

  Raises:
    sae.errors.InputError: the record is not a JSON object.
  """
  path = pathlib.Path(folder) / "state.json"
  if not path.is_file():
    return {}
  try:
    state = json.loads(path.read_text())
  except (ValueError, UnicodeDecodeError) as e:
    raise InputError(f"{path} is damaged ({e}); restore it from version "
                     "control or remove the layer's folder to retrain it") from None
  if not isinstance(state, dict):
    raise InputError(f"{path} is damaged (not a JSON object)")
  return state


def write_record(folder, state: dict) -> None:
  pathlib.Path(folder).mkdir(parents=True, exist_ok=True)
  write_json(pathlib.Path(folder) / "state.json", state, sort_keys=True)


# What a layer's folder holds besides its training state (train/).
LAYER_FILES = ("weights.index", "weights.data-00000-of-00001", "state.json",
               "log.csv", "val.csv")


def copy_layers(src, dst, num_layers=None, before_rename=None,
                joint_record=True, family=None):
  """Copies layers 0..num_layers-1 of ``src`` (default: all with weights)
  into a new folder ``dst``: weights, state.json and curves, not the
  training state (their own training is over), and the record of a
  finished joint fine-tuning of exactly those layers.  Built beside
  ``dst``, then renamed, so an interrupted copy leaves nothing.

  Args:
    before_rename: called with the folder being built, to add to it.
    joint_record: False for a new joint phase, which writes its own.
    family: the copy's family, when another one continues on these
      layers (its layers must be of the same kinds: sae-nested's three
      lower layers start an sae-conditional model).

  Raises:
    InputError: ``dst`` exists, ``src`` has fewer layers, or ``family``
      has other layers there.
  """
  src, dst = pathlib.Path(src), pathlib.Path(dst)
  if dst.exists():
    raise InputError(f"{dst} exists; name a new folder")
  config = read_config(src)
  have = available_layers(src)
  num_layers = have if num_layers is None else num_layers
  if not 1 <= num_layers <= have:
    raise InputError(f"{src} has {have} trained layers, asked for {num_layers}")
  config = config.prefix(num_layers)
  if family is not None and family != config.family:
    try:
      config = families.checked(dataclasses.replace(config, family=family))
    except ValueError as e:
      raise InputError(f"{src}'s layers cannot start a {family} model: "
                       f"{e}") from None
  building = dst.parent / f".{dst.name}.building"
  shutil.rmtree(building, ignore_errors=True)  # from a killed copy
  try:
    write_config(building, config)
    for k in range(num_layers):
      copy_files(layer_dir(src, k), layer_dir(building, k), LAYER_FILES)
    if joint_record and _joint_record_describes(src, num_layers):
      copy_files(src / JOINT_FOLDER, building / JOINT_FOLDER,
                 JOINT_RECORD_FILES)
    if before_rename is not None:
      before_rename(building)
  except BaseException:
    shutil.rmtree(building, ignore_errors=True)
    raise
  building.rename(dst)


def _joint_record_describes(src, num_layers) -> bool:
  """Whether src's joint fine-tuning record holds for a copy of its first
  num_layers layers: a finished phase over exactly those layers (its
  losses and validations are of those layers)."""
  record = read_record(pathlib.Path(src) / JOINT_FOLDER)
  return (bool(record.get("finished")) and
          len(record.get("layer_weights", ())) == num_layers)


def is_shipped(root) -> bool:
  """A folder written by ship_weights (manifest and coding tables)."""
  return (pathlib.Path(root) / MANIFEST_FILE).is_file()


def finished_layers(root) -> int:
  """Number of consecutive layers 0..n-1 whose training finished."""
  have, n = available_layers(root), 0
  while n < have and read_state(root, n).get("finished"):
    n += 1
  return n


def copy_files(src_dir, dst_dir, names) -> None:
  """Copies those of ``names`` that ``src_dir`` holds into ``dst_dir``."""
  for name in names:
    if (pathlib.Path(src_dir) / name).is_file():
      pathlib.Path(dst_dir).mkdir(parents=True, exist_ok=True)
      shutil.copy(pathlib.Path(src_dir) / name, pathlib.Path(dst_dir) / name)


def available_layers(root) -> int:
  """Number of consecutive layers 0..n-1 with weights in ``root``."""
  config = read_config(root)
  n = 0
  while n < len(config.layers) and has_weights(root, n):
    n += 1
  return n


def load_model(root=None, num_layers=None, prepare=True):
  """Builds the model a weights folder describes, ready for coding.

  Args:
    root: weights folder or training checkpoint directory (default: shipped).
    num_layers: layers to load (default: all with weights).
    prepare: build the range coding tables (the weights ids cover them).

  Returns:
    The family's model (sae.models.families.build_model), tables built, weights
    restored.
  """
  root = pathlib.Path(root) if root is not None else DEFAULT_WEIGHTS
  config = read_config(root)
  have = available_layers(root)
  if have == 0:
    raise InputError(f"{str(root)!r} holds no trained layer")
  if num_layers is None:
    num_layers = have
  if num_layers > have:
    raise InputError(
        f"{str(root)!r} holds {have} trained layer(s) "
        f"({', '.join(layer_name(k) for k in range(have))}); {num_layers} "
        f"needed: train {layer_name(have)} first")
  if num_layers < 1:
    raise InputError(f"--layers must be at least 1, got {num_layers}")
  model = families.build_model(config.prefix(num_layers))
  for k, codec in enumerate(model.codecs):
    restore_weights(codec, root, k)
  if prepare:
    try:
      model.prepare_for_coding([read_tables(root, k) for k in range(num_layers)])
    except ValueError as e:  # tables of another layer kind, or damaged
      raise InputError(f"{root}: {e}") from None
  return model


# One model per weights folder and process: tests and notebooks call main()
# many times, and building the coding tables is the slow part of loading.
_MODELS = {}


def cached_model(root, num_layers=None):
  """The model of ``root`` with at least ``num_layers`` layers (default all).

  Like load_model, but cached per folder and process (a stream's
  weights ids are compared with the model's where it is decoded,
  sae.codec.decode_stream).

  Raises:
    InputError: no such layers.
  """
  root = pathlib.Path(root)
  have = available_layers(root)
  if have == 0:
    raise InputError(f"{str(root)!r} holds no trained layer")
  needed = have if num_layers is None else num_layers
  if needed > have:
    raise InputError(f"{needed} layers needed, but {str(root)!r} has weights "
                     f"for {have}")
  key = str(root.resolve())
  stamp = _folder_stamp(root, have)
  cached = _MODELS.get(key)
  if cached and cached[0] == stamp and cached[1].num_layers >= needed:
    return cached[1]
  model = load_model(root, needed)
  _MODELS[key] = (stamp, model)
  return model


def _folder_stamp(root, num_layers) -> tuple:
  """Changes whenever training rewrites the folder's config, weights or
  coding tables."""
  files = [root / CONFIG_FILE] + [
      pathlib.Path(weights_prefix(root, k) + ".index")
      for k in range(num_layers)]
  files += [tables_path(root, k) for k in range(num_layers)]
  return tuple((f.stat().st_mtime_ns, f.stat().st_size) if f.exists() else None
               for f in files)


def ship_weights(src, dst, num_layers=None, note=None) -> dict:
  """Copies the weights of layers 0..n-1 from a checkpoint directory (by
  default the layers that finished training).

  Writes ``dst/config.json``, ``dst/<layer>/weights.*``, ``state.json`` and
  ``log.csv``, ``val.csv`` (no optimizer state), and ``dst/manifest.json``
  (with ``note``, free text such as how the lambdas were chosen); returns
  the manifest.  The folder is built beside ``dst`` and then replaces it, so
  a failure (say, a damaged checkpoint of an upper layer) leaves the weights
  shipped before untouched rather than a mix of old and new layers.
  """
  src, dst = pathlib.Path(src), pathlib.Path(dst)
  dst.parent.mkdir(parents=True, exist_ok=True)
  building = dst.parent / f".{dst.name}.shipping"
  replaced = dst.parent / f".{dst.name}.replaced"
  for leftover in (building, replaced):  # from a run that was killed
    shutil.rmtree(leftover, ignore_errors=True)
  try:
    manifest = _ship_into(src, building, num_layers, note)
  except BaseException:
    shutil.rmtree(building, ignore_errors=True)
    raise
  if dst.exists():
    dst.rename(replaced)
  building.rename(dst)
  shutil.rmtree(replaced, ignore_errors=True)
  return manifest


def _ship_into(src, dst, num_layers, note) -> dict:
  """ship_weights' work, into a new folder ``dst``."""
  config = read_config(src)
  have = available_layers(src)
  if num_layers is None:  # the finished layers: never one still training
    num_layers = finished_layers(src)
    if num_layers == 0:
      raise InputError(f"{src} has no finished layer; pass --layers N to "
                       "ship unfinished ones")
  if not 1 <= num_layers <= have:
    raise InputError(f"{src} has {have} trained layers, asked for {num_layers}")
  config = config.prefix(num_layers)
  write_config(dst, config)
  model = families.build_model(config)
  layers = []
  for k, codec in enumerate(model.codecs):
    restore_weights(codec, src, k)
    save_weights(codec, dst, k)
    try:
      codec.prepare_for_coding(read_tables(src, k))
    except ValueError as e:  # tables of another layer kind, or damaged
      raise InputError(f"{src}: {e}") from None
    codec.make_portable()  # what ships decodes on every machine (sae.entropy.exact)
    save_tables(codec, dst, k)
    state = read_state(src, k)
    state.pop("weights_id", None)  # older versions' id; the manifest has it
    write_state(dst, k, state)
    copy_files(layer_dir(src, k), layer_dir(dst, k), ("log.csv", "val.csv"))
    layers.append(dict(name=layer_name(k), spec=config.layers[k].to_dict(),
                       **{key: state.get(key) for key in (
                           "steps", "finished", "batch_size", "patch_size",
                           "schedule", "corpus", "train_seconds", "last",
                           "validation", "lower_layer_sha256_before",
                           "lower_layer_sha256_after")}))
  ids = model.weights_ids()
  for entry, wid, codec in zip(layers, ids, model.codecs):
    entry["weights_sha256"] = codec.digest()  # what the layer above froze
    entry["weights_id"] = wid.hex()           # what streams carry
  unfinished = [e["name"] for e in layers if not e["finished"]]
  joint = read_record(pathlib.Path(src) / JOINT_FOLDER)
  if joint.get("steps"):  # fine-tuned after the layer-wise phase
    if not joint.get("finished"):
      unfinished.append("joint fine-tuning")
    copy_files(pathlib.Path(src) / JOINT_FOLDER, dst / JOINT_FOLDER,
               JOINT_RECORD_FILES)
  missing = [layer_name(k) for k in range(num_layers, DEFAULT_NUM_LAYERS)]
  status = "complete" if not unfinished and not missing else "interim: " + "; ".join(
      part for part in (
          unfinished and f"{', '.join(unfinished)} still training",
          missing and f"{', '.join(missing)} not shipped yet") if part)
  manifest = {"family": config.family, "metric": config.metric,
              "preset": config.preset,
              "weights_id": ids[-1].hex(), "status": status,
              "train_seconds": sum(e["train_seconds"] or 0 for e in layers)
              + joint.get("train_seconds", 0.0),
              "layers": layers}
  if joint.get("steps"):
    manifest["joint_fine_tuning"] = {key: joint.get(key) for key in (
        "source", "steps", "finished", "layer_weights", "schedule",
        "batch_size", "patch_size", "corpus", "train_seconds", "validation")}
  if note:  # e.g. how the lambdas were chosen
    manifest["note"] = note
  write_json(dst / MANIFEST_FILE, manifest)
  return manifest
