"""Load and faults for ``python -m sae serve``, over 127.0.0.1 only.

    python benchmarks/serve_load.py --clients 32 --duration 60 --kill-restart

Codes one image (kodak/kodim01.png when present) with
``--weights`` into a temporary folder, starts the real server on a free
loopback port and then:
  1. one client, sequential requests for k-layer files (keep-alive): the
     latency of serving a cut file alone;
  2. ``--clients`` threads, each with its own keep-alive connection, for
     ``--duration`` seconds: random k, a third of the file requests with a
     random byte Range, and a ``--images`` fraction of decoded PNGs.
Every body is checked: files and ranges against ``bitstream.truncate``,
PNGs against the first PNG of that layer count (and their size).  With
``--kill-restart`` the server is killed (SIGKILL) halfway and started again
on the same port; requests in between are counted apart, and every byte
served after the restart is checked the same way.  The server's peak RSS
(its own and its decoders') is sampled from /proc.

Bounded in time, loopback only; it stops the server it started.
"""

import argparse
import http.client
import json
import os
import pathlib
import random
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sae.stream import bitstream  # noqa: E402  (no TensorFlow in this process)

HOST = "127.0.0.1"
KODAK = ROOT / "kodak" / "kodim01.png"


def free_port() -> int:
  with socket.socket() as s:
    s.bind((HOST, 0))
    return s.getsockname()[1]


class Server:
  """The real server in its own process group (it and its decoders)."""

  def __init__(self, argv):
    self.argv = argv
    self.process = None
    self.peak_rss = {"server": 0, "decoders": 0}
    self._sampling = True
    threading.Thread(target=self._sample, daemon=True).start()

  def start(self, timeout=600, wait_ready=True):
    self.process = subprocess.Popen(self.argv, cwd=ROOT, stdout=subprocess.PIPE,
                                    stderr=subprocess.DEVNULL, text=True,
                                    start_new_session=True)
    started = time.time()
    line = self.process.stdout.readline()
    if not line.startswith("serving"):
      raise SystemExit(f"server did not start: {line!r}")
    self.listening_after = time.time() - started  # the port is bound
    if not wait_ready:
      return
    deadline = time.time() + timeout
    while time.time() < deadline:  # its decoders are ready (TensorFlow
      try:                          # loaded), so they do not skew timings
        conn = http.client.HTTPConnection(HOST, self.port, timeout=10)
        conn.request("GET", "/status")
        status = json.loads(conn.getresponse().read())
        conn.close()
        if status["ready"] == status["decoders"]:
          self.ready_after = time.time() - started
          return
      except OSError:
        pass
      time.sleep(0.2)
    raise SystemExit("server's decoders did not start")

  @property
  def port(self):
    return int(self.argv[self.argv.index("--port") + 1])

  def kill(self):
    os.killpg(self.process.pid, signal.SIGKILL)
    self.process.wait()

  def stop(self):
    self._sampling = False
    if self.process and self.process.poll() is None:
      os.killpg(self.process.pid, signal.SIGTERM)
      try:
        self.process.wait(30)
      except subprocess.TimeoutExpired:
        self.kill()

  def _sample(self):
    while self._sampling:
      process = self.process
      if process is not None and process.poll() is None:
        server, children = _rss(process.pid), 0
        for child in _children(process.pid):
          children += _rss(child)
        self.peak_rss["server"] = max(self.peak_rss["server"], server)
        self.peak_rss["decoders"] = max(self.peak_rss["decoders"], children)
      time.sleep(0.2)


def _rss(pid) -> int:
  try:
    with open(f"/proc/{pid}/status") as f:
      for line in f:
        if line.startswith("VmRSS:"):
          return int(line.split()[1]) * 1024
  except OSError:
    pass
  return 0


def _children(pid) -> list:
  try:
    with open(f"/proc/{pid}/task/{pid}/children") as f:
      return [int(c) for c in f.read().split()]
  except OSError:
    return []


def png_size(body):
  if body[:8] != b"\x89PNG\r\n\x1a\n":
    return None
  return struct.unpack(">II", body[16:24])  # width, height


class Tally:
  def __init__(self):
    self.lock = threading.Lock()
    self.latencies = {"file": [], "range": [], "image": []}
    self.errors = self.mismatches = self.busy = self.down = 0
    self.after_restart = 0
    self.error_samples = []


def client(stop_at, expected, images, tally, state, seed, image_fraction):
  rng = random.Random(seed)
  conn = None
  layers = len(expected)
  while time.time() < stop_at:
    k = rng.randint(1, layers)
    want = expected[k - 1]
    headers, kind = {}, "file"
    if rng.random() < image_fraction:
      path, kind = f"/images/s.sae.png?layers={k}", "image"
    else:
      path = f"/files/s.sae?layers={k}"
      if rng.random() < 1 / 3:
        start = rng.randrange(len(want))
        end = rng.randrange(start, len(want))
        headers["Range"] = f"bytes={start}-{end}"
        want, kind = want[start:end + 1], "range"
    restarted = state["restarted"]
    t = time.perf_counter()
    try:
      if conn is None:
        conn = http.client.HTTPConnection(HOST, state["port"], timeout=300)
      conn.request("GET", path, headers=headers)
      response = conn.getresponse()
      body = response.read()
      status = response.status
      if response.getheader("connection", "").lower() == "close":
        conn.close()
        conn = None
    except (OSError, http.client.HTTPException) as e:
      if conn is not None:
        conn.close()
      conn = None
      with tally.lock:
        if state["down"] or state["restarted"] != restarted:
          tally.down += 1  # the server was being killed and restarted
        else:
          tally.errors += 1
          tally.error_samples.append(f"{path}: {type(e).__name__} {e}")
      time.sleep(0.05)
      continue
    elapsed = time.perf_counter() - t
    with tally.lock:
      if state["restarted"]:
        tally.after_restart += 1
      if status == 503 and kind == "image":
        tally.busy += 1
        continue
      ok_status = 206 if kind == "range" else 200
      if status != ok_status:
        tally.errors += 1
        tally.error_samples.append(f"{path} {headers}: {status} {body[:80]!r}")
        continue
      tally.latencies[kind].append(elapsed)
      if kind == "image":
        first = images.setdefault(k, body)
        size = png_size(body)
        if body != first or size != state["image_size"]:
          tally.mismatches += 1
      elif body != want:
        tally.mismatches += 1
  if conn is not None:
    conn.close()


