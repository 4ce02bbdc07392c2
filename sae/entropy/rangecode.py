"""Range coding whose decoder runs in time bounded by the symbols it decodes.

tensorflow-compression's range coder codes a symbol outside its table with
an overflow escape: the escape interval, then the value in Elias gamma code.
Its decoder reads the gamma prefix in a loop with no bound
(``OverflowDecode`` in tensorflow_compression/cc/kernels/range_coder_kernels.cc,
2.14.1): past the end of the data it reads zero bits forever, so a stream
that is not what the encoder wrote can keep it spinning (issue #23).

A table row whose precision is positive has no escape path; the kernel then
decodes the escape interval as an ordinary symbol.  So this module codes
with the same rows, made positive:

  1. every symbol, with out-of-table symbols replaced by the row's escape
     symbol (the last interval), at the same cost as tfc's escape interval;
  2. then, in the same range code, one value per escaped symbol, in coding
     order, from a fixed table (ESCAPE_CDF): the zigzag distance from the
     table, 2·(s − escape) above it, 2·(−1 − s) + 1 below it.

Decoding reads exactly ``n + E`` symbols, E ≤ n being the escape symbols
decoded in step 1, each in O(log table size).  Where a layer has no
out-of-table symbol the code is byte for byte tfc's (same intervals, same
order); otherwise a few bytes differ (an escaped value costs about as much
as its gamma code).  The escape table covers 2048 quantization steps on
either side of a row; a latent beyond that is refused at encoding (trained
models stay far inside: the tails of their tables hold 2^-8 of the mass).

Rows and indexes follow tfc: ``cdf`` is tfc's flat table (each row starts
with its negative precision), ``index`` names each symbol's row.
"""

import numpy as np
import tensorflow as tf
from tensorflow_compression.python.ops import gen_ops

ESCAPE_PRECISION = 16
ESCAPE_SYMBOLS = 4096


def _escape_cdf() -> np.ndarray:
  """A fixed geometric table over 0..ESCAPE_SYMBOLS-1: most escapes are a
  step or two outside the table, so small distances get most of the mass."""
  z = np.arange(ESCAPE_SYMBOLS)
  counts = np.maximum(1, (1 << 13) >> np.minimum(z // 2, 31))
  counts[0] += (1 << ESCAPE_PRECISION) - counts.sum()
  return np.concatenate([[ESCAPE_PRECISION, 0], np.cumsum(counts)]).astype(np.int32)


ESCAPE_CDF = _escape_cdf()


class Tables:
  """A tfc table made escape-free, plus the escape row, ready to code with.

  Attributes:
    lookup: int32 (N,) the rows with positive precisions, then ESCAPE_CDF.
    escape_symbol: int32 (R,) each row's escape symbol (its last interval).
    escape_row: the index of ESCAPE_CDF among the rows (R).
  """

  def __init__(self, cdf):
    cdf = np.asarray(cdf, np.int32)
    starts = np.flatnonzero(cdf < 0)
    if cdf.size == 0 or starts.size == 0 or starts[0] != 0:
      raise ValueError("expected tfc's flat table: rows led by negative precisions")
    escape = []
    for start, end in zip(starts, list(starts[1:]) + [cdf.size]):
      row = cdf[start + 1:end]
      top = np.flatnonzero(row == 1 << -cdf[start])
      if row.size < 2 or row[0] != 0 or top.size == 0:
        raise ValueError(f"table row at {start} is not a CDF")
      escape.append(top[0] - 1)  # intervals - 1
    self.lookup = tf.constant(np.concatenate([np.abs(cdf), ESCAPE_CDF]))
    self.escape_symbol = tf.constant(np.asarray(escape, np.int32))
    self.escape_row = len(escape)


def encode(tables: Tables, symbols, index):
  """int32 (1, n) symbols (row-relative, any value) and rows -> (1,) string.

  Raises (when run):
    tf.errors.InvalidArgumentError: a symbol beyond the escape table's reach.
  """
  return encode_parts(tables, [(symbols, index)])


def encode_parts(tables: Tables, parts):
  """Codes several (symbols, rows) parts into one string, each part's
  symbols followed by its escaped values, so that a decoder can derive the
  rows of a part from the parts before it (a hyperprior's side information,
  then the latent it describes)."""
  handle = gen_ops.create_range_encoder([1], tables.lookup)
  for symbols, index in parts:
    handle = _encode_part(tables, handle, symbols, index)
  return gen_ops.entropy_encode_finalize(handle)


def _encode_part(tables, handle, symbols, index):
  escape = tf.gather(tables.escape_symbol, index)
  above, below = symbols >= escape, symbols < 0
  escaped = above | below
  distance = tf.where(above, 2 * (symbols - escape), 2 * (-1 - symbols) + 1)
  distance = tf.boolean_mask(distance, escaped)
  check = tf.debugging.assert_less(
      distance, ESCAPE_SYMBOLS,
      message="latent too far outside the range coding table")
  with tf.control_dependencies([check]):
    coded = tf.where(escaped, escape, symbols)
  handle = gen_ops.entropy_encode_index(handle, index, coded)
  return gen_ops.entropy_encode_index(
      handle, tf.fill([1, tf.size(distance)], tables.escape_row),
      distance[None])


def decode(tables: Tables, string, index):
  """(1,) string and int32 (1, n) rows -> (symbols (1, n), consistent).

  ``consistent`` is tfc's end-of-data check: False proves the string is not
  what ``encode`` wrote for these rows (True does not prove it is).
  """
  handle = start_decoding(tables, string)
  handle, symbols = decode_part(tables, handle, index)
  return symbols, finish_decoding(handle)


def start_decoding(tables: Tables, string):
  """A decoder handle for the parts of ``string`` (see encode_parts)."""
  return gen_ops.create_range_decoder(string, tables.lookup)


def decode_part(tables: Tables, handle, index):
  """Decodes the next part, int32 (1, n) rows -> (handle, symbols (1, n))."""
  n = tf.shape(index)[1]
  handle, symbols = gen_ops.entropy_decode_index(handle, index, [n], tf.int32)
  escape = tf.gather(tables.escape_symbol, index)
  where = tf.where(tf.equal(symbols, escape))
  count = tf.shape(where)[0]
  handle, distance = gen_ops.entropy_decode_index(
      handle, tf.fill([1, count], tables.escape_row), [count], tf.int32)
  distance = distance[0]
  edge = tf.gather_nd(escape, where)
  value = tf.where(distance % 2 == 0, edge + distance // 2, -1 - distance // 2)
  return handle, tf.tensor_scatter_nd_update(symbols, where, value)


def finish_decoding(handle):
  """tfc's end-of-data check of a decoder handle (see decode)."""
  return gen_ops.entropy_decode_finalize(handle)[0]
