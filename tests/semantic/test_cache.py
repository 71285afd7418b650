"""The cache: bounded on disk (WAL included), empty answers never stored, keys separate everything."""

from __future__ import annotations

import random
import string

import pytest
from ansf_mcp.semantic.cache import DISK_BUDGET_BYTES, SemanticCache, dir_bytes, make_key


@pytest.mark.slow
def test_cache_stays_under_25_mb_after_writing_over_60_mb(tmp_path):
    cache = SemanticCache(tmp_path / "semantic-cache")
    rnd = random.Random(7)
    letters = string.ascii_letters + string.digits
    written = 0
    peak = 0
    i = 0
    while written < 64_000_000:
        refs = [{"relative_path": f"pkg/m{rnd.randint(0, 999)}.py", "line": rnd.randint(1, 5000), "column": 5,
                 "symbol": "".join(rnd.choices(letters, k=16)), "context": "".join(rnd.choices(letters, k=120))}
                for _ in range(80)]
        written += len(repr(refs))
        assert cache.set(make_key("fp", f"f{i}.py", "hash", "references", i), refs)
        i += 1
        if i % 100 == 0:
            peak = max(peak, dir_bytes(tmp_path / "semantic-cache"))
    peak = max(peak, dir_bytes(tmp_path / "semantic-cache"))
    stats = cache.stats()
    assert written >= 64_000_000
    assert peak <= DISK_BUDGET_BYTES, peak
    assert stats["evictions"] > 0 and stats["bytes_on_disk"] <= DISK_BUDGET_BYTES
    # recent entries are still served
    assert cache.get(make_key("fp", f"f{i - 1}.py", "hash", "references", i - 1)) is not None
    cache.close()


def test_empty_results_not_cached_and_counters(tmp_path):
    cache = SemanticCache(tmp_path / "c")
    assert cache.set(make_key("a"), []) is False
    assert cache.set(make_key("b"), None) is False
    assert cache.get(make_key("a")) is None
    assert cache.set(make_key("c"), [{"x": 1}]) is True
    assert cache.get(make_key("c")) == [{"x": 1}]
    st = cache.stats()
    assert (st["hits"], st["misses"], st["entries"], st["not_cached_empty"]) == (1, 1, 1, 2)
    cache.close()


def test_keys_differ_by_every_part():
    base = ("fp", "a.py", "h1", "references", 3, 4)
    keys = {make_key(*base)}
    for k in range(len(base)):
        changed = list(base)
        changed[k] = f"{changed[k]}x"
        keys.add(make_key(*changed))
    assert len(keys) == len(base) + 1
