"""``python -m sae``: compress, decompress, truncate, info and export.

``truncate`` and ``info`` only parse the container (sae.stream.bitstream) and never
import TensorFlow, so they answer in a fraction of a second.  The other
commands check everything that is cheap to check (output folder, input file,
stream structure) before importing TensorFlow, so bad input is refused in
seconds; weights ids (which cover the range coding tables) are compared once
the model is loaded, which is quick for shipped weights that carry their
tables.

Every error is one line ``error: ...`` on stderr with exit status 2; outputs
are written through a temporary file and a rename, so a failed command
leaves no file behind and never touches an existing one.
"""

import argparse
import json
import os
import pathlib
import sys
import warnings

from sae.stream import bitstream
from sae.cli import arguments, folders
from sae.cli.cli import Parser, guarded, quiet_tensorflow
from sae.errors import InputError, require_extra
from sae.fileio import atomic_write, check_output
from sae.cli.folders import STREAM_SUFFIX
from sae.images import IMAGE_SUFFIXES


def _prog() -> str:
  """How the user called us: the ``sae`` console script or ``python -m sae``."""
  return "sae" if os.path.basename(sys.argv[0]) == "sae" else "python -m sae"


WEIGHTS_HELP = ("weights folder or training checkpoint directory "
                "(default: the shipped weights/sae-conditional)")


def build_parser() -> argparse.ArgumentParser:
  """The command line; each command's options are beside its code."""
  p = Parser(prog=_prog(),
              description="Layered image codec (SAE, Jia et al. MIPR 2019). "
              "Images are read as photo viewers show them: the EXIF "
              "orientation of a photo is applied before coding.")
  sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
  _compress_parser(sub)
  _decompress_parser(sub)
  _truncate_parser(sub)
  _info_parser(sub)
  _serve_parser(sub)
  _beam_parser(sub)
  _export_parser(sub)
  return p


def _add_folder_options(p) -> None:
  p.add_argument("--force", action="store_true",
                 help="folders: redo outputs that are newer than their input")
  p.add_argument("--no-progress", dest="progress", action="store_false",
                 help="folders: no progress bar (there is none either when "
                 "stderr is not a terminal)")


def main(argv=None, one_shot=False) -> int:
  """Runs one command; returns its exit status.

  Args:
    one_shot: this process runs this command only (the ``sae`` program,
      sae.__main__): coding commands skip graph optimization
      (sae.codec.lean_startup).
  """
  parser = build_parser()
  argv = sys.argv[1:] if argv is None else argv
  if not argv:  # no command: say how to give one
    print(parser.format_usage().strip(), file=sys.stderr)
    return 2
  args, extra = parser.parse_known_args(argv)
  if extra and args.command != "beam":  # only beam passes options on
    parser.error(f"unrecognized arguments: {' '.join(extra)}")
  args.pipeline_args = extra
  args.one_shot = one_shot
  return guarded(_run, args)


def _coding_setup(args):
  """Imports sae.codec (and TensorFlow) for a coding command; a one-shot
  process also skips graph optimization (sae.codec.lean_startup)."""
  quiet_tensorflow()
  from sae import codec
  if args.one_shot:
    codec.lean_startup()
  return codec




def _run(args) -> int:
  commands = {"compress": compress, "decompress": decompress,
              "truncate": truncate, "info": info, "export": export,
              "serve": serve, "beam": beam}
  return commands[args.command](args)  # cli.guarded reports the errors


# Commands.


def _truncate_parser(subparsers) -> None:
  t = subparsers.add_parser("truncate", help="keep the first K layers of a stream")
  t.add_argument("input", metavar="IN", help="stream file")
  t.add_argument("output", metavar="OUT", help="stream file to write")
  t.add_argument("--layers", type=arguments.layer_count, required=True)


def truncate(args) -> int:
  check_output(args.output)
  _check_not_input(args.input, args.output)
  atomic_write(args.output, bitstream.truncate(_read_stream(args.input),
                                               args.layers))
  return 0


def _info_parser(subparsers) -> None:
  i = subparsers.add_parser("info", help="print a stream's header as JSON")
  i.add_argument("input", metavar="IN", help="stream file")


def info(args) -> int:
  print(json.dumps(bitstream.describe(_read_stream(args.input))))
  return 0


