"""Fuzzes sae.codec.decode with mutated layered streams and counts outcomes.

    nice -n 19 python benchmarks/fuzz_stream.py [--cases 10000] [--seed 0]
        [--weights DIR ...] [--stream-version {1,2}] [--timeout 60]
        [--save-dir DIR] [--save-case N]
    nice -n 19 python benchmarks/fuzz_stream.py --replay DIR/case*.sae

For each model (``--weights``: by default every shipped model, the
folders tools/pin_shipped_streams.py pins; ``tiny`` is a randomly
initialised tiny 4-layer model)
a worker process loads it and codes a few random images of odd sizes in
``--stream-version`` (default the version the encoder writes; 1 makes
legacy streams); this process mutates those streams (cuts, bit flips, byte
changes, insertions, splices, absurd header fields and chunk lengths, and
crafted streams with valid checksums: damaged payloads, payloads under
another image size, layers dropped or repeated, the version relabelled)
and sends each to the worker.  Every outcome is one of:

  refused      sae.errors.InputError (counted by reason, numbers masked;
               "deadline" when a version-1 decode missed its deadline, after
               which the worker is restarted)
  decoded      an image of the header's size
  wrong-size   an image of another size               (a bug)
  crashed      another exception, or the worker died  (a bug)
  hung         no answer within --timeout seconds     (a bug)

Bug cases are written to --save-dir to replay; ``--save-case N`` writes case
N whatever its outcome.  Case i is generated from (seed, i) alone, so any
run is reproducible from its command line.
"""

import argparse
import collections
import multiprocessing
import pathlib
import random
import re
import struct
import sys
import time
import zlib

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

from sae.stream import bitstream  # noqa: E402  (no TensorFlow in this process)
from tools.pin_shipped_streams import shipped_models  # noqa: E402

IMAGE_SIZES = ((1, 1), (9, 13), (17, 31), (40, 24), (64, 80))
TINY = "tiny"
ROOT = pathlib.Path(__file__).resolve().parent.parent
BUGS = ("wrong-size", "crashed", "hung")


# The worker: owns TensorFlow and the model.


def _worker(conn, weights, seed, version):
  import os
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
  import numpy as np
  from sae import codec
  from sae.errors import InputError
  from sae.stream import legacy

  def encode(model, image, layers):
    if version == legacy.VERSION:
      return legacy.encode(model, image, layers)
    return codec.encode(model, image, layers)
  model = _load(weights, seed)
  rng = np.random.default_rng(seed)
  streams = []
  for i, (h, w) in enumerate(IMAGE_SIZES):
    image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    streams.append(encode(model, image, 1 + i % model.num_layers))
    streams.append(encode(model, image, model.num_layers))
  for stream in streams:  # trace decompress: timing starts warm
    codec.decode(model, stream)
  conn.send(("ready", streams, model.num_layers))
  while True:
    msg = conn.recv()
    if msg is None:
      return
    data, num_layers = msg
    t0 = time.perf_counter()
    try:
      image = codec.decode(model, data, num_layers)
    except legacy.DecodeTimeout as e:
      # The decoding thread may spin on: this worker is done.
      conn.send(("refused", f"deadline: {e}", time.perf_counter() - t0))
      conn.close()
      os._exit(0)
    except InputError as e:
      conn.send(("refused", str(e), time.perf_counter() - t0))
      continue
    except Exception as e:  # noqa: BLE001  what the fuzzer is looking for
      conn.send(("crashed", f"{type(e).__name__}: {e}"[:300],
                 time.perf_counter() - t0))
      continue
    head = bitstream.unpack(data)
    ok = image.shape == (head.height, head.width, 3) and image.dtype == np.uint8
    conn.send(("decoded" if ok else "wrong-size", str(image.shape),
               time.perf_counter() - t0))


def _load(weights, seed):
  if weights != TINY:
    from sae import checkpoints
    return checkpoints.load_model(weights)
  import tensorflow as tf
  from sae.config import get_preset
  from sae.models.model import ScalableAutoEncoder
  # Python, numpy and TF seeds: the same weights (ids) in every worker, so
  # saved cases replay.
  tf.keras.utils.set_random_seed(seed)
  model = ScalableAutoEncoder(get_preset("tiny").layers[:4])
  model.prepare_for_coding()
  return model