def summary(name, values):
  if not values:
    return f"{name:8s} none"
  values = sorted(values)
  p99 = values[min(len(values) - 1, int(0.99 * len(values)))]
  return (f"{name:8s} {len(values):7d} requests, median "
          f"{statistics.median(values) * 1000:7.2f} ms, p99 {p99 * 1000:7.2f} ms")


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--weights", default=str(ROOT / "weights" / "mse"))
  p.add_argument("--image", default=str(KODAK))
  p.add_argument("--stream", default=None,
                 help="serve this stream instead of coding --image")
  p.add_argument("--clients", type=int, default=32)
  p.add_argument("--duration", type=float, default=60)
  p.add_argument("--single", type=int, default=500,
                 help="sequential requests of the one-client phase")
  p.add_argument("--images", type=float, default=0.05,
                 help="fraction of requests for decoded PNGs")
  p.add_argument("--kill-restart", action="store_true",
                 help="SIGKILL the server halfway and start it again")
  p.add_argument("--decoders", type=int, default=1)
  p.add_argument("--queue", type=int, default=8)
  args = p.parse_args(argv)

  folder = pathlib.Path(tempfile.mkdtemp(prefix="sae-serve-load-"))
  try:
    if args.stream:
      shutil.copyfile(args.stream, folder / "s.sae")
      source = args.stream
    else:
      if not pathlib.Path(args.image).is_file():
        raise SystemExit(f"{args.image} is absent: pass --image or --stream")
      subprocess.run([sys.executable, "-m", "sae", "compress", args.image,
                      str(folder / "s.sae"), "--weights", args.weights],
                     cwd=ROOT, check=True)
      source = f"{args.image} coded by {args.weights}"
    data = (folder / "s.sae").read_bytes()
    parsed = bitstream.unpack(data)
    expected = [bitstream.truncate(data, k)
                for k in range(1, parsed.num_layers + 1)]
    port = free_port()
    server = Server([sys.executable, "-m", "sae", "serve", str(folder),
                     "--host", HOST, "--port", str(port), "--weights",
                     args.weights, "--decoders", str(args.decoders),
                     "--queue", str(args.queue)])
    server.start()
    try:
      run(args, server, expected, parsed, source, port)
    finally:
      server.stop()
  finally:
    shutil.rmtree(folder, ignore_errors=True)


def run(args, server, expected, parsed, source, port):
  print(f"stream: {source}; {parsed.width}x{parsed.height}, "
        f"{parsed.num_layers} layers, {len(expected[-1])} bytes "
        f"(k-layer files {', '.join(str(len(e)) for e in expected)})")

  # 1. One client.
  conn = http.client.HTTPConnection(HOST, port, timeout=60)
  rng, single, wrong = random.Random(1), [], 0
  for _ in range(args.single):
    k = rng.randint(1, parsed.num_layers)
    t = time.perf_counter()
    conn.request("GET", f"/files/s.sae?layers={k}")
    response = conn.getresponse()
    body = response.read()
    single.append(time.perf_counter() - t)
    wrong += response.status != 200 or body != expected[k - 1]
  conn.close()
  print(f"one client: {summary('file', single)}; wrong {wrong}")

  # 2. Many clients, with an optional kill and restart halfway.
  tally, images = Tally(), {}
  state = {"port": port, "down": False, "restarted": False,
           "image_size": (parsed.width, parsed.height)}
  start = time.time()
  stop_at = start + args.duration
  threads = [threading.Thread(target=client, args=(
      stop_at, expected, images, tally, state, seed, args.images))
             for seed in range(args.clients)]
  for t in threads:
    t.start()
  restarted = False
  if args.kill_restart:
    time.sleep(args.duration / 2)
    state["down"] = True
    server.kill()
    server.start(wait_ready=False)  # files are served at once
    restarted = True
    state["restarted"], state["down"] = True, False
  for t in threads:
    t.join()
  elapsed = time.time() - start
  done = sum(len(v) for v in tally.latencies.values())
  print(f"{args.clients} clients for {args.duration:g} s: {done} checked "
        f"responses, {done / elapsed:.0f} requests/s")
  for kind, values in tally.latencies.items():
    print("  " + summary(kind, values))
  print(f"  errors {tally.errors}, mismatched bodies {tally.mismatches}, "
        f"503 busy (images) {tally.busy}")
  for sample in tally.error_samples[:5]:
    print(f"    {sample}")
  if restarted:
    print(f"  killed and restarted halfway: listening again after "
          f"{server.listening_after:.1f} s; "
          f"{tally.down} requests failed while it was down, "
          f"{tally.after_restart} answered after the restart (all checked)")
  print(f"peak RSS: server {server.peak_rss['server'] / 2**20:.0f} MiB, "
        f"decoders {server.peak_rss['decoders'] / 2**20:.0f} MiB")
  print("command: python benchmarks/serve_load.py " + " ".join(
      sys.argv[1:]))
  if tally.errors or tally.mismatches:
    raise SystemExit(1)


if __name__ == "__main__":
  main()