def _compress_parser(subparsers) -> None:
  c = subparsers.add_parser(
      "compress", help="image -> layered stream",
      description="Compress an image to a stream file, or several images "
      "or folders of images into a folder of streams, like cp "
      "(compress a.png b.jpg out/; compress photos/ out/).")
  c.add_argument("input", metavar="IN", nargs="+",
                 help="any image Pillow reads, or a folder of them (its "
                 f"{', '.join(IMAGE_SUFFIXES)} files)")
  c.add_argument("output", metavar="OUT",
                 help="stream file to write; with several inputs or a "
                 "folder, the folder that receives <name>.sae")
  c.add_argument("--layers", type=arguments.layer_count, default=None,
                 help="layers to code (default: all the weights have)")
  c.add_argument("--weights", default=None, help=WEIGHTS_HELP)
  _add_folder_options(c)


def compress(args) -> int:
  if folders.is_batch(args.input, args.output):
    return _compress_files(args)
  args.input, = args.input
  check_output(args.output)
  width, height = _probe_image(args.input)
  bitstream.check_size(height, width, args.input)
  codec = _coding_setup(args)
  from sae.models.transforms import fits_one_band
  root = _weights_root(args.weights)
  image = _load_image(args.input)
  coder, store = _one_shot_coder(
      root, args.layers,
      "compress_one_band" if fits_one_band(height, width) else "compress")
  num_layers = args.layers or coder.num_layers
  atomic_write(args.output, codec.encode(coder, image, num_layers))
  store()
  return 0


def _decompress_parser(subparsers) -> None:
  d = subparsers.add_parser(
      "decompress", help="layered stream -> PNG",
      description="Decompress a stream to a PNG, or several streams or "
      "folders of streams into a folder of PNGs, like cp "
      "(decompress streams/ out/).")
  d.add_argument("input", metavar="IN", nargs="+",
                 help=f"stream file, or a folder of them (its {STREAM_SUFFIX} "
                 "files)")
  d.add_argument("output", metavar="OUT.png",
                 help="PNG file to write; with several inputs or a folder, "
                 "the folder that receives <name>.png")
  d.add_argument("--layers", type=arguments.layer_count, default=None,
                 help="decode the first K layers (default: all present)")
  d.add_argument("--weights", default=None, help=WEIGHTS_HELP)
  d.add_argument("--max-pixels", type=arguments.positive_int, default=None,
                 help="refuse streams that declare more pixels (default: "
                 f"any size the format allows, up to {bitstream.MAX_SIDE}"
                 f"x{bitstream.MAX_SIDE})")

  d.add_argument("--partial", action="store_true",
                 help="decode the complete layers of a cut file (an "
                 "interrupted download) and say on stderr how many it used")
  _add_folder_options(d)


def decompress(args) -> int:
  if folders.is_batch(args.input, args.output):
    return _decompress_files(args)
  args.input, = args.input
  check_output(args.output)
  data = _read_stream(args.input)
  used = None
  if args.partial:
    data, used = _complete_layers(data, args.layers)
    args.layers = None  # data now holds the layers to decode
  stream = bitstream.unpack(data)
  num_layers = args.layers or stream.num_layers
  bitstream.check_layers(num_layers, stream.num_layers)
  codec = _coding_setup(args)
  from sae import checkpoints, images as image_io
  from sae.stream import legacy
  bitstream.check_pixels(stream.height, stream.width, args.max_pixels)
  from sae.models.transforms import fits_one_band
  root = _weights_root(args.weights)
  if legacy.is_legacy(stream):  # its upgrade needs the model's layers
    coder, store = checkpoints.cached_model(root, num_layers), lambda: None
  else:
    coder, store = _one_shot_coder(
        root, num_layers,
        "decompress_one_band" if fits_one_band(stream.height, stream.width)
        else "decompress")
  # Parsed and checked once, here; the ids are checked by decode_stream.
  image = codec.decode_stream(coder, stream.prefix(num_layers), root)
  image_io.save_png(image, args.output)
  store()
  if used:
    print(used, file=sys.stderr)
  return 0