class Worker:
  """The worker process; restarted after a hang or a death."""

  def __init__(self, weights, seed, version):
    self.args = (weights, seed, version)
    self.start()

  def start(self):
    ctx = multiprocessing.get_context("spawn")  # TensorFlow is not fork-safe
    self.conn, child = ctx.Pipe()
    self.proc = ctx.Process(target=_worker, args=(child, *self.args),
                            daemon=True)
    self.proc.start()
    child.close()
    if not self.conn.poll(900):
      raise RuntimeError("worker did not start within 900 s")
    _, self.streams, self.num_layers = self.conn.recv()

  def decode(self, data, num_layers, timeout):
    try:
      self.conn.send((data, num_layers))
      if self.conn.poll(timeout):
        outcome = self.conn.recv()
        if not outcome[1].startswith("deadline: "):
          return outcome
        self.proc.join(timeout)  # it exits after a missed deadline
      else:
        outcome = ("hung", f"no answer in {timeout} s", timeout)
    except (EOFError, OSError, BrokenPipeError):
      outcome = ("crashed", f"worker died (exit {self.proc.exitcode})", 0.0)
    self.proc.kill()
    self.proc.join()
    self.start()
    return outcome

  def close(self):
    try:
      self.conn.send(None)
    except OSError:
      pass
    self.proc.join(10)


# Mutations: each takes (rng, stream, all streams) -> bytes.


def _flip_bits(rng, s, _):
  out = bytearray(s)
  for _ in range(rng.randint(1, 8)):
    bit = rng.randrange(8 * len(out))
    out[bit // 8] ^= 1 << (bit % 8)
  return bytes(out)


def _change_bytes(rng, s, _):
  out = bytearray(s)
  for _ in range(rng.randint(1, 4)):
    out[rng.randrange(len(out))] = rng.choice([0, 255, rng.randrange(256)])
  return bytes(out)


def _insert_delete(rng, s, _):
  pos = rng.randrange(len(s) + 1)
  if rng.random() < 0.5:
    return s[:pos] + bytes(rng.randrange(256) for _ in range(rng.randint(1, 16))) + s[pos:]
  return s[:pos] + s[pos + rng.randint(1, 16):]


def _chunks(s):
  parsed, pos, out = bitstream.unpack(s), bitstream.HEADER_BYTES, []
  for payload in parsed.payloads:
    out.append(s[pos:pos + 12 + len(payload)])
    pos += 12 + len(payload)
  return s[:bitstream.HEADER_BYTES], out


def _splice(rng, s, streams):
  head, chunks = _chunks(s)
  other_head, donor = _chunks(rng.choice(streams))
  if rng.random() < 0.2:  # one stream's header, another's chunks
    return other_head + b"".join(chunks)
  chunks[rng.randrange(len(chunks))] = rng.choice(donor)
  return head + b"".join(chunks)


def _header(magic=bitstream.MAGIC, version=bitstream.VERSION, layers=1,
            height=1, width=1, fix_crc=True):
  head = struct.pack(">4sBBHH", magic, version, layers, height, width)
  return head + struct.pack(">I", zlib.crc32(head) if fix_crc else 0)


def _absurd_header(rng, s, _):
  p = bitstream.unpack(s)
  fields = dict(layers=p.num_layers, height=p.height, width=p.width,
                version=p.version)
  key = rng.choice(["layers", "height", "width", "both", "version", "magic"])
  if key == "layers":
    fields["layers"] = rng.choice([0, p.num_layers + 1, 9, 255])
  elif key == "version":
    fields["version"] = rng.choice([0, 3, 255])
  elif key == "magic":
    fields["magic"] = rng.choice([b"SAE\x00", b"\x89PNG", b"\0\0\0\0"])
  else:
    value = rng.choice([0, 8193, 60000, 65535])
    for f in (["height", "width"] if key == "both" else [key]):
      fields[f] = value
  return _header(fix_crc=rng.random() < 0.8, **fields) + s[bitstream.HEADER_BYTES:]


def _chunk_length(rng, s, _):
  head, chunks = _chunks(s)
  k = rng.randrange(len(chunks))
  length = struct.unpack_from(">I", chunks[k])[0]
  new = rng.choice([0, 1, length - 1, length + 1, 2 * length + 7, 0x7FFFFFFF,
                    0xFFFFFFFF]) % (1 << 32)
  chunks[k] = struct.pack(">I", new) + chunks[k][4:]
  return head + b"".join(chunks)


def _payload_recrc(rng, s, _):
  """Damaged payload, checksums redone: reaches the range decoder."""
  p = bitstream.unpack(s)
  payloads = list(p.payloads)
  k = rng.randrange(len(payloads))
  old = payloads[k]
  how = rng.choice(["flip", "cut", "extend", "random", "empty", "zeros"])
  if how == "flip" and old:
    payloads[k] = _flip_bits(rng, old, None)
  elif how == "cut":
    payloads[k] = old[:rng.randrange(len(old) + 1)]
  elif how == "extend":
    payloads[k] = old + bytes(rng.randrange(256) for _ in range(rng.randint(1, 32)))
  elif how == "random":
    payloads[k] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 256)))
  elif how == "zeros":
    payloads[k] = bytes(rng.randint(1, 64))
  else:
    payloads[k] = b""
  return bitstream.pack(p.height, p.width, payloads, p.weights_ids, p.version)


