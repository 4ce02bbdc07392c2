"""A conditional top layer for weights/sae-nested (issue #39's fallback).

SAE-2's single-rate wide model missed its gate (docs/sae2.md); this probe
replaces the nested model's top layer (el3: one more trit per element of
the same latent, bound by that latent's floor) by a layer that codes what
the three lower layers miss, with a latent of its own:

    x, x̂₂ ──analysis (64, 96, 128 filters, /16)──► w (192 channels)
    ŷ₃ (the nested latent at step 3, which the decoder has)
        ──context (ReLU)──► (mean, scale index) of each element of w
    x̂ = x̂₂ + refine(x̂₂, synthesis(ŵ, ŷ₃))

x̂₂ and ŷ₃ are the three-layer decode of the frozen nested model.  The
layer needs no hyper-latent: its Gaussians are predicted from ŷ₃ alone,
so every bit it sends is the top layer's.  The residual path's last
convolution starts near zero, so training starts at about the three-layer
image.
"""

import tensorflow as tf
import tensorflow_compression as tfc

# The package's Gaussian grid (the caller puts the repository on sys.path).
from sae.entropy.meanscale import SCALES_LEVELS, scale_fn

ANALYSIS_FILTERS = (64, 96, 128)
LATENT_CHANNELS = 192
CONTEXT_FILTERS = 192
FUSION_FILTERS = 32
NESTED_CHANNELS = 128
# The analysis' output is scaled by this fixed gain.  Fed 0..1 pixels, an
# initialized analysis gives |w| of about 0.007, far below one quantization
# step: under the training noise the synthesis sees noise alone, learns to
# ignore it, and w shrinks on (runs without the gain stayed at
# |w| ~ 0.007 and 0.000 bpp at rounding).  With it |w| starts near 0.7.
LATENT_GAIN = 100.0


def gaussian_model(coding_rank=3):
  return tfc.LocationScaleIndexedEntropyModel(
      tfc.NoisyNormal, SCALES_LEVELS, scale_fn, coding_rank=coding_rank)


def _conv(filters, kernel, name, down=1, up=1, activation=None, bias=True,
          small=False):
  # ``small``: the residual's last convolution starts near zero (an output
  # of about one grey level), not at zero, so the distortion's gradient
  # reaches the new latent from the first step.
  init = (tf.keras.initializers.VarianceScaling(1e-4) if small
          else "variance_scaling")
  return tfc.SignalConv2D(
      filters, (kernel, kernel), name=name, corr=up == 1, strides_down=down,
      strides_up=up, padding="same_zeros", use_bias=bias,
      activation=activation, kernel_parameter="variable",
      kernel_initializer=init)


def analysis_transform():
  layers = [tf.keras.layers.Rescaling(1 / 255)]
  for i, filters in enumerate(ANALYSIS_FILTERS):
    layers.append(_conv(filters, 5, f"layer_{i}", down=2,
                        activation=tfc.GDN(name=f"gdn_{i}")))
  layers.append(_conv(LATENT_CHANNELS, 5, "layer_3", down=2, bias=False))
  layers.append(tf.keras.layers.Rescaling(LATENT_GAIN))
  return tf.keras.Sequential(layers, name="analysis")


def context_transform():
  return tf.keras.Sequential([
      _conv(CONTEXT_FILTERS, 3, "layer_0", activation=tf.nn.relu),
      _conv(CONTEXT_FILTERS, 3, "layer_1", activation=tf.nn.relu),
      _conv(2 * LATENT_CHANNELS, 3, "layer_2"),
  ], name="context")


def synthesis_transform():
  layers = []
  for i, filters in enumerate(reversed(ANALYSIS_FILTERS)):
    layers.append(_conv(filters, 5, f"layer_{i}", up=2,
                        activation=tfc.GDN(name=f"igdn_{i}", inverse=True)))
  layers.append(_conv(FUSION_FILTERS, 5, "layer_3", up=2))
  return tf.keras.Sequential(layers, name="synthesis")


