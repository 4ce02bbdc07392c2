"""SavedModel export: a working codec without the sae package.

The SavedModel holds the model's own ``compress`` / ``decompress``
tf.functions (range coding tables included, so the decoder never rebuilds
them) and what a stand-alone decoder needs to verify a stream before
decoding it:

    compress(image uint8 (H, W, 3), num_layers int32 ())
        -> (strings (L,), image_shape (2,))      strings past num_layers empty
    decompress(strings (K,) string, image_shape (2,) int32) -> uint8 (H, W, 3)
    num_layers             int32 variable: L, the layers of the weights
    layer_weights_ids      string variable (L,): hex weights id per layer, as
                           in every stream chunk (sae.stream.bitstream)
    stream_version         int32 variable: the stream format it was made for

plus serving signatures ``compress``, ``decompress`` and ``info`` with named
outputs.  Loading needs ``import tensorflow_compression`` first (it
registers the range coding ops).  See tools/decode_with_savedmodel.py.
"""

import logging
import os
import pathlib
import shutil
import tempfile

import tensorflow as tf

from sae.stream import bitstream
from sae.errors import InputError

SAVED_MODEL_FILE = "saved_model.pb"


class ExportedCodec(tf.Module):
  """What gets saved: the model plus its stream identity."""

  def __init__(self, model):
    super().__init__(name="sae_codec")
    self.model = model
    self.num_layers = tf.Variable(model.num_layers, dtype=tf.int32,
                                  trainable=False, name="num_layers")
    self.layer_weights_ids = tf.Variable(
        [i.hex() for i in model.weights_ids()], dtype=tf.string,
        trainable=False, name="layer_weights_ids")
    self.stream_version = tf.Variable(bitstream.VERSION, dtype=tf.int32,
                                      trainable=False, name="stream_version")
    self.compress = model.compress
    self.decompress = model.decompress

  @tf.function(input_signature=[])
  def info(self):
    return {"num_layers": self.num_layers.read_value(),
            "layer_weights_ids": self.layer_weights_ids.read_value(),
            "stream_version": self.stream_version.read_value()}

  @tf.function(input_signature=[
      tf.TensorSpec((None, None, 3), tf.uint8, name="image"),
      tf.TensorSpec((), tf.int32, name="num_layers")])
  def serve_compress(self, image, num_layers):
    strings, shape = self.model.compress(image, num_layers)
    return {"strings": strings, "image_shape": shape}

  @tf.function(input_signature=[
      tf.TensorSpec((None,), tf.string, name="strings"),
      tf.TensorSpec((2,), tf.int32, name="image_shape")])
  def serve_decompress(self, strings, image_shape):
    return {"image": self.model.decompress(strings, image_shape)}


def save(model, directory) -> None:
  """Writes ``model`` (tables built) as a SavedModel folder, atomically.

  The folder is written next to ``directory`` and renamed into place; an
  existing earlier export there is replaced, any other non-empty folder is
  refused.

  Raises:
    InputError: ``directory`` is a file or a non-empty non-SavedModel folder.
  """
  directory = pathlib.Path(directory)
  if directory.exists() and not directory.is_dir():
    raise InputError(f"export target {str(directory)!r} is a file")
  replacing = directory.is_dir() and any(directory.iterdir())
  if replacing and not (directory / SAVED_MODEL_FILE).is_file():
    raise InputError(f"export target {str(directory)!r} is a non-empty folder "
                     "that holds no SavedModel")
  parent = directory.parent
  tmp = pathlib.Path(tempfile.mkdtemp(dir=parent, prefix=f".{directory.name}."))
  umask = os.umask(0)
  os.umask(umask)
  os.chmod(tmp, 0o777 & ~umask)  # mkdtemp's 0700 would survive the rename
  tf_logger = logging.getLogger("tensorflow")
  level = tf_logger.level
  try:
    codec = ExportedCodec(model)
    # Keras warns that the subclassed models have no get_config(): they need
    # none, the SavedModel is loaded as functions, not rebuilt as Keras.
    tf_logger.setLevel(logging.ERROR)
    try:
      tf.saved_model.save(codec, str(tmp), signatures={
          "compress": codec.serve_compress,
          "decompress": codec.serve_decompress, "info": codec.info})
    finally:
      tf_logger.setLevel(level)
    if replacing:
      # rename() cannot replace a non-empty folder: move the old export
      # aside and put it back if the swap fails, so a failure keeps it.
      old = pathlib.Path(tempfile.mkdtemp(dir=parent,
                                          prefix=f".{directory.name}.old."))
      os.replace(directory, old / "export")
      try:
        os.replace(tmp, directory)
      except BaseException:
        os.replace(old / "export", directory)
        raise
      finally:
        shutil.rmtree(old, ignore_errors=True)
    else:
      os.replace(tmp, directory)  # also replaces an empty folder
  except BaseException:
    shutil.rmtree(tmp, ignore_errors=True)
    raise
