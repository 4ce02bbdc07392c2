"""Peak resident memory of compressing and decompressing a 4096x4096 image.

    nice -n 19 python benchmarks/peak_memory.py [--weights DIR] [--image PNG]
        [--size 4096] [--layers K]

Each measurement runs in a fresh child process and reports its
``resource.getrusage(RUSAGE_SELF).ru_maxrss`` (peak RSS, KiB on Linux) at
three points: after importing TensorFlow and loading the model (traced on a
16x16 image), after compressing, after decompressing.  The test image is a
Kodak image mirror-tiled to the size, so it has natural content and no
seams.  The weights folder is used as it is; copy it first if a training run
is rewriting it.
"""

import argparse
import json
import os
import pathlib
import resource
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def peak_mib() -> float:
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def tiled(image, size):
  import numpy as np
  tile = np.concatenate([image, image[::-1]], 0)
  tile = np.concatenate([tile, tile[:, ::-1]], 1)
  reps = (-(-size // tile.shape[0]), -(-size // tile.shape[1]), 1)
  return np.ascontiguousarray(np.tile(tile, reps)[:size, :size])


def child(args) -> None:
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
  import numpy as np
  from sae import checkpoints, codec
  from sae.images import load_image
  out = {"start_mib": peak_mib()}
  model = checkpoints.load_model(args.weights, args.layers)
  k = model.num_layers
  codec.decode(model, codec.encode(model, np.zeros((16, 16, 3), np.uint8), k))
  out["loaded_mib"] = peak_mib()
  image = tiled(load_image(args.image), args.size)
  out["image_mib"] = peak_mib()
  t0 = time.perf_counter()
  stream = codec.encode(model, image, k)
  out["compress_s"] = time.perf_counter() - t0
  out["compressed_mib"] = peak_mib()
  t0 = time.perf_counter()
  decoded = codec.decode(model, stream)
  out["decompress_s"] = time.perf_counter() - t0
  out["decompressed_mib"] = peak_mib()
  out.update(layers=k, bytes=len(stream), shape=list(decoded.shape),
             bpp=8 * len(stream) / (args.size * args.size))
  print(json.dumps(out))


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--weights", default=str(ROOT / "checkpoints" / "mse"))
  p.add_argument("--image", default=str(ROOT / "kodak" / "kodim23.png"),
                 help="tiled to --size (default: Kodak's kodim23, which "
                 "python test_el3.py downloads into kodak/)")
  p.add_argument("--size", type=int, default=4096)
  p.add_argument("--layers", type=int, default=None)
  p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
  args = p.parse_args(argv)
  if args.child:
    child(args)
    return 0
  if not pathlib.Path(args.image).is_file():
    print(f"error: {args.image} does not exist; pass --image PATH",
          file=sys.stderr)
    return 2
  print("command: python benchmarks/peak_memory.py "
        + " ".join(argv if argv is not None else sys.argv[1:]))
  cmd = [sys.executable, __file__, "--child", "--weights", args.weights,
         "--image", args.image, "--size", str(args.size)]
  if args.layers:
    cmd += ["--layers", str(args.layers)]
  done = subprocess.run(cmd, capture_output=True, text=True)
  if done.returncode != 0:
    print(done.stderr, file=sys.stderr)
    return done.returncode
  r = json.loads(done.stdout.strip().splitlines()[-1])
  print(f"{args.size}x{args.size} tiled from {args.image}, weights "
        f"{args.weights}, {r['layers']} layer(s): {r['bytes']} bytes "
        f"({r['bpp']:.3f} bpp)")
  print(f"  peak RSS after start-up (python + imports) {r['start_mib']:8.0f} MiB")
  print(f"  after loading the model and tracing      {r['loaded_mib']:8.0f} MiB")
  print(f"  after building the test image            {r['image_mib']:8.0f} MiB")
  print(f"  after compress ({r['compress_s']:6.1f} s)                "
        f"{r['compressed_mib']:8.0f} MiB")
  print(f"  after decompress ({r['decompress_s']:6.1f} s)              "
        f"{r['decompressed_mib']:8.0f} MiB")
  return 0


if __name__ == "__main__":
  sys.exit(main())
