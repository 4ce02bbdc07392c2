"""The traced pieces of training one layer: a distributed step, validation."""

import math

import tensorflow as tf

from sae.eval import metrics


def steps_done(optimizer, offset=None) -> int:
  """The run's step count: the optimizer's own, plus ``offset``, the steps
  taken before Adam last started afresh (--from-weights).  Under a
  distribution strategy both are distributed variables, which int() does
  not take."""
  extra = 0 if offset is None else int(offset.numpy())
  return int(optimizer.iterations.numpy()) + extra


class OffsetSchedule(tf.keras.optimizers.schedules.LearningRateSchedule):
  """``schedule`` read at the run's step rather than at Adam's own count.

  A resume from weights alone starts Adam's count at 0, as its bias
  correction needs for fresh moments, while the learning rate must follow
  the run's step (the decay step stays where the first run put it).
  """

  def __init__(self, schedule, offset: tf.Variable):
    super().__init__()
    self.schedule = schedule
    self.offset = offset

  def __call__(self, step):
    return self.schedule(tf.cast(step, tf.int64) + self.offset)

  def get_config(self):
    return {"schedule": self.schedule.get_config()}


def layer_forward(model, k):
  """Training one layer: a batch of images, or of [image, precomputed lower
  reconstruction] (6 channels), -> model.forward of layer ``k``."""

  def forward(batch, training=True):
    x, lower = batch, None
    if batch.shape[-1] == 6:
      x, lower = batch[..., :3], batch[..., 3:]
    return model.forward(x, k, training=training, lower=lower)

  return forward


def decoded_forward(model, k):
  """Validating layer ``k`` in the joint phase: model.forward_decoded."""

  def forward(batch, training=False):
    del training  # always what the decoder has
    return model.forward_decoded(batch, k)

  return forward


def joint_forward(model, layer_weights):
  """Fine-tuning every layer at once: model.forward_joint."""

  def forward(batch, training=True):
    return model.forward_joint(batch, layer_weights, training=training)

  return forward


def make_train_step(forward, variables, optimizer, strategy, global_batch,
                    training=True, jit_compile=False):
  """A tf.function: one distributed step on a batch; returns [loss, bpp, mse].

  ``forward(batch)`` gives a model.CascadeOutput (layer_forward,
  joint_forward).  Each replica averages its examples' losses over the
  *global* batch, and the strategy sums the replicas' gradients, so N
  replicas on B/N examples apply the update of one replica on B.
  """

  def step_fn(batch):
    with tf.GradientTape() as tape:
      out = forward(batch, training=training)
      loss = tf.nn.compute_average_loss(out.loss,
                                        global_batch_size=global_batch)
    grads = tape.gradient(loss, variables)
    optimizer.apply_gradients(zip(grads, variables))
    per_example = tf.stack([out.loss, out.bpp, out.mse], axis=1)
    return tf.reduce_sum(per_example, axis=0) / global_batch

  @tf.function(jit_compile=jit_compile)
  def train_step(x):
    per_replica = strategy.run(step_fn, args=(x,))
    return strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)

  return train_step


def make_validation(forward):
  """Loss, bpp, MSE, PSNR and MS-SSIM with hard quantization on fixed crops.

  As in tfc's bls2017 with custom data, the crops come from the training
  images (never from the test set); they measure the quantized model, not
  the noisy proxy the training loss sees.
  """

  @tf.function
  def batch_sums(x):
    out = forward(x, training=False)
    # MS-SSIM as the evaluation measures it: on the 8-bit decoded crop.
    decoded = tf.round(tf.clip_by_value(out.total, 0, 255))
    return tf.stack([tf.reduce_sum(out.loss), tf.reduce_sum(out.bpp),
                     tf.reduce_sum(out.mse),
                     tf.reduce_sum(metrics.ms_ssim_float(x, decoded))])

  def validate(batches):
    sums, count = 0.0, 0
    for x in batches:
      sums += batch_sums(x).numpy()
      count += int(x.shape[0])
    loss, bpp, mse, ms_ssim = (float(v) / count for v in sums)
    return {"loss": loss, "bpp": bpp, "mse": mse,
            "psnr": 10 * math.log10(255 ** 2 / max(mse, 1e-10)),
            "ms_ssim": ms_ssim}

  return validate
