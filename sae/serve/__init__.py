"""The layer server, ``python -m sae serve DIR`` (docs/serving.md), one
concern a module:

  app.py      the routes, the request limits, Settings and the entry point
              (run, build_app); the only module that imports Starlette and
              uvicorn
  paths.py    the served folder: which names may be read, and reading them
  cache.py    ByteCache, the server's memory, bounded in bytes
  ranges.py   ETags, If-None-Match and Range
  pool.py     the decoder worker processes, which own TensorFlow
  refusal.py  Refusal: a 4xx or 5xx with a one-line reason
  static/     the viewer page

Nothing is imported here: sae.cli.commands imports sae.serve.app once it
knows the serve extra is installed, and a decoder process imports
sae.serve.pool and what it needs, not the web application.
"""
