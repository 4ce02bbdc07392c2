"""Analysis and synthesis transforms of Balle et al. 2017, sized by a LayerSpec.

Unlike bls2017 these transforms do not rescale by 255: layers above the base
code residuals, which are signed, so every layer works on the 0..255 scale
minus what lower layers reconstructed and scales internally.
"""

import tensorflow as tf
import tensorflow_compression as tfc

from sae.config import LayerSpec

# 9x9 /4, 5x5 /2, 5x5 /2.
TOTAL_STRIDE = 16


class AnalysisTransform(tf.keras.Sequential):
  """x (0..255 scale, any sign) -> latent y with ``latent_channels`` channels."""

  def __init__(self, spec: LayerSpec, name: str = "analysis"):
    super().__init__(name=name)
    self.add(tf.keras.layers.Rescaling(1 / 255))
    self.add(tfc.SignalConv2D(
        spec.conv_filters, (9, 9), name="layer_0", corr=True, strides_down=4,
        padding="same_zeros", use_bias=True, activation=tfc.GDN(name="gdn_0")))
    self.add(tfc.SignalConv2D(
        spec.conv_filters, (5, 5), name="layer_1", corr=True, strides_down=2,
        padding="same_zeros", use_bias=True, activation=tfc.GDN(name="gdn_1")))
    self.add(tfc.SignalConv2D(
        spec.latent_channels, (5, 5), name="layer_2", corr=True,
        strides_down=2, padding="same_zeros", use_bias=False, activation=None))


class SynthesisTransform(tf.keras.Sequential):
  """Latent y -> reconstruction on the 0..255 scale (unclipped)."""

  def __init__(self, spec: LayerSpec, name: str = "synthesis"):
    super().__init__(name=name)
    self.add(tfc.SignalConv2D(
        spec.conv_filters, (5, 5), name="layer_0", corr=False, strides_up=2,
        padding="same_zeros", use_bias=True,
        activation=tfc.GDN(name="igdn_0", inverse=True)))
    self.add(tfc.SignalConv2D(
        spec.conv_filters, (5, 5), name="layer_1", corr=False, strides_up=2,
        padding="same_zeros", use_bias=True,
        activation=tfc.GDN(name="igdn_1", inverse=True)))
    self.add(tfc.SignalConv2D(
        3, (9, 9), name="layer_2", corr=False, strides_up=4,
        padding="same_zeros", use_bias=True, activation=None))
    self.add(tf.keras.layers.Rescaling(255))


def padded_size(size):
  """Rounds a height or width (int or int tensor) up to the total stride."""
  return (size + TOTAL_STRIDE - 1) // TOTAL_STRIDE * TOTAL_STRIDE


def pad_to_stride(x: tf.Tensor) -> tf.Tensor:
  """Edge-pads a (B, H, W, C) batch to a multiple of the total stride.

  Replicating the border (rather than zeros) keeps the padded area cheap to
  code and works for any size, including 1x1, where reflection cannot.
  """
  shape = tf.shape(x)
  rows = tf.minimum(tf.range(padded_size(shape[1])), shape[1] - 1)
  cols = tf.minimum(tf.range(padded_size(shape[2])), shape[2] - 1)
  return tf.gather(tf.gather(x, rows, axis=1), cols, axis=2)


def latent_shape(image_shape):
  """(H, W) of the image -> (h, w) of every layer's latent."""
  return tf.stack([padded_size(image_shape[0]) // TOTAL_STRIDE,
                   padded_size(image_shape[1]) // TOTAL_STRIDE])