def _resize_recrc(rng, s, _):
  """The payloads of one size under a header of another (valid checksums)."""
  p = bitstream.unpack(s)
  big = rng.random() < 0.02
  height = rng.randint(1, 1024 if big else 160)
  width = rng.randint(1, 1024 if big else 160)
  return bitstream.pack(height, width, p.payloads, p.weights_ids, p.version)


def _relayer_recrc(rng, s, streams):
  """Chunks dropped, repeated or taken from other streams; checksums redone."""
  p = bitstream.unpack(s)
  pool = list(p.payloads) + [q for o in streams
                             for q in bitstream.unpack(o).payloads]
  n = rng.randint(1, bitstream.MAX_LAYERS)
  payloads = [rng.choice(pool) for _ in range(n)]
  ids = list(p.weights_ids) + [rng.randbytes(4) for _ in range(n)]
  if rng.random() < 0.5:  # mostly keep the genuine ids so decoding is tried
    ids = [ids[min(k, len(p.weights_ids) - 1)] for k in range(n)]
  return bitstream.pack(p.height, p.width, payloads, ids[:n], p.version)


def _version_recrc(rng, s, _):
  """The same payloads under the other stream version (valid checksums)."""
  p = bitstream.unpack(s)
  other = [v for v in bitstream.SUPPORTED_VERSIONS if v != p.version]
  return bitstream.pack(p.height, p.width, p.payloads, p.weights_ids,
                        rng.choice(other))


def _cut(rng, s, _):
  return s[:rng.randrange(len(s))]


MUTATIONS = {
    "cut": _cut, "bit-flips": _flip_bits, "byte-changes": _change_bytes,
    "insert-delete": _insert_delete, "splice": _splice,
    "absurd-header": _absurd_header, "chunk-length": _chunk_length,
    "payload+crc": _payload_recrc, "resize+crc": _resize_recrc,
    "relayer+crc": _relayer_recrc,
}


def make_case(seed, index, streams, model_layers):
  rng = random.Random(f"{seed}:{index}")
  kind = rng.choice(sorted(MUTATIONS))
  data = MUTATIONS[kind](rng, rng.choice(streams), streams)
  # Now and then ask for a layer count, valid or not.
  num_layers = rng.randint(0, model_layers + 2) if rng.random() < 0.1 else None
  # Drawn last, so cases of earlier runs keep their numbers.
  if rng.random() < 0.05 and len(data) >= bitstream.HEADER_BYTES:
    try:
      data, kind = _version_recrc(rng, data, streams), kind + ",version+crc"
    except bitstream.StreamError:
      pass
  return kind, data, num_layers