def refine_transform():
  """(synthesis features, x̂₂ / 255) -> the residual on the 0..255 scale."""
  return tf.keras.Sequential([
      _conv(FUSION_FILTERS, 3, "layer_0", activation=tf.nn.relu),
      _conv(3, 3, "layer_1", small=True),
      tf.keras.layers.Rescaling(255),
  ], name="refine")


class ConditionalTop(tf.Module):
  """The top layer; ``lower`` is (x̂₂, ŷ₃) from the frozen nested model."""

  def __init__(self):
    super().__init__(name="nested_top")
    self.analysis = analysis_transform()
    self.context = context_transform()
    self.synthesis = synthesis_transform()
    self.refine = refine_transform()
    self.analysis.build((None, None, None, 6))
    self.context.build((None, None, None, NESTED_CHANNELS))
    self.synthesis.build((None, None, None, LATENT_CHANNELS + NESTED_CHANNELS))
    self.refine.build((None, None, None, FUSION_FILTERS + 3))

  def checkpoint_objects(self):
    return dict(analysis=self.analysis, context=self.context,
                synthesis=self.synthesis, refine=self.refine)

  def entropy_parameters(self, y3):
    mean, index = tf.split(self.context(y3), 2, axis=-1)
    return mean, index

  def __call__(self, x, x2, y3, training, latent_rate_gradient=1.0):
    """(bits per example of the layer, x̂, its MSE per example).  Rates under
    noise when training (tfc bounds the indexes with gradients that point
    back into the grid); the synthesis sees w rounded around its means
    (training: w plus uniform noise).  The rate's gradient into
    w (not its value) is scaled by ``latent_rate_gradient``: at 0 the rate
    trains only the Gaussians' context, and w learns from distortion alone."""
    w = self.analysis(tf.concat([x, x2], -1))
    mean, index = self.entropy_parameters(y3)
    if training:
      w_rate = tf.stop_gradient(w) + latent_rate_gradient * (
          w - tf.stop_gradient(w))
      _, bits = gaussian_model()(w_rate, index, loc=mean, training=True)
    else:
      index = tf.clip_by_value(tf.round(index), 0.0, SCALES_LEVELS - 1.0)
      _, bits = gaussian_model()(w, index, loc=mean, training=False)
    if training:
      # The synthesis sees w plus uniform noise, as the rate does: a
      # continuous path from the first step, while w is still far smaller
      # than a quantization step (rounding it would give the synthesis the
      # means alone and the analysis no signal to grow by).
      w_hat = w + tf.random.uniform(tf.shape(w), -0.5, 0.5)
    else:
      w_hat = tf.round(w - mean) + mean
    features = self.synthesis(tf.concat([w_hat, y3], -1))
    x_hat = x2 + self.refine(tf.concat([features, x2 / 255], -1))
    mse = tf.reduce_mean(tf.math.squared_difference(x, x_hat), axis=(1, 2, 3))
    return bits, x_hat, mse


def load_top(weights) -> tuple:
  """(ConditionalTop, step) from train.py's run folder, a weights folder of
  the package's sae-conditional family (its el3, the same network; see
  to_folder.py), or an npz of export.py's former format."""
  import pathlib
  weights = pathlib.Path(weights)
  model = ConditionalTop()
  if (weights / "config.json").is_file():
    from sae import checkpoints
    top = checkpoints.load_model(weights, prepare=False).top
    mine = [v for obj in model.checkpoint_objects().values()
            for v in obj.weights]
    for theirs, v in zip(top.weight_variables, mine, strict=True):
      v.assign(theirs)
    return model, int(top.steps_trained)
  if weights.suffix == ".npz":
    from train_top import load_committed  # research/sae2 on sys.path
    return model, load_committed(model, weights)
  step = tf.Variable(0, dtype=tf.int64)
  tf.train.Checkpoint(step=step, **model.checkpoint_objects()).read(
      tf.train.latest_checkpoint(weights / "train")).expect_partial()
  return model, int(step)
