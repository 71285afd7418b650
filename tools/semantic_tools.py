"""Semantic tools: symbols, definitions and references through real language servers (thin over the core)."""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ansf_mcp.semantic.models import Definitions, FoundSymbols, References, SymbolsOverview
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations

if TYPE_CHECKING:
    from ansf_mcp.semantic.service import SemanticService
    from mcp.server.mcpserver import MCPServer

log = logging.getLogger(__name__)

READ_ONLY = ToolAnnotations(read_only_hint=True, idempotent_hint=True, destructive_hint=False,
                            open_world_hint=False)


class _LazyService:
    """Builds the semantic service (multilspy, diskcache: ~8 MB of imports) on the first semantic call,
    so an idle server that never reads code does not carry it."""

    def __init__(self, factory: Callable[[], SemanticService]):
        self._factory = factory
        self._service: SemanticService | None = None
        self._lock = threading.Lock()

    def get(self) -> SemanticService:
        with self._lock:
            if self._service is None:
                self._service = self._factory()
            return self._service

    def status(self) -> dict[str, Any]:
        if self._service is None:
            return {"started": False, "note": "no semantic query yet; language servers start on first use"}
        return self._service.status()

    def shutdown(self) -> None:
        if self._service is not None:
            self._service.shutdown()

    def trim(self) -> None:
        if self._service is not None:
            self._service.trim_memory()


_LIBRARY_DIRS = ("site-packages", "dist-packages", "typeshed", "node_modules")


def outside_name(path: str) -> str:
    """A definition outside the project, named without this machine's layout: the part after the last library
    folder (`json/__init__.pyi`, `starlette/routing.py`), else the file name alone."""
    parts = Path(path).parts
    for i in range(len(parts) - 1, -1, -1):
        if parts[i] in _LIBRARY_DIRS or (parts[i].startswith("python") and i > 0 and parts[i - 1] == "lib"):
            rest = parts[i + 1:]
            if rest and rest[0] in ("stdlib", "stubs"):
                rest = rest[1:]
            if rest:
                return "/".join(rest)
    return parts[-1] if parts else ""


