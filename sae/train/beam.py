"""``python -m sae beam``: the command line's coding as an Apache Beam pipeline.

    python -m sae beam --input 'photos/*.jpg' --output streams/ \\
        [--weights DIR] [--layers K] [--evaluate] [Beam pipeline options]

Every file the glob matches becomes ``OUTPUT/<name>.sae``, byte for byte
what ``python -m sae compress`` writes.  Each worker loads the model once
(``DoFn.setup``) and codes the images it is given.  With ``--evaluate``
every prefix of every image is also decoded and measured exactly as
``test_el3.py`` does (sae.eval.evaluate.evaluate_image), and the collection's
results file (sae.eval.evaluate.model_summary) is written to
``OUTPUT/results.json`` (or ``--results``).  A file that cannot be coded is
named on one line in ``OUTPUT/failures.txt`` and on stderr, the others are
coded, and the exit status is 2.

Options this command does not know go to Beam's PipelineOptions:
``--runner``, ``--direct_num_workers 2 --direct_running_mode
multi_processing``, a Flink, Spark or Dataflow runner's options
(docs/beam.md).  The weights folder must be readable by every worker at
the same path; inputs and outputs may be on any file system Beam knows.
"""

import io
import os
import pathlib
import posixpath
import sys

from sae.errors import InputError, require_extra

try:  # the beam extra: _require_beam says how to install it
  import apache_beam as beam
except ImportError:
  beam = None

FAILURES_FILE = "failures.txt"
RESULTS_FILE = "results.json"


def _require_beam() -> None:
  require_extra("beam", "apache_beam")


def _stem(path) -> str:
  return posixpath.splitext(posixpath.basename(path))[0]


def _is_local(path) -> bool:
  return "://" not in str(path)


def _write(path, data: bytes) -> None:
  """Atomic on a local disk; through Beam's file systems elsewhere (whose
  writes become visible when closed)."""
  if _is_local(path):
    from sae.fileio import atomic_write
    atomic_write(path, data)
    return
  from apache_beam.io.filesystems import FileSystems
  with FileSystems.create(path) as f:
    f.write(data)


def _join(folder, name) -> str:
  if _is_local(folder):
    return str(pathlib.Path(folder) / name)
  from apache_beam.io.filesystems import FileSystems
  return FileSystems.join(folder, name)


class CodeImage(beam.DoFn if beam else object):
  """Loads the model once per worker (``setup``), then codes (and with
  ``evaluate`` measures) each file it is given."""

  def __init__(self, weights, num_layers, output, evaluate):
    super().__init__()
    self.weights = str(weights)
    self.num_layers = num_layers
    self.output = str(output)
    self.evaluate = evaluate
    self.model = None

  def setup(self):
    from sae import checkpoints
    from sae.cli import cli
    cli.quiet_tensorflow()
    self.model = checkpoints.load_model(self.weights, self.num_layers)
    self.num_layers = self.num_layers or self.model.num_layers
    if self.evaluate:  # timings exclude tracing, as test_el3.py's
      from sae.eval import evaluate
      evaluate.warm_up(self.model, self.num_layers)

  def teardown(self):
    # Release the traced functions before the worker's interpreter exits
    # (TensorFlow complains when they are collected during shutdown).
    self.model = None

  def process(self, readable):
    yield self.code(readable.metadata.path, readable.read)

  def code(self, path, read):
    """-> ("ok", path, per-image row or None) or ("failed", path, reason)."""
    from sae import codec, images
    name = posixpath.basename(path)
    try:
      source = path if _is_local(path) else io.BytesIO(read())
      image = images.load_image(source)
      if self.evaluate:
        from sae.eval import evaluate
        row, streams = evaluate.evaluate_image(self.model, image, name,
                                               self.num_layers)
        data = streams[-1]
      else:
        row, data = None, codec.encode(self.model, image, self.num_layers)
      _write(_join(self.output, _stem(path) + ".sae"), data)
    except (InputError, OSError) as e:
      reason = " ".join(str(e).split())
      print(f"error: {path}: {reason}", file=sys.stderr)
      return ("failed", path, reason)
    return ("ok", path, row)


