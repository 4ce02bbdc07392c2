"""One step on two replicas equals one replica on the whole batch."""

import os
import pathlib
import subprocess
import sys
import textwrap

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
SCRIPT = textwrap.dedent("""
    import numpy as np
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from sae.train import train_steps
    from sae.models.model import ScalableAutoEncoder
    from tests.tiny import tiny_specs

    K = 1
    batch = tf.random.uniform((4, 32, 32, 3), 0, 255, seed=7)

    def one_step(strategy, init=None):
      with strategy.scope():
        model = ScalableAutoEncoder(tiny_specs(2))
        weights = [v for c in model.codecs for v in c.weight_variables]
        if init is not None:
          for v, value in zip(weights, init):
            v.assign(value)
        model.codecs[0].prepare_for_coding()
        variables = model.set_trainable_layer(K)
        optimizer = tf.keras.optimizers.SGD(0.01)
      # Inference-mode forward: no noise, so both runs see the same numbers.
      step = train_steps.make_train_step(train_steps.layer_forward(model, K),
                                   variables, optimizer, strategy,
                                   4, training=False)
      dataset = tf.data.Dataset.from_tensors(batch)
      x = next(iter(strategy.experimental_distribute_dataset(dataset)))
      metrics = step(x).numpy()
      return [v.numpy() for v in weights], metrics

    tf.random.set_seed(0)
    init, _ = one_step(tf.distribute.get_strategy())  # any weights will do
    single, m1 = one_step(tf.distribute.get_strategy(), init)
    mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    assert mirrored.num_replicas_in_sync == 2
    double, m2 = one_step(mirrored, init)
    changed = sum(not np.allclose(a, b) for a, b in zip(init, single))
    assert changed > 0, "the step changed nothing"
    for a, b in zip(single, double):
      np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(m1, m2, rtol=1e-4)
    print("OK", changed)
""")


@pytest.mark.full  # a TensorFlow process of its own: 20 s
def test_mirrored_step_equals_single_replica_step():
  result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True,
                          text=True, timeout=600,
                          cwd=ROOT, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3",
                                             PYTHONPATH=str(ROOT)))
  assert result.returncode == 0, result.stderr[-3000:]
  assert result.stdout.startswith("OK")
