"""Semantic tools: symbols, definitions and references through real language servers (thin over the core)."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import anyio
from ansf_mcp.semantic.models import Definitions, FoundSymbols, References, SymbolsOverview
from ansf_mcp.tools.answers import Shrinking
from ansf_mcp.tools.registry import Kind, Toolbox
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import Field

if TYPE_CHECKING:
    from ansf_mcp.semantic.service import SemanticService

log = logging.getLogger(__name__)

RelativePath = Annotated[
    str, Field(description="a file or folder relative to the project root, e.g. 'src/pkg/module.py'")
]
NamePath = Annotated[
    str,
    Field(description="a symbol's name path: 'Class/method', '/top_level' (anchored), 'name[1]' (the second of "
                      "that name)"),
]
Line = Annotated[int, Field(ge=1, description="1-based line number")]
Column = Annotated[int, Field(ge=1, description="1-based column number")]


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


def register(tools: Toolbox, app: Any) -> None:
    """Add the four semantic tools; the service and its language servers start lazily on first use."""
    settings = app.settings

    def build() -> SemanticService:
        from ansf_mcp.semantic.service import SemanticService

        return SemanticService(settings.project_root, settings.data_dir)

    _register(tools, app, _LazyService(build))


def register_with_service(tools: Toolbox, app: Any, **service_options: Any) -> SemanticService:
    """`register` with an eagerly built service, returned (tests and the benchmark use it)."""
    from ansf_mcp.semantic.service import SemanticService

    service = SemanticService(app.settings.project_root, app.settings.data_dir, **service_options)
    lazy = _LazyService(lambda: service)
    lazy.get()
    _register(tools, app, lazy)
    return service


def _per_file(items: list[dict[str, Any]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for item in items:
        counts[item["relative_path"]] = counts.get(item["relative_path"], 0) + 1
    return counts


def overview_steps(result: dict[str, Any]) -> Shrinking[SymbolsOverview]:
    """Full -> without children -> per-file symbol counts -> the total."""

    def strip(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{k: v for k, v in s.items() if k != "children"} for s in items]

    counts = {f: len(v) for f, v in result["files"].items()}
    return Shrinking(
        SymbolsOverview.model_validate(result),
        lambda: SymbolsOverview.model_validate(
            {**result, "files": {f: strip(v) for f, v in result["files"].items()},
             "shrunk": "too large: children dropped (depth 0)"}),
        lambda: SymbolsOverview.model_validate(
            {**result, "files": {}, "per_file": counts,
             "shrunk": "too large: only per-file symbol counts; ask for one file"}),
        lambda: SymbolsOverview.model_validate(
            {**result, "files": {}, "total": sum(counts.values()), "shrunk": "too large: only the total is given"}),
    )


def symbol_steps(result: dict[str, Any]) -> Shrinking[FoundSymbols]:
    """Full -> without bodies and children -> per-file counts -> the total."""
    slim = [{k: v for k, v in m.items() if k not in ("body", "children")} for m in result["matches"]]
    return Shrinking(
        FoundSymbols.model_validate(result),
        lambda: FoundSymbols.model_validate({**result, "matches": slim, "shrunk": "too large: bodies dropped"}),
        lambda: FoundSymbols.model_validate(
            {**result, "matches": [], "per_file": _per_file(result["matches"]),
             "shrunk": "too large: only per-file counts given; narrow relative_path"}),
        lambda: FoundSymbols.model_validate(
            {**result, "matches": [], "shrunk": "too large: only the total is given"}),
    )


def reference_steps(result: dict[str, Any]) -> Shrinking[References]:
    """Full -> without context lines -> per-file counts -> the total."""
    slim = [{k: v for k, v in r.items() if k != "context"} for r in result["references"]]
    return Shrinking(
        References.model_validate(result),
        lambda: References.model_validate(
            {**result, "references": slim, "shrunk": "too large: context lines dropped"}),
        lambda: References.model_validate(
            {**result, "references": [], "per_file": _per_file(result["references"]),
             "shrunk": "too large: only per-file counts given; query a narrower symbol"}),
        lambda: References.model_validate(
            {**result, "references": [], "shrunk": "too large even as per-file counts: only the total is given"}),
    )


def root_refusal(root: Path) -> str | None:
    """Why `root` cannot be a project (the file system's root or the home folder: scanning it takes minutes and
    meets every language there is), or None."""
    root = Path(root).resolve()
    for name, refused in (("the file system root", Path("/")), ("the home folder", Path.home().resolve())):
        if root == refused:
            return (f"the project root is {name} ({root}), probably the working directory the client started the "
                    "server in; the semantic tools need a project: start the server with --project DIR (or set "
                    "ANSF_PROJECT)")
    return None


class _Publisher:
    """Writes the semantic layer's status to the store (at most every `every_s`, and at shutdown), so a watcher in
    another process — the standalone dashboard — shows the language servers of the process that runs them."""

    def __init__(self, lazy: _LazyService, store: Any, every_s: float = 5.0):
        self.lazy, self.store, self.every_s = lazy, store, every_s
        self._last = 0.0
        self._lock = threading.Lock()

    def due(self) -> bool:
        """True at most once per `every_s` (the caller then publishes)."""
        now = time.monotonic()
        with self._lock:
            if now - self._last < self.every_s:
                return False
            self._last = now
            return True

    def now(self, final: bool = False) -> None:
        if final and self._last == 0.0:
            return  # never used here: nothing to report, and a watcher keeps saying so
        try:
            status = self.lazy.status()
            if final:
                status = {**status, "servers": [], "stopped": True,
                          "note": "the server process stopped, and its language servers with it"}
            status = json.dumps(status, default=str)
            with self.store.transaction() as conn:
                conn.execute(
                    "INSERT OR REPLACE INTO component_status (name, pid, status, updated_at) VALUES (?, ?, ?, ?)",
                    ("semantic", os.getpid(), status, time.time()),
                )
        except Exception:  # a status report must never fail a call or a shutdown
            log.debug("could not publish the semantic status", exc_info=True)


def _register(tools: Toolbox, app: Any, lazy: _LazyService) -> None:
    settings = app.settings
    refusal = root_refusal(settings.project_root)
    store = getattr(app, "store", None)
    publisher = _Publisher(lazy, store) if store is not None else None
    pool = SemanticPool(workers=getattr(settings, "semantic_workers", 4),
                        deadline_s=getattr(settings, "semantic_deadline_s", 20.0))

    async def _run(method: str, *args: Any) -> Any:
        from ansf_mcp.semantic.service import USER_ERRORS

        if refusal:
            raise ToolError(refusal)

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
        finally:
            if publisher is not None and publisher.due():
                await anyio.to_thread.run_sync(publisher.now)

    @tools.add(Kind.READ, "Symbols overview")
    async def symbols_overview(
        relative_path: RelativePath,
        depth: Annotated[int, Field(ge=0, le=10, description="0: top-level symbols only; 1: with their children")]
        = 0,
    ) -> Shrinking[SymbolsOverview]:
        """Top-level symbols of a file or folder (relative_path); depth>0 adds children."""
        return overview_steps(await _run("symbols_overview", relative_path, depth))

    @tools.add(Kind.READ, "Find symbols")
    async def find_symbol(
        name_path: NamePath,
        relative_path: Annotated[
            str | None, Field(description="a file or folder to search in, relative to the project root; "
                                          "leave out to search the whole project")
        ] = None,
        include_body: Annotated[bool, Field(description="also return each symbol's source text")] = False,
        substring: Annotated[bool, Field(description="match the last name-path part as a substring")] = False,
        max_matches: Annotated[int, Field(ge=1, le=1000, description="at most this many matches")] = 50,
    ) -> Shrinking[FoundSymbols]:
        """Find symbols by name path ('Class/method', '/top', 'f[1]'), optionally in a file or folder;
        include_body returns source."""
        return symbol_steps(
            await _run("find_symbol", name_path, relative_path, include_body, substring, max_matches))

    @tools.add(Kind.READ, "Find references")
    async def find_references(
        name_path: NamePath,
        relative_path: Annotated[str, Field(description="the file that defines the symbol, relative to the "
                                                        "project root")],
    ) -> Shrinking[References]:
        """References to the symbol name_path defined in relative_path (1-based lines/columns, enclosing
        symbol, context)."""
        return reference_steps(await _run("find_references", name_path, relative_path))

    @tools.add(Kind.READ, "Go to definition")
    async def goto_definition(relative_path: RelativePath, line: Line, column: Column) -> Definitions:
        """Definition(s) of the name at relative_path:line:column (1-based)."""
        answer = Definitions.model_validate(await _run("goto_definition", relative_path, line, column))
        for d in answer.definitions:
            if d.external_path:
                d.external_path = outside_name(d.external_path)
        return answer

    providers = getattr(app, "status_providers", None)
    if isinstance(providers, dict):
        providers["semantic"] = lazy.status
    hooks = getattr(app, "on_shutdown", None)
    if isinstance(hooks, list):
        if publisher is not None:
            hooks.append(lambda: publisher.now(final=True))  # runs after lazy.shutdown (hooks run newest first)
        hooks.append(pool.shutdown)
        hooks.append(lazy.shutdown)  # runs first (hooks run newest first): servers stop, stuck calls end
    governor = getattr(app, "governor", None)
    if governor is not None:
        governor.on_pressure.append(lazy.trim)
