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

# The network is the package's (sae.entropy.conditional); the caller puts
# the repository on sys.path.
from sae.entropy import conditional
from sae.entropy.meanscale import SCALES_LEVELS, scale_fn
from sae.models import families

SPEC = families.get("sae-conditional").preset("paper").layers[3]
NESTED_CHANNELS = families.get("sae-nested").preset("paper").layers[0].latent_channels


def gaussian_model(coding_rank=3):
  return tfc.LocationScaleIndexedEntropyModel(
      tfc.NoisyNormal, SCALES_LEVELS, scale_fn, coding_rank=coding_rank)


class ConditionalTop(tf.Module):
  """The top layer; ``lower`` is (x̂₂, ŷ₃) from the frozen nested model."""

  def __init__(self, decoder="transposed"):
    super().__init__(name="nested_top")
    synthesis, refine, refine_channels, self.refine_factor = (
        conditional.DECODERS[decoder])
    self.decoder = decoder
    self.analysis = conditional.analysis_transform(SPEC)
    self.context = conditional.context_transform(SPEC)
    self.synthesis = synthesis(SPEC)
    self.refine = refine()
    self.analysis.build((None, None, None, 6))
    self.context.build((None, None, None, NESTED_CHANNELS))
    self.synthesis.build(
        (None, None, None, SPEC.latent_channels + NESTED_CHANNELS))
    self.refine.build((None, None, None, refine_channels))

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
    below = x2 / 255
    if self.refine_factor > 1:  # the sub-pixel refinement reads 2x2 blocks
      below = tf.nn.space_to_depth(below, self.refine_factor)
    x_hat = x2 + self.refine(tf.concat([features, below], -1))
    mse = tf.reduce_mean(tf.math.squared_difference(x, x_hat), axis=(1, 2, 3))
    return bits, x_hat, mse


def load_top(weights, decoder="transposed") -> tuple:
  """(ConditionalTop, step) from train.py's run folder, a weights folder of
  the package's sae-conditional family (its el3, the same network; see
  to_folder.py), or an npz of export.py's former format.  ``decoder``: a
  run folder's or npz's (a weights folder names its own)."""
  import pathlib
  weights = pathlib.Path(weights)
  if (weights / "config.json").is_file():
    from sae import checkpoints
    top = checkpoints.load_model(weights, prepare=False).top
    model = ConditionalTop(top.spec.decoder)
    mine = [v for obj in model.checkpoint_objects().values()
            for v in obj.weights]
    for theirs, v in zip(top.weight_variables, mine, strict=True):
      v.assign(theirs)
    return model, int(top.steps_trained)
  model = ConditionalTop(decoder)
  if weights.suffix == ".npz":
    from train_top import load_committed  # research/sae2 on sys.path
    return model, load_committed(model, weights)
  step = tf.Variable(0, dtype=tf.int64)
  tf.train.Checkpoint(step=step, **model.checkpoint_objects()).read(
      tf.train.latest_checkpoint(weights / "train")).expect_partial()
  return model, int(step)
