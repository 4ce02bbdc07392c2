"""sae.serve.cache.ByteCache: least recently used values within a budget in
bytes."""

from sae.serve.cache import ByteCache


def test_the_least_recently_used_go_first_when_over_budget():
  cache = ByteCache(10)
  cache.put("a", "A", 4)
  cache.put("b", "B", 4)
  assert cache.get("a") == "A"  # now b is the least recently used
  cache.put("c", "C", 4)
  assert (cache.get("a"), cache.get("b"), cache.get("c")) == ("A", None, "C")
  assert (len(cache), cache.used) == (2, 8)


def test_a_value_over_the_budget_is_not_kept():
  cache = ByteCache(10)
  cache.put("a", "A", 4)
  cache.put("big", "B", 11)
  assert cache.get("big") is None and cache.get("a") == "A"
  assert ByteCache(0).get("x") is None


def test_putting_a_key_again_replaces_its_size():
  cache = ByteCache(10)
  cache.put("a", "A", 6)
  cache.put("a", "A2", 3)
  cache.put("b", "B", 7)
  assert (cache.get("a"), cache.get("b")) == ("A2", "B")
  assert (len(cache), cache.used) == (2, 10)
  cache.put("c", "C", 10)  # drops both
  assert (len(cache), cache.used, cache.get("c")) == (1, 10, "C")
