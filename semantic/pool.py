"""The semantic layer's own worker threads, with a deadline per call."""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
import weakref
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from ansf_mcp.semantic.defaults import SEMANTIC_DEADLINE_SECONDS, SEMANTIC_WORKERS

log = logging.getLogger(__name__)


class SemanticCallError(ValueError):
    """A semantic call that cannot be answered; the text is written for the caller (one sentence)."""


class SemanticPool:
    """The semantic tools' own worker threads and a deadline per call, so that a hung language server can
    neither take the transport's threads (anyio's 40, which also read stdin) nor keep a caller waiting.

    A call past its deadline answers with the reason at once; its thread stays with the language server until
    that request's own timeout. While such a call is stuck, queued and new calls fail fast instead of waiting
    behind it. Threads are daemons: a stuck one never holds up the process's exit.
    """

    def __init__(self, workers: int = SEMANTIC_WORKERS, deadline_s: float = SEMANTIC_DEADLINE_SECONDS) -> None:
        self.workers = workers
        self.deadline_s = deadline_s
        self._queue: queue.SimpleQueue[tuple[Future, Callable[[], Any]] | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._pending: set[Future] = set()
        self._stuck: dict[Future, tuple[str, float]] = {}
        # Why a queued call was answered at once (weak: a caller cancelled itself never reads its entry).
        self._failed_fast: weakref.WeakKeyDictionary[Future, str] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

    def _work(self) -> None:
        while (item := self._queue.get()) is not None:
            fut, fn = item
            if not fut.set_running_or_notify_cancel():
                continue
            try:
                fut.set_result(fn())
            except BaseException as exc:
                fut.set_exception(exc)

    def _submit(self, fn: Callable[[], Any]) -> Future:
        fut: Future = Future()
        with self._lock:
            if len(self._threads) < self.workers:
                t = threading.Thread(target=self._work, name=f"semantic-{len(self._threads)}", daemon=True)
                t.start()
                self._threads.append(t)
            self._pending.add(fut)
        fut.add_done_callback(self._finished)
        self._queue.put((fut, fn))
        return fut

    def _finished(self, fut: Future) -> None:
        with self._lock:
            self._pending.discard(fut)
            self._stuck.pop(fut, None)

    def unavailable(self) -> str | None:
        """Why calls fail fast now, or None."""
        with self._lock:
            if not self._stuck:
                return None
            what, since = min(self._stuck.values(), key=lambda v: v[1])
            n = len(self._stuck)
        return (f"semantic tools are failing fast: {what} has had no answer from its language server for "
                f"{time.monotonic() - since:.0f} s ({n} call(s) stuck); the server is restarted after its own "
                "request timeout, so try again shortly")

    async def run(self, what: str, fn: Callable[[], Any], deadline_s: float | None = None) -> Any:
        """`deadline_s`: a longer deadline for calls that report progress while they work (references and
        renames over a whole project: many requests, each under the language server's own timeout)."""
        if why := self.unavailable():
            raise SemanticCallError(why)
        fut = self._submit(fn)
        started = time.monotonic()
        deadline = deadline_s or self.deadline_s
        try:
            return await asyncio.wait_for(asyncio.wrap_future(fut), deadline)
        except TimeoutError:
            if fut.cancelled():  # never started: every worker was busy for the whole deadline
                raise SemanticCallError(f"{what}: all {self.workers} semantic workers stayed busy for "
                                f"{deadline:.0f} s; try again shortly") from None
            with self._lock:
                if not fut.done():
                    self._stuck[fut] = (what, started)
                queued = [f for f in self._pending if f is not fut and not f.running()]
            why = self.unavailable() or (f"semantic tools are failing fast: {what} had no answer from its language "
                                         f"server within {deadline:.0f} s; try again shortly")
            for f in queued:  # they would only wait behind the stuck call: answer them now, saying why
                self._failed_fast[f] = why  # kept: the stuck call may be over before they wake to read it
                f.cancel()
            log.warning("semantic call %s passed its %.0f s deadline; %d queued call(s) failed fast",
                        what, deadline, len(queued))
            raise SemanticCallError(f"{what}: no answer from the language server within {deadline:.0f} s "
                            "(it may be hung or still starting); try again shortly") from None
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if fut.cancelled() and task is not None and not task.cancelling():
                why = self._failed_fast.pop(fut, None) or self.unavailable()
                raise SemanticCallError(why or f"{what}: cancelled while waiting for a worker") from None
            raise

    def shutdown(self) -> None:
        with self._lock:
            pending = list(self._pending)
            threads = len(self._threads)
        for f in pending:
            f.cancel()
        for _ in range(threads):
            self._queue.put(None)
