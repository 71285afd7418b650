"""The heap settled once loads are done: a full collection, then everything that survived frozen."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from ansf_mcp import heap


@pytest.fixture
def thawed() -> Iterator[None]:
    """Frozen objects of this test process are thawed again: other tests' cycles must stay collectable."""
    gc.unfreeze()
    yield
    gc.unfreeze()


def test_settle_freezes_what_survives_a_collection_and_says_so(thawed: None) -> None:
    assert heap.status()["frozen_objects"] == 0
    kept = [[i] for i in range(10_000)]  # long-lived objects the collector tracks
    heap.settle("a test's load")
    status = heap.status()
    assert status["settled"] and status["after"] == "a test's load"
    assert status["frozen_objects"] >= len(kept)
    # Frozen objects are still freed by reference counting (another thread's garbage included): the count can
    # only shrink after the freeze, never below what is still held here.
    assert len(kept) <= gc.get_freeze_count() <= status["frozen_objects"]


def test_full_collections_held_back_until_the_heap_settles(thawed: None) -> None:
    before = gc.get_threshold()
    try:
        heap.defer_full_collections()
        heap.defer_full_collections()  # a second hold keeps the first's thresholds to come back to
        assert gc.get_threshold() == (before[0], before[1], heap.HELD_THRESHOLD)
        assert heap.status()["full_collections_held"]
        heap.settle("a test's load")
        assert gc.get_threshold() == before and not heap.status()["full_collections_held"]
        heap.resume_full_collections()  # nothing held: nothing changes
        assert gc.get_threshold() == before
    finally:
        gc.set_threshold(*before)
