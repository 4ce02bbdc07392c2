"""SAE-2: one wide latent trained for the top first, then cut into nested
layers (issue #39; docs/sae2.md).

The layers are the nested family's (sae.models.nested): one latent, the base
coding it at step 27 with a mean-scale hyperprior, each layer above one
trit per element (steps 9, 3, 1) and a synthesis of its own.  What differs
is the width and the order of training:

- the transforms are "tapered" (sae.models.transforms): 48, 96, 192 filters
  into 320 latent channels, a 128-channel hyper-latent, ReLU hyper-synthesis
  evaluated exactly for coding (sae.entropy.exact);
- the base trains single-rate at the top: every crop at the top layer's
  step with its lambda, rates under noise, the synthesis fed the latent
  rounded around its means with the gradient passed straight through
  (Minnen and Singh, ICIP 2020).  Published codecs that reach JPEG 2000 at
  1 bpp train one wide latent at the top rate and cut lower rates from it
  (DPICT, Lee et al., CVPR 2022; CompressAI's M = 320 models);
- the base keeps that synthesis (no synthesis-alone finish), and every
  layer above starts from it, since it decodes the finest latent best;
- the joint phase (train_joint.py) then trains the base's synthesis for
  its own step with the others, on the summed loss of every prefix.
"""

import tensorflow as tf

from sae.entropy.layer import straight_through
from sae.models.nested import NestedAutoEncoder


class WideNestedAutoEncoder(NestedAutoEncoder):
  """The nested family, tapered and trained for the top first."""

  def __init__(self, specs, metric="mse"):
    super().__init__(specs, metric)
    if any(s.transforms != "tapered" for s in self.specs):
      raise ValueError("an SAE-2 model's layers have tapered transforms")

  def start_layer(self, k):
    """Every layer above the base starts from the base's synthesis: the
    single-rate one, trained on the finest latent."""
    if k > 0:
      self.codecs[k].synthesis.set_weights(
          self.base.synthesis.get_weights())

  def finish(self, k):
    del k  # the base's synthesis stays the single-rate model's
    return None

  def forward(self, x, k, training=True, lower=None):
    """The base: the single-rate loss at the top layer's step and lambda;
    a layer above: its synthesis alone, as in the nested family."""
    if k > 0:
      return super().forward(x, k, training, lower)
    top = self.num_layers - 1
    step = self.steps[top]
    y, mean, index, z_bits = self._gaussians(x, training)
    _, bits = self._at_step(y, mean, index, step, training)
    y_hat = straight_through(y, tf.round((y - mean) / step) * step + mean)
    pixels = tf.cast(tf.shape(x)[1] * tf.shape(x)[2], tf.float32)
    return self._output(x, (bits + z_bits) / pixels,
                        self.base.synthesis(y_hat), self.specs[top].lmbda)
