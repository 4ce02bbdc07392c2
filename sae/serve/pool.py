"""The decoder pool: worker processes that own TensorFlow, and the queue in
front of them.

Its own module because decoding is the one part of the layer server that
needs TensorFlow, and it lives in other processes: the server process never
imports TensorFlow (cutting a file to k layers only parses the container),
while each worker (spawned, nothing inherited) loads the weights once,
traces the decoding graphs before it says it is ready, and encodes PNGs.
At most ``decoders`` decode at a time and ``queue`` wait; beyond that a
Refusal(503).  A decode that misses ``decode_timeout`` has its worker
killed and restarted, because a hostile legacy stream can keep
tensorflow-compression's range decoder spinning where no thread can stop
it.  A spawned worker imports this module and what it imports, not the web
application.
"""

import asyncio
import concurrent.futures
import io
import logging
import multiprocessing
import os
import threading
import time
import traceback

from sae.errors import InputError
from sae.serve.refusal import Refusal

# Importing TensorFlow, loading the weights and tracing: seconds on an idle
# machine, over five minutes on one oversubscribed tenfold.
WORKER_START_SECONDS = 900
PNG_LEVEL = 3              # zlib level of decoded PNGs: fast, about as small

log = logging.getLogger(__name__)


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
