"""SAE: layered (quality-scalable) learned image compression."""

import os

# TensorFlow 2.14 turns its oneDNN kernels on by default only on CPUs with
# AVX-512 VNNI, BF16 or AMX. On AVX2-only CPUs they are off, and a training
# step is 1.5x slower without them (README, Benchmarks). TensorFlow reads the
# variable when it is imported, so entry points import sae before tensorflow.
# It is a default: TF_ENABLE_ONEDNN_OPTS=0 turns the kernels off.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