class SemanticPool:
    """The semantic tools' own worker threads and a deadline per call, so that a hung language server can
    neither take the transport's threads (anyio's 40, which also read stdin) nor keep a caller waiting.

    A call past its deadline answers with the reason at once; its thread stays with the language server until
    that request's own timeout. While such a call is stuck, queued and new calls fail fast instead of waiting
    behind it. Threads are daemons: a stuck one never holds up the process's exit.
    """

    def __init__(self, workers: int = 4, deadline_s: float = 20.0) -> None:
        self.workers = workers
        self.deadline_s = deadline_s
        self._queue: queue.SimpleQueue[tuple[Future, Callable[[], Any]] | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._pending: set[Future] = set()
        self._stuck: dict[Future, tuple[str, float]] = {}
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

    async def run(self, what: str, fn: Callable[[], Any]) -> Any:
        if why := self.unavailable():
            raise ToolError(why)
        fut = self._submit(fn)
        started = time.monotonic()
        try:
            return await asyncio.wait_for(asyncio.wrap_future(fut), self.deadline_s)
        except TimeoutError:
            if fut.cancelled():  # never started: every worker was busy for the whole deadline
                raise ToolError(f"{what}: all {self.workers} semantic workers stayed busy for "
                                f"{self.deadline_s:.0f} s; try again shortly") from None
            with self._lock:
                if not fut.done():
                    self._stuck[fut] = (what, started)
                queued = [f for f in self._pending if f is not fut and not f.running()]
            for f in queued:  # they would only wait behind the stuck call: answer them now
                f.cancel()
            log.warning("semantic call %s passed its %.0f s deadline; %d queued call(s) failed fast",
                        what, self.deadline_s, len(queued))
            raise ToolError(f"{what}: no answer from the language server within {self.deadline_s:.0f} s "
                            "(it may be hung or still starting); try again shortly") from None
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if fut.cancelled() and task is not None and not task.cancelling():
                raise ToolError(self.unavailable() or f"{what}: cancelled while waiting for a worker") from None
            raise

    def shutdown(self) -> None:
        with self._lock:
            pending = list(self._pending)
            threads = len(self._threads)
        for f in pending:
            f.cancel()
        for _ in range(threads):
            self._queue.put(None)


def register(server: MCPServer, app: Any) -> None:
    """Add the four semantic tools; the service and its language servers start lazily on first use."""
    settings = app.settings

    def build() -> SemanticService:
        from ansf_mcp.semantic.service import SemanticService

        return SemanticService(settings.project_root, settings.data_dir)

    _register(server, app, _LazyService(build))


def register_with_service(server: MCPServer, app: Any, **service_options: Any) -> SemanticService:
    """`register` with an eagerly built service, returned (tests and the benchmark use it)."""
    from ansf_mcp.semantic.service import SemanticService

    service = SemanticService(app.settings.project_root, app.settings.data_dir, **service_options)
    lazy = _LazyService(lambda: service)
    lazy.get()
    _register(server, app, lazy)
    return service


def _register(server: MCPServer, app: Any, lazy: _LazyService) -> None:
    settings = app.settings
    pool = SemanticPool(workers=getattr(settings, "semantic_workers", 4),
                        deadline_s=getattr(settings, "semantic_deadline_s", 20.0))

    async def _run(method: str, *args: Any) -> Any:
        from ansf_mcp.semantic.service import USER_ERRORS

        def call() -> Any:
            return getattr(lazy.get(), method)(*args)

        what = f"{method}({', '.join(repr(a)[:80] for a in args[:1])})"
        try:
            return await pool.run(what, call)
        except USER_ERRORS as exc:
            raise ToolError(str(exc)) from exc
        except OSError as exc:  # e.g. a path longer than the file system allows
            raise ToolError(f"{what}: cannot read that path ({exc.strerror or exc})") from exc
        except UnicodeError as exc:  # a lone surrogate cannot name a file
            raise ToolError(f"{what}: the path is not valid Unicode text") from exc

    async def symbols_overview(relative_path: str, depth: int = 0) -> SymbolsOverview:
        return SymbolsOverview.model_validate(await _run("symbols_overview", relative_path, depth))

    async def find_symbol(name_path: str, relative_path: str | None = None, include_body: bool = False,
                          substring: bool = False, max_matches: int = 50) -> FoundSymbols:
        return FoundSymbols.model_validate(
            await _run("find_symbol", name_path, relative_path, include_body, substring, max_matches))

    async def find_references(name_path: str, relative_path: str) -> References:
        return References.model_validate(await _run("find_references", name_path, relative_path))

    async def goto_definition(relative_path: str, line: int, column: int) -> Definitions:
        answer = Definitions.model_validate(await _run("goto_definition", relative_path, line, column))
        for d in answer.definitions:
            if d.external_path:
                d.external_path = outside_name(d.external_path)
        return answer

    server.add_tool(symbols_overview, name="symbols_overview", annotations=READ_ONLY,
                    description="Top-level symbols of a file or folder (relative_path); depth>0 adds children.")
    server.add_tool(find_symbol, name="find_symbol", annotations=READ_ONLY,
                    description="Find symbols by name path ('Class/method', '/top', 'f[1]'), optionally in a "
                                "file or folder; include_body returns source.")
    server.add_tool(find_references, name="find_references", annotations=READ_ONLY,
                    description="References to the symbol name_path defined in relative_path (1-based "
                                "lines/columns, enclosing symbol, context).")
    server.add_tool(goto_definition, name="goto_definition", annotations=READ_ONLY,
                    description="Definition(s) of the name at relative_path:line:column (1-based).")

    providers = getattr(app, "status_providers", None)
    if isinstance(providers, dict):
        providers["semantic"] = lazy.status
    hooks = getattr(app, "on_shutdown", None)
    if isinstance(hooks, list):
        hooks.append(pool.shutdown)
        hooks.append(lazy.shutdown)  # runs first (hooks run newest first): servers stop, stuck calls end
    governor = getattr(app, "governor", None)
    if governor is not None:
        governor.on_pressure.append(lazy.trim)
