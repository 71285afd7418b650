"""The runtime every part of the server shares: settings, the store, the board, the governor, status and
shutdown hooks.

Built once from the settings (`Runtime.open`). It starts and stops in one place, `serving()`, which is the MCP
SDK's lifespan for stdio and Streamable HTTP alike and which the HTTP apps (MCP server, dashboard) also enter
from their own lifespans. Nothing here imports the server, the tools or the dashboard.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from ansf_mcp import heap
from ansf_mcp.board.board import Board
from ansf_mcp.board.lifecycle import BoardPolicy
from ansf_mcp.coordinator.warmup import ModelWarmer
from ansf_mcp.governor.phases import Governor, PhaseLimits, record_phase_change
from ansf_mcp.settings import Settings
from ansf_mcp.store.db import Store, StoreError, open_store

log = logging.getLogger(__name__)

__all__ = ["PhaseLimits", "Runtime", "configure_logging"]

WARMUP_SETTLE_TIMEOUT_S = 600.0  # a warm-up still loading after this long is left to finish unfrozen


class _Repeats(logging.Filter):
    """Lets the same message (logger, level, template) through at most once per `every_s`, then says how many
    were dropped: a flood of one error (a full file table, a client retrying garbage) cannot fill the disk."""

    def __init__(self, every_s: float = 10.0) -> None:
        super().__init__()
        self.every_s = every_s
        self._seen: dict[tuple[str, int, str], tuple[float, int]] = {}
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            text = record.getMessage()
        except Exception:  # a bad format string is logging's to report, not ours
            return True
        key = (record.name, record.levelno, text[:300])
        now = time.monotonic()
        with self._lock:
            last, dropped = self._seen.get(key, (-1e18, 0))
            if now - last < self.every_s:
                self._seen[key] = (last, dropped + 1)
                return False
            if len(self._seen) > 1000:  # bounded: forget the oldest half
                for k, _ in sorted(self._seen.items(), key=lambda kv: kv[1][0])[:500]:
                    del self._seen[k]
            self._seen[key] = (now, 0)
        if dropped:
            record.msg = f"{record.msg} [{dropped} more like this in the last {self.every_s:.0f} s not logged]"
        return True


def configure_logging(level: str) -> None:
    """Everything to stderr (in stdio mode stdout carries the protocol and nothing else), repeats rate-limited."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(_Repeats())
    root.addHandler(handler)
    root.setLevel(level)
    # uvicorn configures its own loggers with handlers of their own; route them through ours instead.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "asyncio"):
        lg = logging.getLogger(name)
        for h in list(lg.handlers):
            lg.removeHandler(h)
        lg.propagate = True


def rehearse_decision() -> None:
    """One tiny `auto` decision in memory (nothing is stored), so that the first real `coordinate` does not pay
    what only a first decision pays: importing the exact solver (scipy.optimize, ~1.1 s here) and the network's
    first inference (~0.25 s more than the next). Only after a warm-up: the model is in memory already, and
    scipy adds 47 MB to it (measured after importing torch)."""
    from ansf_mcp.coordinator.episode import Episode
    from ansf_mcp.coordinator.strategies import decide

    started = time.perf_counter()
    try:
        decide(Episode.model_validate({
            "agents": [{"id": "a", "role": "backend", "capabilities": ["python"],
                        "history": [{"task": "fix the parser", "success": True}]},
                       {"id": "b", "role": "docs"}],
            "tasks": [{"id": "t", "description": "write the parser tests"},
                      {"id": "u", "description": "document the API", "depends_on": ["t"]}],
        }), "auto")
    except Exception:  # a rehearsal must never take the server down; the first real call will say what fails
        log.exception("decision rehearsal failed")
        return
    log.info("decision rehearsed in %.0f ms", (time.perf_counter() - started) * 1000)


