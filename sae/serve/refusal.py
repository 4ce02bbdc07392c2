"""Refusal: how every part of the layer server says no.

Its own module because the folder (paths), the decoder pool (pool), the
HTTP ranges (ranges) and the application (app) all raise it, and the
application's one exception handler turns it into the client's 4xx or 5xx
with a one-line reason; here none of them has to import another for it.
"""


class Refusal(Exception):
  """A request answered with ``status`` and a one-line ``reason``."""

  def __init__(self, status, reason, headers=None):
    super().__init__(reason)
    self.status, self.reason, self.headers = status, reason, headers or {}
