"""Where a cold ``python -m sae compress`` / ``decompress`` spends its time.

    nice -n 10 python benchmarks/cold_start.py [--kodak DIR] [--weights DIR]
        [--image kodim23.png] [--runs 5] [--warm 10]

Each run, in fresh processes, interleaved so that a machine's load hits all
of them alike:

  * ``python -c "import tensorflow, tensorflow_compression"`` (the floor);
  * ``python -m sae decompress`` of a 4-layer stream of a Kodak image, and
    ``python -m sae compress`` of the image (wall time of the real command),
    with the weights' coding functions stored (sae.coding_cache; the
    parent stores them first, in a cache of its own), and at first use,
    with an empty cache (the command builds the model, traces, and stores);
  * the stored path's steps, timed one by one in a fresh process: import of
    sae's command module, of TensorFlow and tensorflow_compression, reading
    the input, the cache's key and lookup, the first call (registering the
    stored functions and running them), and the output;
  * the model's steps, timed one by one in a fresh process that
    takes the steps sae.cli.commands and sae.checkpoints.load_model take: import
    of sae's command module, of TensorFlow and tensorflow_compression, of
    sae's model modules, reading the input, building the layers, restoring
    the weights, the stored coding tables, tracing the coding function, its
    first call, a warm call split into transforms and range coding, and the
    output.  What the child does not time (interpreter start, exit) is the
    command's wall time minus the steps.

Printed: medians over the runs, in seconds, and the command line.  The
image defaults to the Kodak image of median size (all are 768x512).
"""

import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


# The child: one command's steps in this fresh process.


def _child_stored(mode, weights, source, output, spawned):
  steps = {"interpreter start": time.time() - spawned}
  clock = [time.perf_counter()]

  def lap(name):
    now = time.perf_counter()
    steps[name] = now - clock[0]
    clock[0] = now

  from sae.stream import bitstream  # noqa: F401  (no TensorFlow)
  from sae.cli import commands
  commands.quiet_tensorflow()
  lap("import sae.cli.commands")
  from sae import images
  if mode == "decompress":
    stream = bitstream.unpack(pathlib.Path(source).read_bytes())
    height, width = stream.height, stream.width
  else:
    image = images.load_image(source)
    height, width = image.shape[:2]
  lap("read input")
  import tensorflow  # noqa: F401
  lap("import tensorflow")
  import tensorflow_compression  # noqa: F401
  lap("import tensorflow_compression")
  from sae import checkpoints, coding_cache, codec
  from sae.models.transforms import fits_one_band
  codec.lean_startup()
  lap("import sae.coding_cache, sae.codec")
  name = mode + ("_one_band" if fits_one_band(height, width) else "")
  coder = coding_cache.lookup(weights, checkpoints.available_layers(weights),
                              name)
  if coder is None:
    raise SystemExit(f"{name} is not stored")
  lap("cache key and lookup")
  if mode == "decompress":
    pixels = codec.decode_stream(coder, stream)
  else:
    data = codec.encode(coder, image, coder.num_layers)
  lap("first call (register, run)")
  if mode == "decompress":
    images.save_png(pixels, output)
  else:
    from sae.fileio import atomic_write
    atomic_write(output, data)
  lap("write output")
  print(json.dumps(steps))