@dataclass
class Runtime:
    settings: Settings
    store: Store
    governor: Governor | None = None
    started_at: float = field(default_factory=time.time)
    ready: bool = False
    status_providers: dict[str, Callable[[], dict[str, Any]]] = field(default_factory=dict)
    on_shutdown: list[Callable[[], None]] = field(default_factory=list)
    on_start: list[Callable[[], None]] = field(default_factory=list)  # quick; long work goes to a thread
    # What the board reads the time from; tests move it instead of sleeping.
    clock: Callable[[], float] = time.time
    board: Board = field(init=False)
    warmer: ModelWarmer = field(init=False)
    _recorder: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(max_workers=1, thread_name_prefix="ansf-phase-record"))
    _holders: int = 0
    _closed: bool = False

    def __post_init__(self) -> None:
        self.warmer = ModelWarmer(self.store)
        self.status_providers["model_warmup"] = self.warmer.status
        self.status_providers["heap"] = heap.status
        # The board is built once, here: the configured policy, the phase's limits and this runtime's clock.
        self.board = Board(self.store, BoardPolicy.from_settings(self.settings), clock=lambda: self.clock(),
                           limits=self.limits, warmer=self.warmer, workers=self.settings.store_workers,
                           read_deadline_s=self.settings.read_deadline_s)

    @classmethod
    def open(cls, settings: Settings, *, watcher: bool = False) -> Runtime:
        """The store, the board and a governor for `settings`.

        `watcher=True` for a process that only watches the store (the standalone dashboard): its phase readings
        describe its own process, not the server's, so they are not recorded; and it never decides, so it does not
        warm the model, whose load (~300 MB, a `model_loads` row) would be shown as the server's.
        """
        store = open_store(settings.store_spec, **settings.store_options)
        runtime = cls(settings=settings, store=store, governor=Governor(settings))
        if watcher:
            runtime.warmer.start(False, "off: a watcher (the standalone dashboard) makes no decisions")
            return runtime
        runtime.governor.on_change.append(runtime._record_phase_change)
        if settings.warm_model:
            runtime.on_start.append(runtime._start_warmup)
            runtime.on_start.append(runtime._settle_after_warmup)
        else:
            runtime.warmer.start(False, "off (ANSF_WARMUP=0, or a standalone stdio server's default; ANSF_WARMUP=1 "
                                        "warms at start): the model loads on the first neural decision")
        return runtime

    def _start_warmup(self) -> None:
        # Until the heap settles after it: the loads would set off full collections of a heap about to be frozen.
        heap.defer_full_collections()
        self.warmer.start(self.limits().neural_allowed, self.limits().reason)

    def _settle_after_warmup(self) -> None:
        """Once the warm-up has loaded the model: rehearse a decision, then freeze the start-up's heap
        (`heap.settle`; the full collections that would walk it cost every request hundreds of milliseconds)."""

        def settle() -> None:
            try:
                if self.warmer.status().get("state") == "loading":
                    # The solver's imports (scipy, ~1.1 s) beside the model's load, not after it: a plan that
                    # arrives while the model still loads then waits for the load alone.
                    import ansf_mcp.coordinator.strategies  # noqa: F401
                self.warmer.wait(WARMUP_SETTLE_TIMEOUT_S)
                if self._closed:
                    return
                if self.warmer.status().get("state") == "loaded":
                    rehearse_decision()
                heap.settle("the start-up's warm-up")
            finally:
                heap.resume_full_collections()  # settled or not (closed, a failed rehearsal): collect as before

        threading.Thread(target=settle, name="ansf-heap-settle", daemon=True).start()

    def _record_phase_change(self, old: str, new: str, reason: str, reading: Any) -> None:
        """A phase change is noticed wherever the limits are read (on the event loop too, under the governor's
        lock): it is written in order by a thread of its own, so a store waiting on a lock holds up nobody."""

        def write() -> None:
            try:
                record_phase_change(self.store, old, new, reason, reading)
            except StoreError as exc:
                log.warning("phase change %s -> %s not recorded: %s", old, new, exc)

        self._recorder.submit(write)

    def limits(self) -> PhaseLimits:
        return self.governor.limits() if self.governor else PhaseLimits()

    def uptime_s(self) -> float:
        return round(time.time() - self.started_at, 3)

    # -- start and stop ----------------------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def serving(self) -> AsyncIterator[Runtime]:
        """Start on the first entry, stop when the last holder leaves.

        Entered by the SDK's lifespan (once per stdio run or Streamable HTTP app, once per SSE connection) and by
        the HTTP apps' own lifespans, so nested entries share one start and one stop.
        """
        if self._holders == 0:
            self.start()
        self._holders += 1
        try:
            yield self
        finally:
            self._holders -= 1
            if self._holders == 0:
                self.shutdown()

    def start(self) -> None:
        if self._closed:
            raise RuntimeError("this runtime was shut down; open a new one")
        if self.governor is not None:
            self.governor.refresh(force=True)
        for hook in self.on_start:
            try:
                hook()
            except Exception:
                log.exception("start hook failed")
        self.ready = True

    def shutdown(self) -> None:
        """Run the shutdown hooks (language servers...) newest first, then close the store. Idempotent."""
        self.ready = False
        if self._closed:
            return
        self._closed = True
        for hook in reversed(self.on_shutdown):
            try:
                hook()
            except Exception:
                log.exception("shutdown hook failed")
        self._recorder.shutdown(wait=True)
        self.store.close()
