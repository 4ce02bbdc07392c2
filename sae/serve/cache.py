"""ByteCache: the layer server's memory, least recently used values within
a budget in bytes.

Its own module because the server keeps two of them (parsed files; cut
files and PNGs) and because its bound, not the number of entries, is what
keeps a busy server's memory flat.
"""

import collections


class ByteCache:
  """Least-recently-used values with a budget in bytes."""

  def __init__(self, budget):
    self.budget = budget
    self.used = 0
    self._items = collections.OrderedDict()

  def get(self, key):
    item = self._items.get(key)
    if item is None:
      return None
    self._items.move_to_end(key)
    return item[0]

  def put(self, key, value, size) -> None:
    if size > self.budget:
      return
    old = self._items.pop(key, None)
    if old is not None:
      self.used -= old[1]
    self._items[key] = (value, size)
    self.used += size
    while self.used > self.budget:
      _, (_, dropped) = self._items.popitem(last=False)
      self.used -= dropped

  def __len__(self):
    return len(self._items)