def _child(mode, weights, source, output, warm, spawned):
  # Python's start-up, until this line (the parent's clock).
  steps = {"interpreter start": time.time() - spawned}
  clock = [time.perf_counter()]

  def lap(name):
    now = time.perf_counter()
    steps[name] = now - clock[0]
    clock[0] = now

  from sae.stream import bitstream  # noqa: F401  (no TensorFlow)
  from sae.cli import commands
  commands.quiet_tensorflow()
  lap("import sae.cli.commands")
  if mode == "decompress":
    data = pathlib.Path(source).read_bytes()
    stream = bitstream.unpack(data)
    num_layers = stream.num_layers
  else:
    from sae import images
    image = images.load_image(source)
    num_layers = None
  lap("read input")
  import tensorflow as tf
  lap("import tensorflow")
  import tensorflow_compression  # noqa: F401
  lap("import tensorflow_compression")
  from sae import checkpoints, codec  # noqa: F401
  from sae.models.families import build_model
  codec.lean_startup()  # as sae.cli.commands does
  lap("import sae model modules")
  root = pathlib.Path(weights)
  config = checkpoints.read_config(root)
  num_layers = num_layers or checkpoints.available_layers(root)
  model = build_model(config.prefix(num_layers))
  lap("build layers")
  for k, layer in enumerate(model.codecs):
    checkpoints.restore_weights(layer, root, k)
  lap("restore weights")
  model.prepare_for_coding([checkpoints.read_tables(root, k)
                            for k in range(num_layers)])
  model.weights_ids()
  lap("coding tables, weights ids")
  if mode == "decompress":
    args = (tf.constant(list(stream.payloads), tf.string),
            tf.constant([stream.height, stream.width], tf.int32))
    function = coding_function(model, mode, stream.height, stream.width)
  else:
    args = (tf.constant(image, tf.uint8), tf.constant(num_layers, tf.int32))
    function = coding_function(model, mode, *image.shape[:2])
  function.get_concrete_function(*args)
  lap("trace")
  result = function(*args)
  lap("first call")
  if mode == "decompress":
    from sae import images
    images.save_png(result.numpy(), output)
  else:
    strings = result[0].numpy()[:num_layers]
    from sae.fileio import atomic_write
    atomic_write(output, bitstream.pack(
        image.shape[0], image.shape[1], list(strings),
        model.weights_ids()[:num_layers]))
  lap("write output")
  steps.update(_warm_split(mode, model, args, num_layers, warm))
  print(json.dumps(steps))


def coding_function(model, mode, height, width):
  """The function sae.codec runs for an image of this size."""
  if model.fits_one_band(int(height), int(width)):
    return getattr(model, f"{mode}_one_band")
  return getattr(model, mode)


def _warm_split(mode, model, args, num_layers, repeats):
  """Warm times: the whole coding call, its range coding alone, and image
  I/O, medians of ``repeats`` calls (not part of the cold total)."""
  import tensorflow as tf
  from sae import images
  from sae.models.transforms import latent_shape, pad_to_stride

  def median_time(fn, *a):
    fn(*a)  # trace
    times = []
    for _ in range(repeats):
      t0 = time.perf_counter()
      out = fn(*a)
      if hasattr(out, "numpy"):
        out.numpy()
      times.append(time.perf_counter() - t0)
    return statistics.median(times)

  out = {}
  function = coding_function(model, mode, *(
      args[1].numpy() if mode == "decompress" else args[0].shape[:2]))
  whole = median_time(lambda *a: function(*a) if mode == "decompress"
                      else function(*a)[0], *args)
  out[f"warm: {mode} call"] = whole
  from sae.models.model import ScalableAutoEncoder
  if not isinstance(model, ScalableAutoEncoder):
    return out  # the split below runs the cascade's layers one by one
  if mode == "decompress":
    strings, shape = args
    hw = latent_shape(shape)

    @tf.function(autograph=False)
    def range_decode(strings):
      return [c.decompress_latent(strings[k:k + 1], hw)
              for k, c in enumerate(model.codecs)]

    out["warm: range decoding"] = median_time(range_decode, strings)
    image = model.decompress(*args).numpy()
    with tempfile.TemporaryDirectory() as tmp:
      out["warm: PNG write"] = median_time(
          images.save_png, image, pathlib.Path(tmp) / "x.png")
  else:
    image, _ = args
    x = pad_to_stride(tf.cast(image, tf.float32)[None])
    latents = []
    total = tf.zeros_like(x)
    for c in model.codecs:  # the latents the cascade codes, eagerly
      y = c.analysis(x - total)
      latents.append(y)
      total += c.synthesis(c.quantize(y))

    @tf.function(autograph=False)
    def range_encode(latents):
      return [c.compress_latent(y) for c, y in zip(model.codecs, latents)]

    out["warm: range coding"] = median_time(range_encode, latents)
  out[f"warm: transforms and the rest of the {mode} call"] = (
      whole - out.get("warm: range decoding", out.get("warm: range coding")))
  return out


# The parent.