def _compress_files(args) -> int:
  """``compress IN... OUT/``: one stream per image (sae.cli.folders)."""
  jobs, skipped = folders.plan(args.input, args.output, IMAGE_SUFFIXES,
                               STREAM_SUFFIX, args.force)
  codec = _coding_setup(args)
  from sae import checkpoints
  root = _weights_root(args.weights)
  model = checkpoints.cached_model(root, args.layers) if jobs else None
  num_layers = args.layers or (model.num_layers if model else 0)

  def read(job):
    width, height = _probe_image(job.source)
    bitstream.check_size(height, width, job.source)
    return _load_image(job.source)

  def code(job, image):
    data = codec.encode(model, image, num_layers)
    atomic_write(job.target, data)
    return len(data)

  return folders.run("compress", jobs, skipped, read, code, args.progress)


def _decompress_files(args) -> int:
  """``decompress IN... OUT/``: one PNG per stream (sae.cli.folders)."""
  jobs, skipped = folders.plan(args.input, args.output, (STREAM_SUFFIX,),
                               ".png", args.force)
  codec = _coding_setup(args)
  from sae import checkpoints, images
  root = _weights_root(args.weights)
  model = checkpoints.cached_model(root, args.layers) if jobs else None

  def read(job):
    data, note = _read_stream(job.source), None
    if args.partial:
      data, note = _complete_layers(data, args.layers)
    stream = bitstream.unpack(data)
    bitstream.check_pixels(stream.height, stream.width, args.max_pixels)
    # --partial cut the data to the layers it decodes already.
    num_layers = stream.num_layers if args.partial else (
        args.layers or stream.num_layers)
    bitstream.check_layers(num_layers, stream.num_layers)
    return stream.prefix(num_layers), note

  def code(job, read_out):
    stream, note = read_out
    image = codec.decode_stream(model, stream, root)
    images.save_png(image, job.target)
    if note:
      print(f"{job.source}: {note}", file=sys.stderr)
    return job.target.stat().st_size

  return folders.run("decompress", jobs, skipped, read, code, args.progress)


def _complete_layers(data, wanted):
  """``decompress --partial``: the complete layers of a possibly cut file
  (at most ``wanted``) as a file, and the line that says how many.

  Raises:
    StreamError: not even the base layer is complete, or damage.
  """
  stream, declared = bitstream.unpack_prefix(data)
  have = stream.num_layers
  if not have:
    raise bitstream.StreamError(f"stream is cut in layer 1 of {declared}: "
                                "not even the base layer is complete")
  use = min(have, wanted or have)
  why = (f"the file is cut in layer {have + 1}" if have < declared else
         "the file is complete")
  return (bitstream.repack(stream.prefix(use)),
          f"decoded {use} of {declared} layers ({why})")


def _beam_parser(subparsers) -> None:
  b = subparsers.add_parser(
      "beam", help="code a collection of images as an Apache Beam pipeline",
      description="Code every image a glob matches into OUTPUT/<name>.sae "
      "(what compress writes) as an Apache Beam pipeline, each worker "
      "loading the model once; options not listed here go to Beam "
      "(--runner, --direct_num_workers, ...; docs/beam.md).")
  b.add_argument("--input", required=True, metavar="GLOB",
                 help="images to code (any file system Beam knows)")
  b.add_argument("--output", required=True, metavar="DIR",
                 help="folder that receives <name>.sae (created)")
  b.add_argument("--weights", default=None, help=WEIGHTS_HELP +
                 "; every worker must read it at this path")
  b.add_argument("--layers", type=arguments.layer_count, default=None,
                 help="layers to code (default: all the weights have)")
  b.add_argument("--evaluate", action="store_true",
                 help="also decode and measure every prefix, as test_el3.py "
                 "does, and write the results file")
  b.add_argument("--results", default=None, metavar="FILE",
                 help="results file of --evaluate (default: "
                 "DIR/results.json)")


def beam(args) -> int:
  from sae.train import beam as pipeline  # refuses in one line without the extra
  return pipeline.run(args, args.pipeline_args)


