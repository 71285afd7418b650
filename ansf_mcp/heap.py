"""The server's long-lived heap, kept out of the cyclic garbage collector's full passes.

Once torch, the coordinator's model and the rest of a start-up are loaded, the process holds some 200 000
objects that live as long as it does. Every full (generation 2) collection walks all of them: measured in the
shared server under 16 agents, 200-500 ms with every request waiting, several times a minute, which made
`next_task`'s p99 (scripts/bench_relay.py). `settle` freezes what is there (`gc.freeze`): later collections
walk only objects made afterwards. Frozen objects are still freed by reference counting; only cycles among
them would stay, so it runs after a load, not on every request.

While the start-up loads, full collections are held back (`defer_full_collections`) until the heap settles:
torch's import and the model's load set off four of them (83-269 ms each on this machine, every request and the
first `coordinate` waiting), each walking a heap that is about to be frozen, and together they find nothing a
collection at the end would not (9 unreachable objects after the load, with or without them).
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from typing import Any

log = logging.getLogger(__name__)

_lock = threading.Lock()
_last: dict[str, Any] = {}
_held: list[tuple[int, int, int]] = []  # the collector's thresholds while full collections are held back
# A full collection starts after this many young (generation 1) ones: never, in practice.
HELD_THRESHOLD = 2**30


def defer_full_collections() -> None:
    """No automatic full collection until `settle` (or `resume_full_collections`); young ones go on as before."""
    with _lock:
        if not _held:
            _held.append(gc.get_threshold())
            first, second, _ = _held[0]
            gc.set_threshold(first, second, HELD_THRESHOLD)


def resume_full_collections() -> None:
    """The collector's own thresholds again (nothing when they were not held back)."""
    with _lock:
        if _held:
            gc.set_threshold(*_held.pop())


def settle(why: str) -> float:
    """Collect the young generations, then freeze everything tracked; returns the milliseconds it took (logged).
    No full collection first: it would pause every request as long as the ones this prevents, and after a
    start-up it finds nothing (0 unreachable objects of 201 562 measured after the warm-up and a decision)."""
    with _lock:
        started = time.perf_counter()
        gc.collect(1)
        gc.freeze()
        elapsed_ms = round((time.perf_counter() - started) * 1000, 1)
        _last.update(after=why, frozen_objects=gc.get_freeze_count(), ms=elapsed_ms, at=time.time())
    resume_full_collections()
    log.info("heap settled after %s: %d objects frozen in %.0f ms", why, gc.get_freeze_count(), elapsed_ms)
    return elapsed_ms


def status() -> dict[str, Any]:
    """For system_status: when the heap was last settled and how much of it is frozen now."""
    with _lock:
        return {"settled": bool(_last), **_last, "frozen_objects": gc.get_freeze_count(),
                "full_collections_held": bool(_held)}


def settle_soon(why: str) -> None:
    """`settle` in a thread of its own, off the caller's path."""
    threading.Thread(target=settle, args=(why,), name="ansf-heap-settle", daemon=True).start()
