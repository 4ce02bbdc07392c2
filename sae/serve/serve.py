"""``python -m sae serve DIR``: a folder's streams, cut to any layer count,
and their decoded images over HTTP, with a viewer page.

Routes (a contract: tests, benchmarks/serve_load.py and the viewer rely on
them; NAME is a file name in DIR, without folders):

    GET /files/NAME?layers=k       the k-layer file (default: every complete
                                   layer), byte for byte what `python -m sae
                                   truncate` writes; ETag, Range (206, 416)
    GET /images/NAME.png?layers=k  the image decoded from k layers, PNG
    GET /info/NAME                 the JSON `python -m sae info` prints
    GET /list                      JSON: the streams in DIR
    GET /status                    JSON: decoders, queue, cache, restarts
    GET /                          the viewer page (sae/serve/static/viewer.html)

This process never imports TensorFlow: cutting a file to k layers only
parses the container (sae.stream.bitstream), so /files answers in about a
millisecond.  Decoding runs in worker processes that own TensorFlow, at most
``--decoders`` at a time with at most ``--queue`` waiting (503 beyond); a
decode that misses ``--decode-timeout`` has its worker killed and restarted,
because a hostile legacy stream can keep tensorflow-compression's range
decoder spinning where no thread can stop it.  Bad requests get a 4xx with a
one-line reason, and no traceback ever reaches a client.  docs/serving.md
says more.
"""

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import io
import json
import logging
import multiprocessing
import os
import pathlib
import re
import socket
import sys
import threading
import time
import traceback

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
import uvicorn

from sae.errors import InputError
from sae.serve import cache, paths, ranges
from sae.serve.refusal import Refusal
from sae.stream import bitstream

STATIC = pathlib.Path(__file__).resolve().parent / "static"
VIEWER = STATIC / "viewer.html"
MAX_TARGET = 2048          # bytes of path plus query string
MAX_LISTED = 1000          # files /list reports
# Importing TensorFlow, loading the weights and tracing: seconds on an idle
# machine, over five minutes on one oversubscribed tenfold.
WORKER_START_SECONDS = 900
PNG_LEVEL = 3              # zlib level of decoded PNGs: fast, about as small

log = logging.getLogger("sae.serve.serve")


@dataclasses.dataclass(frozen=True)
class Settings:
  """What `python -m sae serve` was told (sae.cli.commands holds the defaults)."""

  folder: str
  weights: str = None
  decoders: int = 1
  queue: int = 8
  decode_timeout: float = 30.0
  max_pixels: int = 4096 * 4096
  max_file_bytes: int = 64 << 20
  cache_bytes: int = 128 << 20

  @classmethod
  def from_args(cls, args):
    folder = pathlib.Path(args.folder)
    if not folder.is_dir():
      raise InputError(f"folder {args.folder!r} does not exist")
    if args.weights is not None and not pathlib.Path(args.weights).is_dir():
      raise InputError(f"weights folder {args.weights!r} does not exist")
    return cls(str(folder), args.weights, args.decoders, args.queue,
               args.decode_timeout, args.max_pixels, args.max_file_bytes,
               args.cache_mb << 20)


# Decoding: worker processes that own TensorFlow.


def _worker_main(conn, weights, log_level):
  """A decoding process: loads the model, then decodes what it is sent.

  Messages in: (stream bytes of k layers, k).  Out: ("ready", layers) once,
  then per job ("ok", png) | ("refused", reason, recycle) | ("error", reason,
  recycle); recycle asks the server to replace this process.
  """
  import signal
  signal.signal(signal.SIGINT, signal.SIG_IGN)  # the server stops us
  logging.basicConfig(level=log_level, format="sae serve: %(message)s")
  _exit_with_parent()
  try:
    from sae.cli.cli import quiet_tensorflow
    quiet_tensorflow()
    from sae import checkpoints, codec
    model = checkpoints.load_model(weights)  # None: the shipped weights
    _warm_up(model)
  except Exception as e:  # noqa: BLE001  any failure is reported, not raised
    conn.send(("failed", " ".join(str(e).split()) or type(e).__name__))
    return
  conn.send(("ready", model.num_layers))
  from sae.stream import legacy
  timeout_error = legacy.DecodeTimeout
  while True:
    try:
      data, k = conn.recv()
    except (EOFError, OSError):
      return
    try:
      conn.send(("ok", _png(codec.decode(model, data, k))))
    except timeout_error as e:  # a thread still spins: replace this process
      conn.send(("refused", str(e), True))
      os._exit(0)  # a normal exit could wait on the spinning thread
    except InputError as e:
      conn.send(("refused", " ".join(str(e).split()), False))
    except Exception:  # noqa: BLE001  logged here, never sent to a client
      traceback.print_exc()
      conn.send(("error", "the decoder failed on this stream", True))
      os._exit(1)


