"""Bounded, self-healing caches with a real jedi server: everything the semantic layer keeps on disk for a
project stays within the budget, and damaged cache files (ours and jedi's) never fail the next call."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from ansf_mcp.semantic.cache import ANSWER_CACHE_BYTES, DISK_BUDGET_BYTES, JEDI_CACHE_BYTES, dir_bytes
from ansf_mcp.semantic.symbol_table import SYMBOL_TABLE_BYTES

from tests.semantic.conftest import build
from tests.semantic.helpers import ok

pytestmark = pytest.mark.anyio

REFS = {"name_path": "scale", "relative_path": "src/geo/units.py"}


def _semantic_bytes(data: Path) -> int:
    """What the semantic layer keeps on disk for the project under its data directory."""
    return sum(dir_bytes(data / d) for d in ("semantic-cache", "lsp/jedi-cache", "symbol-table", "locks", "edits"))


def test_the_budget_split_fits_the_promise():
    assert ANSWER_CACHE_BYTES + JEDI_CACHE_BYTES + SYMBOL_TABLE_BYTES < DISK_BUDGET_BYTES


async def test_damaged_caches_heal_on_the_next_call_and_stay_in_budget(pyproj_copy, tmp_path, caplog):
    data = tmp_path / "data"
    server, app, service = build(pyproj_copy, data)
    try:
        service.index(lambda: 10_000)
        assert (await ok(server, "find_references", REFS))["total"] == 15
    finally:
        app.shutdown()
    pickles = sorted((data / "lsp" / "jedi-cache").rglob("*.pkl"))
    assert len(pickles) >= 5, "jedi pickled the project's files under the data directory"
    used = _semantic_bytes(data)
    assert 0 < used <= DISK_BUDGET_BYTES, used

    # what a killed writer leaves: empty files and files cut short, in both caches
    damaged = {}
    for i, p in enumerate(pickles):
        damaged[p] = b"" if i % 2 else p.read_bytes()[: p.stat().st_size // 2]
        p.write_bytes(damaged[p])
    db = data / "semantic-cache" / "cache.db"
    db.write_bytes(db.read_bytes()[: db.stat().st_size // 3])
    for side in (data / "semantic-cache").glob("cache.db-*"):
        side.unlink()

    caplog.set_level(logging.WARNING, logger="ansf_mcp.semantic.cache")
    server, app, service = build(pyproj_copy, data)
    try:
        assert (await ok(server, "find_references", REFS))["total"] == 15
        found = await ok(server, "find_symbol", {"name_path": "scale", "relative_path": "src/geo/units.py"})
        assert found["matches"], found
        assert service.cache.stats()["rebuilt_after_damage"] == 1
    finally:
        app.shutdown()
    assert any("emptied and rebuilt" in r.getMessage() for r in caplog.records)
    # jedi removed the pickles it read and could not load, and wrote good ones in their place (the files this
    # call did not need stay as they were until a call reads them)
    healed = {kind: [p for p, bad in damaged.items() if (bad == b"") == (kind == "empty")
                     and (not p.exists() or p.read_bytes() != bad)] for kind in ("empty", "truncated")}
    assert healed["empty"] and healed["truncated"], healed
    assert _semantic_bytes(data) <= DISK_BUDGET_BYTES
