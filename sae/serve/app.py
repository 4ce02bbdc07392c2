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

This module holds the routes (Server), the request limits (RequestLimits),
Settings and the entry point (run), and is the only one that imports
Starlette and uvicorn; the folder (paths), the memory (cache), the HTTP
ranges (ranges) and the decoders (pool) have their own modules, listed in
sae/serve/__init__.py.
"""

import asyncio
import contextlib
import dataclasses
import logging
import os
import pathlib
import re
import socket
import sys
import traceback

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
import uvicorn

from sae.errors import InputError
from sae.serve import cache, paths, pool, ranges
from sae.serve.refusal import Refusal
from sae.stream import bitstream

STATIC = pathlib.Path(__file__).resolve().parent / "static"
VIEWER = STATIC / "viewer.html"
MAX_TARGET = 2048          # bytes of path plus query string
MAX_LISTED = 1000          # files /list reports

log = logging.getLogger(__name__)


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


# The application.


LAYERS_PARAM = re.compile(r"[1-9][0-9]?")


class Server:
  """Request handlers over one folder, one cache and one decoder pool."""

  def __init__(self, settings):
    self.settings = settings
    self.folder = paths.Folder(settings.folder, settings.max_file_bytes)
    self.cache = cache.ByteCache(settings.cache_bytes)
    self.pool = pool.DecoderPool(settings)
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
