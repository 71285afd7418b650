"""The cache: bounded on disk (WAL included), empty answers never stored, keys separate everything."""

from __future__ import annotations

import random
import string

import pytest
from ansf_mcp.semantic.cache import ANSWER_CACHE_BYTES, SemanticCache, dir_bytes, make_key


@pytest.mark.slow
def test_cache_stays_within_its_share_of_the_25_mb_after_writing_over_60_mb(tmp_path):
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
    assert peak <= ANSWER_CACHE_BYTES, peak
    assert stats["evictions"] > 0 and stats["bytes_on_disk"] <= ANSWER_CACHE_BYTES
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


@pytest.mark.parametrize("damage", ["empty", "truncated", "not a database"])
def test_a_damaged_cache_file_is_rebuilt_with_a_log_line_and_the_next_call_succeeds(tmp_path, damage, caplog):
    directory = tmp_path / "c"
    cache = SemanticCache(directory)
    for i in range(100):
        assert cache.set(f"k{i}", {"v": "x" * 4000 + str(i)})
    cache.close()
    db = directory / "cache.db"
    data = db.read_bytes()
    db.write_bytes({"empty": b"", "truncated": data[: len(data) // 3], "not a database": b"junk" * 500}[damage])
    for side in directory.glob("cache.db-*"):
        side.unlink()
    cache = SemanticCache(directory)
    assert cache.get("k50") is None  # lost, recomputed by the caller
    assert cache.set("k1", {"a": 1}) and cache.get("k1") == {"a": 1}
    assert cache.stats()["rebuilt_after_damage"] == 1
    assert any(r.name == "ansf_mcp.semantic.cache" and str(directory) in r.getMessage() for r in caplog.records)
    cache.close()


def test_a_cache_broken_while_open_is_rebuilt_by_the_call_that_meets_it(tmp_path, monkeypatch, caplog):
    import sqlite3

    cache = SemanticCache(tmp_path / "c")
    assert cache.set("k", {"a": 1})

    def broken(*_a, **_k):
        raise sqlite3.DatabaseError("database disk image is malformed")

    monkeypatch.setattr(cache._cache, "get", broken)
    assert cache.get("k") is None
    assert cache.stats()["rebuilt_after_damage"] == 1
    assert cache.set("k", {"a": 2}) and cache.get("k") == {"a": 2}
    assert "emptied and rebuilt" in caplog.text
    cache.close()
