"""Do the stored coding functions (sae.coding_cache) code what the model
codes?  Every image of a folder, every prefix, streams and decoded pixels.

    python benchmarks/stored_functions.py --images KODAK \
        --weights weights/mse --weights weights/sae-nested

For each weights folder: the model is loaded, its four coding functions are
stored in a temporary cache and loaded back as a StoredCoder; each image is
encoded with 1..N layers by both, and each stream decoded by both.  Printed:
per folder, how many streams and decodes are byte-identical, and the warm
time per image of each.
"""

import argparse
import os
import pathlib
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--images", required=True, help="folder of PNG images")
  p.add_argument("--weights", action="append", required=True)
  p.add_argument("--limit", type=int, default=None)
  args = p.parse_args(argv)
  with tempfile.TemporaryDirectory() as cache:
    os.environ["SAE_CACHE_DIR"] = cache
    import numpy as np
    from sae import checkpoints, codec, coding_cache, images
    paths = sorted(pathlib.Path(args.images).glob("*.png"))[:args.limit]
    print(f"command: python benchmarks/stored_functions.py "
          f"{' '.join(argv if argv is not None else sys.argv[1:])}")
    for root in args.weights:
      model = checkpoints.load_model(root)
      n = model.num_layers
      for name in coding_cache.FUNCTIONS:
        coding_cache.store(model, root, name)
      coder = coding_cache.lookup(root, n, "compress")
      same_streams = same_pixels = total = 0
      seconds = {"model": 0.0, "stored": 0.0}
      for path in paths:
        image = images.load_image(path)
        for k in range(1, n + 1):
          t0 = time.perf_counter()
          a = codec.encode(model, image, k)
          t1 = time.perf_counter()
          b = codec.encode(coder, image, k)
          t2 = time.perf_counter()
          x = codec.decode(model, a)
          t3 = time.perf_counter()
          y = codec.decode(coder, a)
          t4 = time.perf_counter()
          seconds["model"] += (t1 - t0) + (t3 - t2)
          seconds["stored"] += (t2 - t1) + (t4 - t3)
          total += 1
          same_streams += a == b
          same_pixels += bool(np.array_equal(x, y))
      print(f"{root}: {len(paths)} images x {n} prefixes: streams identical "
            f"{same_streams}/{total}, decoded pixels identical "
            f"{same_pixels}/{total}; encode+decode per prefix "
            f"{1000 * seconds['model'] / total:.0f} ms (model), "
            f"{1000 * seconds['stored'] / total:.0f} ms (stored)")
  return 0


if __name__ == "__main__":
  sys.exit(main())
