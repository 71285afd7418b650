"""One thread that runs the board's short writes one after another, as they arrive.

On a store whose writers take turns anyway (SQLite: one write lock, then BEGIN IMMEDIATE), sixteen agents'
claims and outcomes in worker threads of their own form a convoy: each hand-over of the lock waits for a thread to
wake and get the GIL from a busy event loop. A pool of one (a capacity limiter) is worse: between two writes the
event loop must run to hand the turn on. Here the thread takes the next write from a queue as soon as the last
one is done, and only the answer goes back to the event loop.
"""

from __future__ import annotations

import asyncio
import contextvars
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

IDLE_EXIT_S = 30.0  # the thread ends after this long without work, and starts again with the next


def on_asyncio() -> bool:
    """Whether the caller runs on an asyncio event loop (the turns hand answers back through it)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


class Turns:
    def __init__(self, name: str = "ansf-board-turns") -> None:
        self._name = name
        self._queue: queue.SimpleQueue[tuple[Callable[[], Any], asyncio.Future[Any], contextvars.Context]] = (
            queue.SimpleQueue())
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    async def run(self, fn: Callable[[], T]) -> T:
        """`fn()` in the turns thread, after the writes queued before it; its result or exception here. A caller
        cancelled meanwhile does not stop it (a write is never cut off half-way); its answer is dropped."""
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        with self._lock:  # the thread cannot end between this put and its next look at the queue
            self._queue.put((fn, future, contextvars.copy_context()))
            if self._thread is None:
                self._thread = threading.Thread(target=self._work, name=self._name, daemon=True)
                self._thread.start()
        return await future

    def _work(self) -> None:
        while True:
            try:
                fn, future, context = self._queue.get(timeout=IDLE_EXIT_S)
            except queue.Empty:
                with self._lock:
                    if self._queue.empty():
                        self._thread = None
                        return
                continue
            try:
                result = context.run(fn)
            except BaseException as exc:  # handed to the caller, as a worker thread's would be
                _settle(future, None, exc)
            else:
                _settle(future, result, None)


def _settle(future: asyncio.Future[Any], result: Any, exc: BaseException | None) -> None:
    def settle() -> None:
        if future.cancelled():
            return
        if exc is not None:
            future.set_exception(exc)
        else:
            future.set_result(result)

    try:
        future.get_loop().call_soon_threadsafe(settle)
    except RuntimeError:  # the loop has closed: nobody waits for this answer any more
        pass