def _warm_up(model) -> None:
  """Traces the decoding graphs before the worker says it is ready, so that
  a request's deadline covers decoding, not tracing (seconds, a minute on a
  busy machine).  The version-2 graph also runs once, on empty payloads,
  which it refuses in bounded time; the legacy graph is only traced: an
  empty payload could keep tfc's decoder spinning."""
  import tensorflow as tf
  strings = tf.constant([b""] * model.num_layers, tf.string)
  shape = tf.constant([16, 16], tf.int32)
  # sae.codec decodes small images (one band) and large ones with
  # different functions: both are warmed.
  for decompress in (model.decompress_one_band, model.decompress):
    try:
      decompress(strings, shape)
    except tf.errors.InvalidArgumentError:
      pass  # refused, as it should be: the graph ran
  from sae.stream import legacy
  legacy.warm_up(model)


def _exit_with_parent():
  """Ends this worker when the server dies, even in the middle of a decode
  (a pipe's end is only noticed between jobs)."""
  parent = os.getppid()

  def watch():
    while os.getppid() == parent:
      time.sleep(0.5)
    os._exit(0)

  threading.Thread(target=watch, daemon=True, name="parent-watch").start()


def _png(image) -> bytes:
  from PIL import Image
  buf = io.BytesIO()
  Image.fromarray(image).save(buf, "PNG", compress_level=PNG_LEVEL)
  return buf.getvalue()


class Worker:
  """One decoding process, driven from one pool thread at a time."""

  _context = multiprocessing.get_context("spawn")  # nothing inherited

  def __init__(self, index, settings):
    self.index = index
    self.settings = settings
    self.process = None
    self.conn = None
    self.ready = False
    self.restarts = 0
    self._lock = threading.Lock()

  def spawn(self) -> None:
    parent, child = self._context.Pipe()
    self.process = self._context.Process(
        target=_worker_main, name=f"sae-decoder-{self.index}", daemon=True,
        args=(child, self.settings.weights, log.getEffectiveLevel()))
    self.process.start()
    child.close()
    self.conn, self.ready = parent, False

  def stop(self) -> None:
    """Kills the process; safe from any thread, and twice (the server may
    stop while a pool thread gives up on a worker)."""
    with self._lock:
      process, conn = self.process, self.conn
      self.process = self.conn = None
    if process is not None:
      process.kill()
      process.join(5)
      conn.close()

  def restart(self, why) -> None:
    log.warning("decoder %d restarted: %s", self.index, why)
    self.stop()
    self.restarts += 1
    self.spawn()

  def decode(self, data, k) -> bytes:
    """Blocking: the PNG of ``data`` decoded at ``k`` layers.

    Raises:
      Refusal: 422 a bad stream or a missed deadline, 500 a failed decoder.
    """
    if self.process is None or not self.process.is_alive():
      self.restart("it had stopped")
    if not self.ready:
      self._wait_ready()
    self.conn.send((data, k))
    if not self.conn.poll(self.settings.decode_timeout):
      self.restart(f"a decode missed its {self.settings.decode_timeout:g} s "
                   "deadline")
      raise Refusal(422, f"decoding took longer than "
                    f"{self.settings.decode_timeout:g} s and was stopped")
    try:
      reply = self.conn.recv()
    except (EOFError, OSError):
      self.restart("it died while decoding")
      raise Refusal(500, "the decoder failed on this stream") from None
    if reply[0] == "ok":
      return reply[1]
    if reply[2]:
      self.restart(reply[1])
    raise Refusal(422 if reply[0] == "refused" else 500, reply[1])

  def start_up(self) -> None:
    """Blocking: waits until a freshly spawned worker is ready; a failure
    is logged and left for the next decode to retry."""
    try:
      self._wait_ready()
    except Exception:  # noqa: BLE001  the next decode retries; or shutting down
      pass

  def _wait_ready(self) -> None:
    conn = self.conn
    if conn is None:
      raise Refusal(503, "the server is stopping", {"Retry-After": "5"})
    if not conn.poll(WORKER_START_SECONDS):
      self.restart("it did not start in time")
      raise Refusal(503, "the decoder is starting; retry later",
                    {"Retry-After": "5"})
    try:
      kind, value = conn.recv()
    except (EOFError, OSError):
      kind, value = "failed", "it exited while starting"
    if kind != "ready":
      log.error("decoder %d cannot start: %s", self.index, value)
      self.stop()
      raise Refusal(500, "the decoder cannot start (see the server's log)")
    self.ready = True
    log.info("decoder %d ready (%d layers)", self.index, value)


