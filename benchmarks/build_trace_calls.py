"""Python calls and time of building the model and tracing its coding functions.

    nice -n 10 python benchmarks/build_trace_calls.py [--kodak DIR] [--weights DIR]

Builds the model of a weights folder (all its layers), restores it, and
traces ``decompress`` and ``compress`` for the Kodak image of median file
size, counting Python function calls with cProfile: a count that does not
depend on the machine's load, unlike the times printed beside it.  Run it
in two checkouts to compare them (docs/performance.md).
"""

import argparse
import cProfile
import os
import pathlib
import pstats
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _profiled(fn):
  profile = cProfile.Profile()
  profile.enable()
  t0 = time.perf_counter()
  out = fn()
  seconds = time.perf_counter() - t0
  profile.disable()
  return out, pstats.Stats(profile).total_calls, seconds


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--kodak", default=str(ROOT / "kodak"))
  p.add_argument("--weights", default=str(ROOT / "weights" / "mse"))
  args = p.parse_args(argv)
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
  import sae  # noqa: F401  before TensorFlow (oneDNN default)
  import tensorflow as tf
  from sae.stream import bitstream
  from sae import checkpoints, images
  from sae.models.families import build_model
  paths = sorted(images.list_images(args.kodak, recursive=False),
                 key=lambda q: pathlib.Path(q).stat().st_size)
  image = images.load_image(paths[len(paths) // 2])
  root = pathlib.Path(args.weights)
  config = checkpoints.read_config(root)
  n = checkpoints.available_layers(root)
  model, build_calls, build_s = _profiled(
      lambda: build_model(config.prefix(n)))
  for k, layer in enumerate(model.codecs):
    checkpoints.restore_weights(layer, root, k)
  model.prepare_for_coding([checkpoints.read_tables(root, k)
                            for k in range(n)])
  pixels = tf.constant(image)
  strings, _ = model.compress(pixels, tf.constant(n))  # a stream to decode
  stream = bitstream.unpack(bitstream.pack(
      image.shape[0], image.shape[1], list(strings.numpy()[:n]),
      model.weights_ids()))
  # Fresh functions for the decompress count (compress is traced above).
  model2 = build_model(config.prefix(n))
  for k, layer in enumerate(model2.codecs):
    checkpoints.restore_weights(layer, root, k)
  model2.prepare_for_coding([checkpoints.read_tables(root, k)
                             for k in range(n)])
  _, dec_calls, dec_s = _profiled(lambda: model2.decompress.get_concrete_function(
      tf.constant(list(stream.payloads)),
      tf.constant([stream.height, stream.width])))
  _, enc_calls, enc_s = _profiled(lambda: model2.compress.get_concrete_function(
      pixels, tf.constant(n)))
  print("command: python benchmarks/build_trace_calls.py " + " ".join(
      argv if argv is not None else sys.argv[1:]))
  print(f"{root}, {n} layers, {pathlib.Path(paths[len(paths) // 2]).name}; "
        f"load (1-minute average) {os.getloadavg()[0]:.1f}")
  print(f"build layers       {build_calls:>10,} calls {build_s:7.2f} s")
  print(f"trace decompress   {dec_calls:>10,} calls {dec_s:7.2f} s")
  print(f"trace compress     {enc_calls:>10,} calls {enc_s:7.2f} s")
  return 0


if __name__ == "__main__":
  sys.exit(main())
