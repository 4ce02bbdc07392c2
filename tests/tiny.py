"""Small shared builders for tests: the tiny preset on 64x64 inputs."""

import dataclasses
import functools
import pathlib
import shutil

import numpy as np
from PIL import Image

from sae.models import families
from sae.config import ModelConfig, get_preset
from sae.models.model import ScalableAutoEncoder


def tiny_specs(num_layers=4):
  return get_preset("tiny").layers[:num_layers]


@functools.lru_cache(maxsize=None)
def tiny_model(num_layers=4, seed=0):
  """A tiny cascade with coding tables (weights as initialized)."""
  import tensorflow as tf
  tf.keras.utils.set_random_seed(seed)
  model = ScalableAutoEncoder(tiny_specs(num_layers))
  model.prepare_for_coding()
  return model


def nested_config(scale=0.01, family="sae-nested", decoder=None):
  """The tiny preset of a nested family with its steps times ``scale``: an
  untrained latent is small, and at the preset's steps (27 .. 1) the lower
  layers would send no trit at all.  ``decoder``: the conditional top's
  (LayerSpec.decoder), if not the preset's."""
  layers = tuple(dataclasses.replace(s, step=s.step * scale)
                 for s in families.get(family).preset("tiny").layers)
  if decoder is not None:
    layers = tuple(dataclasses.replace(s, decoder=decoder)
                   if s.kind == "conditional" else s for s in layers)
  return ModelConfig(layers, preset="tiny", family=family)


@functools.lru_cache(maxsize=None)
def nested_model(seed=0, family="sae-nested", decoder=None):
  """A tiny model of a nested family (nested_config) with coding tables."""
  import tensorflow as tf
  tf.keras.utils.set_random_seed(seed)
  model = families.build_model(nested_config(family=family, decoder=decoder))
  model.prepare_for_coding()
  return model


def random_image(height, width, seed=0):
  """A smooth-ish random uint8 image (noise is unrealistically costly)."""
  rng = np.random.default_rng(seed)
  small = rng.integers(0, 256, (max(1, height // 8) + 1, max(1, width // 8) + 1, 3))
  img = Image.fromarray(small.astype(np.uint8)).resize((width, height),
                                                       Image.BILINEAR)
  noise = rng.integers(-8, 9, (height, width, 3))
  return np.clip(np.asarray(img, np.int32) + noise, 0, 255).astype(np.uint8)


def write_corpus(folder, sizes, seed=0):
  folder = pathlib.Path(folder)
  folder.mkdir(parents=True, exist_ok=True)
  for i, (h, w) in enumerate(sizes):
    Image.fromarray(random_image(h, w, seed + i)).save(folder / f"img{i}.png")
  return folder


TRAINING_SIZES = [(64, 64), (80, 96), (72, 64)]


def corpus_and_weights(root, tiny_weights, name):
  """A small training corpus and a copy of the tiny trained weights under
  ``root``, for tests that train on, resume or damage them."""
  root = pathlib.Path(root)
  corpus = write_corpus(root / "corpus", TRAINING_SIZES)
  weights = root / name
  shutil.copytree(tiny_weights, weights)
  return corpus, weights