def _serve_parser(subparsers) -> None:
  v = subparsers.add_parser("serve", help="serve a folder's streams, their layers "
                     "and decoded images over HTTP, with a viewer page")
  v.add_argument("folder", metavar="DIR", help="folder of stream files")
  v.add_argument("--host", default="127.0.0.1",
                 help="address to listen on (0.0.0.0: every interface)")
  v.add_argument("--port", type=arguments.port, default=8000,
                 help="TCP port (0: any free port; the URL is printed)")
  v.add_argument("--weights", default=None, help=WEIGHTS_HELP)
  v.add_argument("--decoders", type=arguments.positive_int, default=1,
                 help="decoding worker processes (each loads TensorFlow)")
  v.add_argument("--queue", type=arguments.non_negative_int, default=8,
                 help="decodes waiting for a worker; more get 503")
  v.add_argument("--decode-timeout", type=arguments.positive_float, default=30.0,
                 help="seconds a decode may take before its worker is "
                 "killed and restarted (422)")
  v.add_argument("--max-pixels", type=arguments.positive_int, default=4096 * 4096,
                 help="largest image the server decodes, in pixels")
  v.add_argument("--max-file-bytes", type=arguments.positive_int, default=64 << 20,
                 help="largest stream file the server reads")
  v.add_argument("--cache-mb", type=arguments.non_negative_int, default=128,
                 help="memory for cut files and decoded PNGs (LRU)")


def serve(args) -> int:
  require_extra("serve", "starlette", "uvicorn")
  from sae.serve import app
  return app.run(args)


def _export_parser(subparsers) -> None:
  e = subparsers.add_parser("export", help="write the model as a TF SavedModel")
  e.add_argument("output", metavar="DIR", help="SavedModel folder to create")
  e.add_argument("--weights", default=None, help=WEIGHTS_HELP)


def export(args) -> int:
  out = pathlib.Path(args.output)
  check_output(out, directory_ok=True)
  quiet_tensorflow()
  from sae import checkpoints
  from sae.cli import export as export_lib
  export_lib.save(checkpoints.cached_model(_weights_root(args.weights)), out)
  return 0


# Inputs and outputs.


def _read_stream(path) -> bytes:
  path = pathlib.Path(path)
  if not path.exists():
    raise InputError(f"input {str(path)!r} does not exist")
  if not path.is_file():
    raise InputError(f"input {str(path)!r} is not a file")
  return path.read_bytes()


def _probe_image(path):
  """(width, height) from the image header; refuses non-images cheaply."""
  from PIL import Image
  if not os.path.exists(path):
    raise InputError(f"input {str(path)!r} does not exist")
  if not os.path.isfile(path):
    raise InputError(f"input {str(path)!r} is not a file")
  try:
    with Image.open(path) as img:
      return img.size
  except (OSError, ValueError, Image.DecompressionBombError) as e:
    raise InputError(f"cannot read image {str(path)!r}: {e}") from None


def _load_image(path):
  """sae.images.load_image, with its notices (alpha dropped) as one line
  each."""
  from sae import images
  with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    image = images.load_image(path)
  for w in caught:
    print(f"warning: {' '.join(str(w.message).split())}", file=sys.stderr)
  return image


# Weights.


def _weights_root(arg) -> pathlib.Path:
  from sae import checkpoints
  if arg is not None:
    root = pathlib.Path(arg)
    if not root.is_dir():
      raise InputError(f"weights folder {arg!r} does not exist")
    return root
  root = checkpoints.DEFAULT_WEIGHTS
  if not (root / checkpoints.CONFIG_FILE).is_file():
    raise InputError(f"no shipped weights in {str(root)!r}; pass --weights DIR "
                     "(a weights folder or training checkpoint directory)")
  return root


def _one_shot_coder(root, num_layers, function):
  """(coder, store) for one image: the folder's stored coding function
  ``function`` (sae.coding_cache) when the cache has it, and a store()
  that does nothing; else the model, with all the folder's layers, and a
  store() that stores the function, to call once the output is in place.

  Raises:
    InputError: no such layers (as sae.checkpoints.cached_model).
  """
  from sae import checkpoints, coding_cache
  have = checkpoints.available_layers(root)
  if not 0 < (num_layers or have) <= have:
    checkpoints.cached_model(root, num_layers)  # raises, naming what is missing
  stored = coding_cache.lookup(root, have, function)
  if stored is not None:
    return stored, lambda: None
  model = checkpoints.cached_model(root)
  return model, lambda: coding_cache.store(model, root, function)


def _check_not_input(input_path, output_path) -> None:
  """Refuses to write over the input: a reader would lose it."""
  if (os.path.exists(input_path) and os.path.exists(output_path)
      and os.path.samefile(input_path, output_path)):
    raise InputError(f"output {str(output_path)!r} is the input; write to "
                     "another file (then rename it if you wish)")