def _timed(argv, env):
  t0 = time.perf_counter()
  done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True,
                        text=True)
  seconds = time.perf_counter() - t0
  if done.returncode:
    raise SystemExit(f"{' '.join(map(str, argv))} failed:\n{done.stderr}")
  return seconds, done.stdout


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--kodak", default=str(ROOT / "kodak"),
                 help="Kodak folder (default: the repository's kodak/, "
                 "filled by python test_el3.py)")
  p.add_argument("--image", default=None,
                 help="image to code (default: the Kodak image whose file "
                 "size is the median)")
  p.add_argument("--weights", default=str(ROOT / "weights" / "mse"))
  p.add_argument("--runs", type=int, default=5)
  p.add_argument("--warm", type=int, default=10,
                 help="warm calls per run for the warm split")
  p.add_argument("--child", choices=("compress", "decompress"),
                 help=argparse.SUPPRESS)
  p.add_argument("--stored", action="store_true", help=argparse.SUPPRESS)
  p.add_argument("--source", help=argparse.SUPPRESS)
  p.add_argument("--output", help=argparse.SUPPRESS)
  p.add_argument("--spawned", type=float, help=argparse.SUPPRESS)
  args = p.parse_args(argv)
  if args.child and args.stored:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    _child_stored(args.child, args.weights, args.source, args.output,
                  args.spawned)
    return 0
  if args.child:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    _child(args.child, args.weights, args.source, args.output, args.warm,
           args.spawned)
    return 0

  command = "python benchmarks/cold_start.py " + " ".join(
      argv if argv is not None else sys.argv[1:])
  if args.image:
    image = pathlib.Path(args.image)
  else:
    from sae.eval import kodak
    paths = sorted(kodak.ensure_images(args.kodak, progress=False),
                   key=lambda q: pathlib.Path(q).stat().st_size)
    image = pathlib.Path(paths[len(paths) // 2])
  env = dict(os.environ, PYTHONPATH=str(ROOT))
  env.pop("TF_CPP_MIN_LOG_LEVEL", None)  # the commands quiet TensorFlow
  py = sys.executable
  weights = ["--weights", args.weights]
  rows = {}
  load_before = os.getloadavg()[0]

  def add(name, seconds):
    rows.setdefault(name, []).append(seconds)

  with tempfile.TemporaryDirectory() as tmp:
    tmp = pathlib.Path(tmp)
    stream = tmp / "s.sae"
    env["SAE_CACHE_DIR"] = str(tmp / "cache")
    # Stores both functions the commands use.
    _timed([py, "-m", "sae", "compress", image, stream, *weights], env)
    _timed([py, "-m", "sae", "decompress", stream, tmp / "o.png", *weights],
           env)
    (tmp / "o.png").unlink()
    for run in range(args.runs):
      print(f"run {run + 1}/{args.runs}", file=sys.stderr, flush=True)
      add("bare: import tensorflow, tensorflow_compression", _timed(
          [py, "-c", "import tensorflow, tensorflow_compression"], env)[0])
      for mode, source in (("decompress", stream), ("compress", image)):
        out = tmp / ("o.png" if mode == "decompress" else "o.sae")
        wall, _ = _timed([py, "-m", "sae", mode, source, out, *weights], env)
        add(f"{mode}: python -m sae {mode} (wall)", wall)
        out.unlink()
        first_use = dict(env, SAE_CACHE_DIR=str(tmp / f"empty-{run}-{mode}"))
        wall, _ = _timed([py, "-m", "sae", mode, source, out, *weights],
                         first_use)
        add(f"{mode}: python -m sae {mode} at first use (wall)", wall)
        out.unlink()
        for stored, label in ((True, "stored"), (False, "model")):
          _, text = _timed(
              [py, __file__, "--child", mode, "--source", source, "--output",
               out, "--warm", str(args.warm), "--spawned", repr(time.time()),
               *(["--stored"] if stored else []), *weights], env)
          steps = json.loads(text.strip().splitlines()[-1])
          for name, seconds in steps.items():
            add(f"{mode}, {label}: {name}", seconds)
          add(f"{mode}, {label}: sum of the steps (cold)",
              sum(v for k, v in steps.items() if not k.startswith("warm")))
          out.unlink()

  med = {name: statistics.median(v) for name, v in rows.items()}
  bare = med["bare: import tensorflow, tensorflow_compression"]
  print(f"command: {command}")
  print(f"image {image.name}, weights {args.weights}, {args.runs} runs, "
        f"medians in seconds; load (1-minute average) {load_before:.1f} "
        f"before, {os.getloadavg()[0]:.1f} after; {os.cpu_count()} CPUs")
  width = max(map(len, med))
  for name, seconds in med.items():
    print(f"{name:<{width}}  {seconds:7.3f}")
  for mode in ("decompress", "compress"):
    wall = med[f"{mode}: python -m sae {mode} (wall)"]
    first = med[f"{mode}: python -m sae {mode} at first use (wall)"]
    print(f"{mode}: wall - bare import = {wall - bare:.3f} s "
          f"(at first use: {first - bare:.3f} s)")
  return 0


if __name__ == "__main__":
  sys.exit(main())
