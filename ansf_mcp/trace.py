"""Opt-in timings of a call's way through the relay and the shared server, for finding where a latency tail
comes from (scripts/bench_relay.py --trace). Off unless ANSF_TRACE_DIR is set when the process starts; off, every
hook is one attribute test.

Each process appends JSON lines to `<ANSF_TRACE_DIR>/trace-<pid>.jsonl`: one record per traced step, its instants
read from the system-wide monotonic clock (`time.monotonic`), so records of the client, the relays and the server
line up. A `Span` collects the instants of one step; code running in a worker thread marks the span the thread
is working for (`mark`), so the store can say when it got its lock, began and committed without knowing who asked.
Garbage collections are recorded too (generation, start, end): a pause stops every request of the process.

The standard library only: the relay imports it.
"""

from __future__ import annotations

import gc
import json
import os
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

DIR = os.environ.get("ANSF_TRACE_DIR") or None
_lock = threading.Lock()
_local = threading.local()
_files: dict[tuple[str, int], Any] = {}  # by folder and pid: a forked child writes a file of its own


def now() -> float:
    return time.monotonic()


def write(record: dict[str, Any]) -> None:
    """Append one record to this process's trace file (nothing when tracing is off)."""
    if DIR is None:
        return
    line = json.dumps(record, separators=(",", ":")) + "\n"
    with _lock:
        key = (DIR, os.getpid())
        f = _files.get(key)
        if f is None:
            os.makedirs(DIR, exist_ok=True)
            f = _files[key] = open(os.path.join(DIR, f"trace-{key[1]}.jsonl"), "a", buffering=1)
        f.write(line)


class Span:
    """The instants of one traced step, written as one record by `done`."""

    def __init__(self, kind: str, **fields: Any) -> None:
        self.record: dict[str, Any] = {"kind": kind, "pid": os.getpid(), **fields}

    def mark(self, name: str) -> None:
        self.record[name] = time.monotonic()

    def done(self) -> None:
        write(self.record)


def span(kind: str, **fields: Any) -> Span | None:
    """A new span when tracing is on, else None (callers test it before marking)."""
    return Span(kind, **fields) if DIR is not None else None


def mark(name: str) -> None:
    """Mark `name` on the span this thread works for, if any."""
    current: Span | None = getattr(_local, "span", None)
    if current is not None:
        current.mark(name)


def working_for(current: Span | None, fn: Callable[..., T]) -> Callable[..., T]:
    """`fn`, run in a worker thread on behalf of `current`: marks `thread` when it starts and `thread_end` when
    it returns, and lets `mark` reach the span meanwhile."""
    if current is None:
        return fn

    def run(*args: Any, **kwargs: Any) -> T:
        _local.span = current
        current.mark("thread")
        try:
            return fn(*args, **kwargs)
        finally:
            current.mark("thread_end")
            _local.span = None

    return run


_gc_started: dict[int, float] = {}


def _on_gc(phase: str, info: dict[str, Any]) -> None:
    if phase == "start":
        _gc_started[threading.get_ident()] = time.monotonic()
        return
    started = _gc_started.pop(threading.get_ident(), None)
    if started is not None:
        write({"kind": "gc", "pid": os.getpid(), "gen": info.get("generation"), "t0": started,
               "t1": time.monotonic(), "collected": info.get("collected")})


def watch_gc() -> None:
    """Record every garbage collection of this process (once; nothing when tracing is off)."""
    if DIR is not None and _on_gc not in gc.callbacks:
        gc.callbacks.append(_on_gc)
