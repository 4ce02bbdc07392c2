"""``compress`` / ``decompress`` of many files in one process, like ``cp``.

    python -m sae compress a.png b.jpg out/      # out/a.sae, out/b.sae
    python -m sae compress photos/ out/          # every image in photos/
    python -m sae decompress streams/ out/       # out/<name>.png

The last argument is the output folder (created if missing, its parent must
exist); a folder among the inputs stands for the files directly in it
(images for ``compress``, ``*.sae`` streams for ``decompress``).  The model
is loaded once.  An output that is newer than its input is skipped (it is
up to date) unless ``--force``.  A file that cannot be coded is reported on
one line naming it and the others go on; the exit status is then 2.  Every
output is written through a temporary file and a rename, so a failure or an
interruption never leaves a partial file.

A single input file and an output that is not a folder is the one-file
command, unchanged.  This module plans and runs the files; sae.cli.commands
says how one file is read and coded.
"""

import dataclasses
import os
import pathlib
import sys
import time
from concurrent import futures

from sae.errors import InputError

STREAM_SUFFIX = ".sae"


def is_batch(inputs, output) -> bool:
  """Whether the arguments ask for the folder form (several inputs, an input
  folder or an output folder) rather than one file to one file."""
  return (len(inputs) > 1 or os.path.isdir(inputs[0]) or
          os.path.isdir(output))


@dataclasses.dataclass
class Job:
  source: pathlib.Path
  target: pathlib.Path


def plan(inputs, output, suffixes, out_suffix, force) -> tuple:
  """The jobs the arguments ask for -> (jobs to run, up-to-date count).

  Raises:
    InputError: a missing input, no input file at all, two inputs that
      would write the same output, or an output folder that cannot be made.
  """
  from sae.images import list_images
  sources = []
  for name in inputs:
    path = pathlib.Path(name)
    if path.is_dir():
      sources += [pathlib.Path(p) for p in list_images(
          path, suffixes=suffixes, recursive=False)]
    elif path.is_file():
      sources.append(path)
    else:
      raise InputError(f"input {name!r} does not exist")
  if not sources:
    raise InputError(f"no {'/'.join(suffixes)} files in "
                     f"{', '.join(repr(str(i)) for i in inputs)}")
  out = pathlib.Path(output)
  if out.exists() and not out.is_dir():
    raise InputError(f"output {str(out)!r} is not a folder (several inputs "
                     "go into a folder)")
  if not out.parent.is_dir():
    raise InputError(f"output directory {str(out.parent)!r} does not exist")
  jobs, seen, up_to_date = [], {}, 0
  for source in sources:
    target = out / (source.stem + out_suffix)
    if target in seen:
      raise InputError(f"{str(source)!r} and {str(seen[target])!r} would "
                       f"both be written to {str(target)!r}")
    seen[target] = source
    if not force and _newer(target, source):
      up_to_date += 1
      continue
    jobs.append(Job(source, target))
  out.mkdir(exist_ok=True)
  return jobs, up_to_date


def _newer(target, source) -> bool:
  try:
    return target.stat().st_mtime_ns > source.stat().st_mtime_ns
  except FileNotFoundError:
    return False


def run(verb, jobs, skipped, read, code, progress) -> int:
  """Runs ``code(job, read(job))`` for every job, reading the next input on
  a second thread while one is coded; reports failures and a summary."""
  import tqdm
  show = progress and sys.stderr.isatty()
  failed, done, written = 0, 0, 0
  start = time.perf_counter()
  with futures.ThreadPoolExecutor(1) as reader, tqdm.tqdm(
      total=len(jobs), desc=verb, unit="image", disable=not show,
      file=sys.stderr) as bar:
    pending = reader.submit(read, jobs[0]) if jobs else None
    for i, job in enumerate(jobs):
      current = pending
      pending = reader.submit(read, jobs[i + 1]) if i + 1 < len(jobs) else None
      try:
        written += code(job, current.result())
        done += 1
      except (InputError, OSError) as e:
        failed += 1
        message = (f"{e.strerror}" if isinstance(e, OSError) and e.strerror
                   else str(e))
        bar.write(f"error: {job.source}: {' '.join(message.split())}",
                  file=sys.stderr)
      bar.update(1)
  seconds = time.perf_counter() - start
  rate = done / seconds if seconds > 0 else 0.0
  print(f"{verb}ed {done} file(s), {written:,} bytes written in "
        f"{seconds:.1f} s ({rate:.2f} images/s); {skipped} up to date, "
        f"{failed} failed")
  return 2 if failed else 0