class DecoderPool:
  """At most ``decoders`` decodes at a time and ``queue`` waiting; beyond
  that a Refusal(503)."""

  def __init__(self, settings):
    self.settings = settings
    self.workers = [Worker(i, settings) for i in range(settings.decoders)]
    self.admitted = 0
    self._idle = None
    self._threads = concurrent.futures.ThreadPoolExecutor(
        settings.decoders, thread_name_prefix="sae-decode")

  def start(self) -> None:
    """Starts the workers; each joins the idle queue once it is ready (or
    failed to start: its first decode then tries again)."""
    self._idle = asyncio.Queue()
    loop = asyncio.get_running_loop()
    for worker in self.workers:
      worker.spawn()
      starting = loop.run_in_executor(self._threads, worker.start_up)
      starting.add_done_callback(
          lambda _, worker=worker: self._idle.put_nowait(worker))

  def stop(self) -> None:
    for worker in self.workers:
      worker.stop()
    self._threads.shutdown(wait=False)

  @property
  def running(self) -> int:
    """Workers busy decoding (or starting)."""
    return self.settings.decoders - self._idle.qsize()

  async def decode(self, data, k) -> bytes:
    limit = self.settings.decoders + self.settings.queue
    if self.admitted >= limit:
      raise Refusal(503, f"busy: {self.settings.decoders} decodes running and "
                    f"{self.settings.queue} waiting; retry later",
                    {"Retry-After": "1"})
    self.admitted += 1
    try:
      worker = await self._idle.get()
      job = asyncio.get_running_loop().run_in_executor(
          self._threads, worker.decode, data, k)
      try:
        return await asyncio.shield(job)
      finally:
        # Back to the idle queue once the thread is done with it, even if
        # this request was cancelled meanwhile.
        job.add_done_callback(lambda _: self._idle.put_nowait(worker))
    finally:
      self.admitted -= 1


# The application.


LAYERS_PARAM = re.compile(r"[1-9][0-9]?")


