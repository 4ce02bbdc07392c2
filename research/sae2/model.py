"""SAE-2's transforms (issue #39): one wide latent with a mean-scale
hyperprior, trained for the top layer first.

    x ──analysis (48, 96, 192 filters, /16)──► y (320 channels)
    y ──hyper_analysis──► z (128 channels, /4) ~ factorized prior
    ẑ ──hyper_synthesis (ReLU)──► (mean, scale index) of each element of y
    ŷ = round(y - mean) + mean ──synthesis (192, 96, 48)──► x̂

The analysis widens as the resolution halves, so the wide latent costs
about twice the nested model's step (docs/sae2.md has the step costs).  The
hyper-synthesis uses ReLUs only, so that the decoder can evaluate it in
exact integer arithmetic (portable streams, issue #38).  Scales are indexes
on the project's Gaussian grid (64 levels, 0.11 to 256).

This module lives outside the package until the family ships; its
checkpoints hold the five objects by these names, so that the family's
module in ``sae/`` restores them as they are.
"""

import numpy as np
import tensorflow as tf
import tensorflow_compression as tfc

SCALES_MIN, SCALES_MAX, SCALES_LEVELS = 0.11, 256.0, 64
_LOG_SCALE_STEP = (np.log(SCALES_MAX) - np.log(SCALES_MIN)) / (SCALES_LEVELS - 1)

ANALYSIS_FILTERS = (48, 96, 192)
LATENT_CHANNELS = 320
HYPER_FILTERS = 192
HYPER_CHANNELS = 128


def scale_fn(index):
  return tf.exp(np.log(SCALES_MIN) + _LOG_SCALE_STEP * index)


# Kernels are plain variables.  tensorflow-compression's default, kernels
# parameterized in the Fourier domain ("rdft"), costs an inverse FFT of every
# kernel and its gradient at each step: on these 2 cores the 192->320 layer's
# forward and backward took 392 ms against 42 ms with a plain kernel, and a
# whole 128-pixel step 1.7 s (docs/sae2.md).  Runs up to step 2,183 used
# "rdft"; research/sae2/convert_rdft.py carries their weights over.
KERNEL_PARAMETER = "variable"


def _conv(filters, kernel, name, down=1, up=1, activation=None, bias=True):
  return tfc.SignalConv2D(
      filters, (kernel, kernel), name=name, corr=up == 1, strides_down=down,
      strides_up=up, padding="same_zeros", use_bias=bias,
      activation=activation,
      kernel_parameter=KERNEL_PARAMETER)


def analysis_transform():
  layers = [tf.keras.layers.Rescaling(1 / 255)]
  for i, filters in enumerate(ANALYSIS_FILTERS):
    layers.append(_conv(filters, 5, f"layer_{i}", down=2,
                        activation=tfc.GDN(name=f"gdn_{i}")))
  layers.append(_conv(LATENT_CHANNELS, 5, "layer_3", down=2, bias=False))
  return tf.keras.Sequential(layers, name="analysis")


def synthesis_transform():
  layers = []
  for i, filters in enumerate(reversed(ANALYSIS_FILTERS)):
    layers.append(_conv(filters, 5, f"layer_{i}", up=2,
                        activation=tfc.GDN(name=f"igdn_{i}", inverse=True)))
  layers.append(_conv(3, 5, "layer_3", up=2))
  layers.append(tf.keras.layers.Rescaling(255))
  return tf.keras.Sequential(layers, name="synthesis")


def hyper_analysis_transform():
  return tf.keras.Sequential([
      _conv(HYPER_FILTERS, 3, "layer_0", activation=tf.nn.relu),
      _conv(HYPER_FILTERS, 5, "layer_1", down=2, activation=tf.nn.relu),
      _conv(HYPER_CHANNELS, 5, "layer_2", down=2, bias=False),
  ], name="hyper_analysis")


def hyper_synthesis_transform():
  return tf.keras.Sequential([
      _conv(HYPER_FILTERS, 5, "layer_0", up=2, activation=tf.nn.relu),
      _conv(HYPER_FILTERS, 5, "layer_1", up=2, activation=tf.nn.relu),
      _conv(2 * LATENT_CHANNELS, 3, "layer_2"),
  ], name="hyper_synthesis")


def gaussian_model(coding_rank=3, **kwargs):
  return tfc.LocationScaleIndexedEntropyModel(
      tfc.NoisyNormal, SCALES_LEVELS, scale_fn, coding_rank=coding_rank,
      **kwargs)


class WideModel(tf.Module):
  """The single-rate top model (the nested phase cuts lower rates from it)."""

  def __init__(self):
    super().__init__(name="sae2")
    self.analysis = analysis_transform()
    self.synthesis = synthesis_transform()
    self.hyper_analysis = hyper_analysis_transform()
    self.hyper_synthesis = hyper_synthesis_transform()
    self.prior = tfc.NoisyDeepFactorized(batch_shape=[HYPER_CHANNELS])
    self.analysis.build((None, None, None, 3))
    self.synthesis.build((None, None, None, LATENT_CHANNELS))
    self.hyper_analysis.build((None, None, None, LATENT_CHANNELS))
    self.hyper_synthesis.build((None, None, None, HYPER_CHANNELS))

  def checkpoint_objects(self):
    return dict(analysis=self.analysis, synthesis=self.synthesis,
                hyper_analysis=self.hyper_analysis,
                hyper_synthesis=self.hyper_synthesis, prior=self.prior)

  def entropy_parameters(self, z_hat, latent_hw):
    side = self.hyper_synthesis(z_hat)[:, :latent_hw[0], :latent_hw[1]]
    mean, logits = tf.split(side, 2, axis=-1)
    return mean, tf.clip_by_value(logits, 0.0, SCALES_LEVELS - 1.0)

  def latent(self, x):
    """The unquantized latent (the floor's input)."""
    return self.analysis(x)

  def __call__(self, x, training):
    """(bpp per example, mse per example, x̂): rates under noise when
    training; the synthesis always sees ŷ rounded around the means (its
    gradient passed straight through), as the decoder has it."""
    y = self.analysis(x)
    z = self.hyper_analysis(y)
    z_model = tfc.ContinuousBatchedEntropyModel(
        self.prior, coding_rank=3, compression=False)
    z_hat, z_bits = z_model(z, training=training)
    hw = tf.shape(y)[1:3]
    mean, index = self.entropy_parameters(z_hat, hw)
    if training:
      _, y_bits = gaussian_model()(y, index, loc=mean, training=True)
    else:
      _, y_bits = gaussian_model()(y, tf.round(index), loc=mean, training=False)
    y_hat = y + tf.stop_gradient(tf.round(y - mean) + mean - y)
    x_hat = self.synthesis(y_hat)
    pixels = tf.cast(tf.shape(x)[1] * tf.shape(x)[2], tf.float32)
    bpp = (y_bits + z_bits) / pixels
    mse = tf.reduce_mean(tf.math.squared_difference(x, x_hat), axis=(1, 2, 3))
    return bpp, mse, x_hat

  def floor(self, x):
    """MSE of the synthesis fed the unquantized latent."""
    x_hat = self.synthesis(self.analysis(x))
    return tf.reduce_mean(tf.math.squared_difference(x, x_hat), axis=(1, 2, 3))