def reason_class(message):
  """An error message with paths, ids and numbers masked."""
  message = re.sub(r"'[^']*'", "'…'", message)
  message = re.sub(r"weights [0-9a-f]{8}", "weights <id>", message)
  message = re.sub(r"\([0-9a-f]{8}\)", "(<id>)", message)
  return re.sub(r"\d+", "N", message)


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--cases", type=int, default=10000,
                 help="mutated streams per model")
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--weights", nargs="+", default=None, metavar="DIR",
                 help="weights folders, or 'tiny' for a tiny random-init "
                 "4-layer model (default: the shipped models, "
                 + ", ".join(shipped_models()) + ")")
  p.add_argument("--stream-version", type=int, default=bitstream.VERSION,
                 choices=bitstream.SUPPORTED_VERSIONS,
                 help="version of the streams to mutate (default: the one "
                 "the encoder writes)")
  p.add_argument("--timeout", type=float, default=60.0,
                 help="seconds after which a decode counts as hung")
  p.add_argument("--save-dir", default="fuzz_failures",
                 help="where bug cases are written")
  p.add_argument("--save-case", type=int, nargs="+", default=(), metavar="N",
                 help="also write these cases to --save-dir, whatever their "
                 "outcome")
  p.add_argument("--only", type=int, nargs="+", default=None, metavar="N",
                 help="run only these cases (of --cases), e.g. to time the "
                 "slowest of a run again")
  p.add_argument("--replay", nargs="+", default=None, metavar="FILE",
                 help="decode these saved cases instead of fuzzing")
  args = p.parse_args(argv)
  models = args.weights or [str(ROOT / w) for w in shipped_models()]
  if args.replay:
    for weights in models:
      worker = Worker(weights, args.seed, args.stream_version)
      for path in args.replay:
        data = pathlib.Path(path).read_bytes()
        outcome, detail, seconds = worker.decode(data, None, args.timeout)
        print(f"{weights}: {path}: {outcome} in {seconds:.3f} s: {detail}")
      worker.close()
    return 0
  status = 0
  for weights in models:
    status |= fuzz(args, weights)
  return status


def fuzz(args, weights):
  t0 = time.perf_counter()
  worker = Worker(weights, args.seed, args.stream_version)
  setup = time.perf_counter() - t0
  outcomes = collections.Counter()
  by_kind = collections.defaultdict(collections.Counter)
  reasons = collections.Counter()
  slowest = collections.defaultdict(lambda: (0.0, -1))
  bugs = []
  folder = pathlib.Path(args.save_dir)
  t0 = time.perf_counter()
  for i in args.only or range(args.cases):
    kind, data, num_layers = make_case(args.seed, i, worker.streams,
                                       worker.num_layers)
    outcome, detail, seconds = worker.decode(data, num_layers, args.timeout)
    outcomes[outcome] += 1
    by_kind[kind][outcome] += 1
    slowest[kind] = max(slowest[kind], (seconds, i))
    if outcome == "refused":
      reasons[reason_class(detail)] += 1
    elif outcome in BUGS:
      bugs.append((i, kind, outcome, detail))
    if outcome in BUGS or i in args.save_case:
      folder.mkdir(parents=True, exist_ok=True)
      (folder / f"case{i}_{outcome}.sae").write_bytes(data)
  worker.close()
  elapsed = time.perf_counter() - t0

  count = len(args.only) if args.only else args.cases
  print(f"{count} mutated version-{args.stream_version} streams in "
        f"{elapsed:.1f} s (+{setup:.1f} s model setup), model {weights}")
  print("\noutcomes:")
  for name in ("refused", "decoded") + BUGS:
    print(f"  {name:<11}{outcomes[name]:>7}")
  print("\nby mutation:            refused  decoded  bugs  slowest decode (case)")
  for kind in sorted(by_kind):
    c = by_kind[kind]
    seconds, case = slowest[kind]
    print(f"  {kind:<21}{c['refused']:>8}{c['decoded']:>9}"
          f"{sum(c[b] for b in BUGS):>6}{seconds:>12.3f} s ({case})")
  print("\nrefusal reasons:")
  for reason, n in reasons.most_common():
    print(f"  {n:>6}  {reason}")
  for i, kind, outcome, detail in bugs[:20]:
    print(f"BUG case {i} ({kind}): {outcome}: {detail}")
  print(f"\nreproduce: nice -n 19 python benchmarks/fuzz_stream.py "
        f"--cases {args.cases} --seed {args.seed} --weights {weights} "
        f"--stream-version {args.stream_version}"
        + (f" --only {' '.join(map(str, args.only))}" if args.only else "")
        + "\n")
  return 1 if bugs else 0


if __name__ == "__main__":
  sys.exit(main())