class Server:
  """Request handlers over one folder, one cache and one decoder pool."""

  def __init__(self, settings):
    self.settings = settings
    self.folder = paths.Folder(settings.folder, settings.max_file_bytes)
    self.cache = cache.ByteCache(settings.cache_bytes)
    self.pool = DecoderPool(settings)
    # name -> Entry (the file's bytes, parsed) as of its latest stat,
    # bounded in bytes like the cache of cut files and PNGs.
    self._entries = cache.ByteCache(settings.cache_bytes)
    self._decoding = {}  # cache key -> future PNG, shared by equal requests
    self._viewer = VIEWER.read_bytes()

  # Files.

  async def entry(self, name) -> paths.Entry:
    path, stamp = self.folder.stamp(name)
    entry = self._entries.get(name)
    if entry is None or entry.stamp != stamp:
      entry = await run_in_threadpool(self.folder.read, name, path)
      self._entries.put(name, entry, len(entry.data))
    return entry

  def cut(self, entry, k):
    """(bytes, etag) of ``entry`` cut to ``k`` layers."""
    if k == entry.declared == entry.stream.num_layers:
      return entry.data, entry.etag
    key = ("file", entry.stamp, k)
    hit = self.cache.get(key)
    if hit is None:
      data = bitstream.repack(entry.stream.prefix(k))
      hit = (data, ranges.etag_of(data))
      self.cache.put(key, hit, len(data))
    return hit

  @staticmethod
  def layers(request, entry) -> int:
    have = entry.stream.num_layers
    text = request.query_params.get("layers")
    if text is None:
      return have
    if not LAYERS_PARAM.fullmatch(text) or not 1 <= int(text) <= have:
      raise Refusal(400, f"layers must be an integer in 1..{have} for "
                    f"{entry.name!r}, got {text[:20]!r}")
    return int(text)

  async def files(self, request):
    entry = await self.entry(request.path_params["name"])
    k = self.layers(request, entry)
    data, etag = self.cut(entry, k)
    headers = {"ETag": etag, "Accept-Ranges": "bytes",
               "Cache-Control": "no-cache", "X-SAE-Layers": str(k)}
    if ranges.matches(request.headers.get("if-none-match"), etag):
      return Response(status_code=304, headers=headers)
    span = None
    if_range = request.headers.get("if-range")
    if if_range is None or if_range == etag:
      span = ranges.byte_range(request.headers.get("range"), len(data))
    if span is None:
      return Response(data, headers=headers,
                      media_type="application/octet-stream")
    start, end = span
    headers["Content-Range"] = f"bytes {start}-{end - 1}/{len(data)}"
    return Response(data[start:end], status_code=206, headers=headers,
                    media_type="application/octet-stream")

  async def images(self, request):
    name = request.path_params["name"]
    if not name.endswith(".png"):
      raise Refusal(404, "images are at /images/NAME.png")
    entry = await self.entry(name[:-len(".png")])
    k = self.layers(request, entry)
    stream = entry.stream
    pixels = stream.height * stream.width
    if pixels > self.settings.max_pixels:
      raise Refusal(422, f"{entry.name!r} is {stream.width}x{stream.height}: "
                    f"this server decodes at most {self.settings.max_pixels} "
                    "pixels")
    _, file_etag = self.cut(entry, k)
    etag = '"png-' + file_etag.strip('"') + '"'
    headers = {"ETag": etag, "Cache-Control": "no-cache",
               "X-SAE-Layers": str(k)}
    if ranges.matches(request.headers.get("if-none-match"), etag):
      return Response(status_code=304, headers=headers)
    key = ("png", entry.stamp, k)
    png = self.cache.get(key)
    if png is None:
      png = await self._decode_once(key, entry, k)
    return Response(png, headers=headers, media_type="image/png")

  async def _decode_once(self, key, entry, k) -> bytes:
    """Decodes (entry, k), or waits for the same decode already running."""
    pending = self._decoding.get(key)
    if pending is None:
      data, _ = self.cut(entry, k)
      pending = asyncio.ensure_future(self.pool.decode(data, k))
      self._decoding[key] = pending

      def done(future):
        self._decoding.pop(key, None)
        if not future.cancelled() and future.exception() is None:
          self.cache.put(key, future.result(), len(future.result()))

      pending.add_done_callback(done)
    return await asyncio.shield(pending)

  async def info(self, request):
    entry = await self.entry(request.path_params["name"])
    return JSONResponse(bitstream.describe(entry.data))

  async def listing(self, request):
    files, skipped = [], 0
    names = await run_in_threadpool(self.folder.names)
    for name in names[:MAX_LISTED]:
      try:
        entry = await self.entry(name)
      except Refusal:
        skipped += 1
        continue
      stream = entry.stream
      files.append({"name": name, "bytes": len(entry.data),
                    "width": stream.width, "height": stream.height,
                    "layers": stream.num_layers,
                    "declared_layers": entry.declared,
                    "version": stream.version})
    return JSONResponse({"files": files, "skipped": skipped,
                         "truncated": len(names) > MAX_LISTED})

  async def status(self, request):
    return JSONResponse({
        "decoders": self.settings.decoders,
        "ready": sum(w.ready for w in self.pool.workers),
        "running": self.pool.running,
        "admitted": self.pool.admitted, "queue": self.settings.queue,
        "restarts": sum(w.restarts for w in self.pool.workers),
        "cache_entries": len(self.cache), "cache_bytes": self.cache.used,
        "tensorflow_loaded": sys.modules.get("tensorflow") is not None})

  async def viewer(self, request):
    return Response(self._viewer, media_type="text/html; charset=utf-8",
                    headers={"Cache-Control": "no-cache"})