def build(pipeline, pattern, work: CodeImage, results_path=None):
  """Adds the coding (and the results file) to ``pipeline``."""
  from apache_beam.io import fileio
  outcomes = (pipeline
              | "match" >> fileio.MatchFiles(pattern)
              | "spread" >> beam.Reshuffle()  # over the workers
              | "read" >> fileio.ReadMatches()
              | "code" >> beam.ParDo(work))
  failures = (outcomes
              | "failures" >> beam.Filter(lambda o: o[0] == "failed")
              | "failed lines" >> beam.combiners.ToList())
  _ = failures | "write failures" >> beam.Map(
      _write_failures, _join(work.output, FAILURES_FILE))
  if results_path is not None:
    rows = (outcomes
            | "measured" >> beam.Filter(lambda o: o[0] == "ok")
            | "rows" >> beam.combiners.ToList())
    _ = rows | "write results" >> beam.Map(
        _write_results, work, pattern, results_path)


def _write_failures(failed, path):
  if failed:
    lines = "".join(f"{p}: {reason}\n" for _, p, reason in sorted(failed))
    _write(path, lines.encode())


def _write_results(outcomes, work, pattern, path):
  """The collection's results file, its rows in file order as test_el3.py
  lists a folder."""
  from sae import checkpoints
  from sae.eval import evaluate
  from sae.fileio import write_json
  if not outcomes:
    return
  # For the weights ids (the coding tables are stored: seconds at most).
  model = checkpoints.load_model(work.weights, work.num_layers)
  per_image = [row for _, _, row in sorted(outcomes, key=lambda o: o[1])]
  folder = posixpath.basename(posixpath.dirname(pattern))
  summary = evaluate.model_summary(model, work.weights, per_image, folder)
  if _is_local(path):
    write_json(path, summary)
  else:
    import json
    _write(path, (json.dumps(summary, indent=2) + "\n").encode())


def run(args, pipeline_args) -> int:
  """The ``beam`` command: runs the pipeline to the end; 2 if a file failed."""
  _require_beam()
  import logging
  from sae.cli import cli
  cli.quiet_tensorflow()
  # Beam relays its workers' notices (unparseable options of the
  # DirectRunner's own, a missing semi-persistent folder) as warnings.
  logging.getLogger("apache_beam").setLevel(logging.ERROR)
  from apache_beam.io.filesystems import FileSystems
  from apache_beam.options.pipeline_options import PipelineOptions
  from sae import checkpoints
  weights = pathlib.Path(args.weights or checkpoints.DEFAULT_WEIGHTS)
  if not weights.is_dir():
    raise InputError(f"weights folder {str(weights)!r} does not exist")
  # The weights and their layers are checked here, before any worker starts.
  have = checkpoints.available_layers(weights)
  if not have:
    raise InputError(f"{str(weights)!r} holds no trained layer")
  if args.layers and args.layers > have:
    raise InputError(f"{args.layers} layers needed, but {str(weights)!r} has "
                     f"weights for {have}")
  matches = FileSystems.match([args.input])[0].metadata_list
  if not matches:
    raise InputError(f"no file matches {args.input!r}")
  output = args.output
  if _is_local(output):
    if not pathlib.Path(output).parent.is_dir():
      raise InputError(f"output directory {str(pathlib.Path(output).parent)!r} "
                       "does not exist")
    pathlib.Path(output).mkdir(exist_ok=True)
  elif not FileSystems.exists(output):
    FileSystems.mkdirs(output)
  failures = _join(output, FAILURES_FILE)
  if FileSystems.exists(failures):  # from an earlier run
    FileSystems.delete([failures])
  results = None
  if args.evaluate:
    results = args.results or _join(output, RESULTS_FILE)
  # Local workers (the DirectRunner's processes) import sae from here.
  root = str(pathlib.Path(__file__).resolve().parents[2])
  os.environ["PYTHONPATH"] = os.pathsep.join(
      p for p in (root, os.environ.get("PYTHONPATH")) if p)
  # Absolute: workers may run elsewhere (the results name it relative to
  # their working directory, as test_el3.py does to its own).
  work = CodeImage(weights.resolve(), args.layers, output, args.evaluate)
  with beam.Pipeline(options=PipelineOptions(pipeline_args)) as pipeline:
    build(pipeline, args.input, work, results)
  if FileSystems.exists(failures):
    with FileSystems.open(failures) as f:
      count = len(f.read().decode().splitlines())
    print(f"error: {count} of {len(matches)} file(s) failed: see {failures}",
          file=sys.stderr)
    return 2
  print(f"coded {len(matches)} file(s) into {output}"
        + (f"; results in {results}" if results else ""))
  return 0