class RequestLimits:
  """ASGI middleware: only GET and HEAD, no body, bounded targets."""

  def __init__(self, app):
    self.app = app

  async def __call__(self, scope, receive, send):
    if scope["type"] != "http":
      return await self.app(scope, receive, send)
    reason = None
    if scope["method"] not in ("GET", "HEAD"):
      reason = (405, "only GET and HEAD are served")
    elif len(scope.get("raw_path", b"")) + len(scope["query_string"]) > MAX_TARGET:
      reason = (414, f"request target longer than {MAX_TARGET} bytes")
    else:
      for key, value in scope["headers"]:
        if ((key == b"content-length" and value.strip() != b"0") or
            key == b"transfer-encoding"):
          reason = (413, "requests to this server have no body")
          break
    if reason is None:
      return await self.app(scope, receive, send)
    response = PlainTextResponse(reason[1] + "\n", reason[0],
                                 headers={"Connection": "close"})
    return await response(scope, receive, send)


def build_app(settings) -> Starlette:
  server = Server(settings)

  async def refused(request, exc):
    return PlainTextResponse(exc.reason + "\n", exc.status, headers=exc.headers)

  async def http_error(request, exc):
    reason = {404: "no such route; see /list and /"}.get(
        exc.status_code, exc.detail)
    return PlainTextResponse(f"{reason}\n", exc.status_code,
                             headers=getattr(exc, "headers", None))

  async def crashed(request, exc):
    log.error("internal error on %s:\n%s", request.url.path,
              "".join(traceback.format_exception(exc)))
    return PlainTextResponse("internal error\n", 500)

  @contextlib.asynccontextmanager
  async def lifespan(app):
    server.pool.start()
    try:
      yield
    finally:
      server.pool.stop()

  app = Starlette(
      routes=[Route("/", server.viewer),
              Route("/files/{name}", server.files),
              Route("/images/{name}", server.images),
              Route("/info/{name}", server.info),
              Route("/list", server.listing),
              Route("/status", server.status)],
      exception_handlers={Refusal: refused, HTTPException: http_error,
                          Exception: crashed},
      lifespan=lifespan)
  app.state.server = server
  return RequestLimits(app)


def listen(host, port) -> socket.socket:
  """A listening socket, bound before the server starts so the real port
  (``--port 0``) is known and printed."""
  try:
    family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
    # IPPROTO_TCP spelled out: asyncio turns Nagle's algorithm off only on
    # sockets that say so, and with it on, a keep-alive response's body
    # waits ~40 ms for the client's delayed ACK of its headers.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
  except OSError as e:
    raise InputError(f"cannot listen on {host}:{port}: "
                     f"{e.strerror or e}") from None
  sock.listen(1024)
  return sock


def run(args) -> int:
  settings = Settings.from_args(args)
  logging.basicConfig(level=logging.INFO, format="sae serve: %(message)s")
  sock = listen(args.host, args.port)
  host, port = sock.getsockname()[:2]
  shown = f"[{host}]" if ":" in host else host
  print(f"serving {os.path.realpath(settings.folder)} at http://{shown}:"
        f"{port}/", flush=True)
  config = uvicorn.Config(
      build_app(settings), log_level="warning", access_log=False,
      lifespan="on", timeout_keep_alive=5, server_header=False,
      h11_max_incomplete_event_size=16 << 10, limit_concurrency=512)
  uvicorn.Server(config).run(sockets=[sock])
  return 0
