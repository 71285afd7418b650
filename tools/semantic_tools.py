"""Semantic tools: symbols, definitions and references through real language servers (thin over the core)."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import queue
import shutil
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import anyio
from ansf_mcp.semantic.models import (
    Definitions,
    Diagnostics,
    EditResult,
    FoundSymbols,
    PatternMatches,
    References,
    SymbolsOverview,
)
from ansf_mcp.tools.answers import Shrinking, render
from ansf_mcp.tools.registry import Kind, Toolbox
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import BaseModel, Field

if TYPE_CHECKING:
    from ansf_mcp.semantic.service import SemanticService

Progress = Callable[[int, "int | None", str], None]

log = logging.getLogger(__name__)

RelativePath = Annotated[
    str, Field(description="a file or folder relative to the project root, e.g. 'src/pkg/module.py'")
]
NamePath = Annotated[
    str,
    Field(description="a symbol's name path: 'Class/method', '/top_level' (anchored), 'name[1]' (the second of "
                      "that name)"),
]
DefiningFile = Annotated[str, Field(description="the file that defines the symbol, relative to the project root")]
Line = Annotated[int, Field(ge=1, description="1-based line number")]
Column = Annotated[int, Field(ge=1, description="1-based column number")]
Body = Annotated[str, Field(min_length=1, max_length=200_000,
                            description="source text; its indentation is adjusted to the symbol's")]
PAGE_SHARE = 0.4  # first page budget, in JSON characters of its items, as a share of the cap on what is sent
PROGRESS_EVERY_S = 1.0
# Whole-project calls (many language-server requests, each under its own timeout) get a longer deadline.
LONG_CALLS = frozenset({"find_references", "rename_symbol", "safe_delete_symbol", "search_for_pattern", "find_symbol",
                        "symbols_overview"})  # the last two when they scan a folder or the whole project
LONG_CALL_FACTOR = 6


class _LazyService:
    """Builds the semantic service (multilspy, diskcache: ~8 MB of imports) on the first semantic call,
    so an idle server that never reads code does not carry it."""

    def __init__(self, factory: Callable[[], SemanticService], read_only: bool = False):
        self._factory = factory
        self.read_only = read_only
        self._service: SemanticService | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._index_thread: threading.Thread | None = None

    def get(self) -> SemanticService:
        with self._lock:
            if self._service is None:
                self._service = self._factory()
            return self._service

    def status(self) -> dict[str, Any]:
        if self._service is None:
            return {"started": False, "note": "no semantic query yet; language servers start on first use"}
        return self._service.status()

    def start_indexing(self, root: Any, budget: Callable[[], int], data_dir: Any = None) -> threading.Thread:
        """Index the project in a daemon thread (the service and its language servers start there, and only when
        the project has source files of a served language: an idle server elsewhere stays light)."""

        def run() -> None:
            from ansf_mcp.semantic.extensions import SOURCE_EXTENSIONS
            from ansf_mcp.semantic.paths import walk_files

            try:
                if not any(True for _ in walk_files(root, root, SOURCE_EXTENSIONS, limit=1)) or budget() == 0:
                    return
                if data_dir is not None and low_on_disk(Path(data_dir)):
                    log.warning("semantic index skipped: less than %d MB free under %s (the cache would take "
                                "room the store needs)", INDEX_MIN_FREE_BYTES // 10**6, data_dir)
                    return
                self.get().index(budget, self._stop)
            except Exception:  # an index is an optimisation: log, never crash the server
                log.exception("semantic index failed")

        thread = threading.Thread(target=run, name="semantic-index", daemon=True)
        thread.start()
        self._index_thread = thread
        return thread

    def shutdown(self) -> None:
        self._stop.set()
        if self._index_thread is not None:
            self._index_thread.join(timeout=5)
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

    async def run(self, what: str, fn: Callable[[], Any], deadline_s: float | None = None) -> Any:
        """`deadline_s`: a longer deadline for calls that report progress while they work (references and
        renames over a whole project: many requests, each under the language server's own timeout)."""
        if why := self.unavailable():
            raise ToolError(why)
        fut = self._submit(fn)
        started = time.monotonic()
        deadline = deadline_s or self.deadline_s
        try:
            return await asyncio.wait_for(asyncio.wrap_future(fut), deadline)
        except TimeoutError:
            if fut.cancelled():  # never started: every worker was busy for the whole deadline
                raise ToolError(f"{what}: all {self.workers} semantic workers stayed busy for "
                                f"{deadline:.0f} s; try again shortly") from None
            with self._lock:
                if not fut.done():
                    self._stuck[fut] = (what, started)
                queued = [f for f in self._pending if f is not fut and not f.running()]
            for f in queued:  # they would only wait behind the stuck call: answer them now
                f.cancel()
            log.warning("semantic call %s passed its %.0f s deadline; %d queued call(s) failed fast",
                        what, deadline, len(queued))
            raise ToolError(f"{what}: no answer from the language server within {deadline:.0f} s "
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
    """Add the semantic tools (the editing ones unless read-only); the service and its language servers start
    lazily on first use."""
    settings = app.settings
    read_only = bool(getattr(settings, "read_only", False))

    def build() -> SemanticService:
        from ansf_mcp.semantic.service import SemanticService

        return SemanticService(settings.project_root, settings.data_dir, read_only=read_only)

    lazy = _LazyService(build, read_only)
    _register(tools, app, lazy)
    starts = getattr(app, "on_start", None)
    if getattr(settings, "semantic_index", False) and isinstance(starts, list):
        if root_refusal(settings.project_root) is None:
            starts.append(lambda: lazy.start_indexing(settings.project_root, lambda: index_budget(app),
                                                      settings.data_dir))


# Files the background index may parse, per operating phase: none when memory is critical.
INDEX_FILES = {"critical": 0, "enhanced": 500, "optimal": 2_000}


INDEX_MIN_FREE_BYTES = 100_000_000  # the index fills the cache (<= 25 MB); never on a nearly full disk


def low_on_disk(data_dir: Path) -> bool:
    probe = data_dir
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        return shutil.disk_usage(probe).free < INDEX_MIN_FREE_BYTES
    except OSError:
        return True


def index_budget(app: Any) -> int:
    governor = getattr(app, "governor", None)
    if governor is None:
        return INDEX_FILES["optimal"]
    return INDEX_FILES.get(governor.refresh(), 0)


def register_with_service(tools: Toolbox, app: Any, **service_options: Any) -> SemanticService:
    """`register` with an eagerly built service, returned (tests and the benchmark use it)."""
    from ansf_mcp.semantic.service import SemanticService

    service = SemanticService(app.settings.project_root, app.settings.data_dir, **service_options)
    lazy = _LazyService(lambda: service, service.read_only)
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
    """A page (already fitted to the cap) -> without context lines -> per-file counts -> the total."""
    slim = [{**f, "references": [{k: v for k, v in r.items() if k != "context"} for r in f["references"]]}
            for f in result["files"]]
    return Shrinking(
        References.model_validate(result),
        lambda: References.model_validate({**result, "files": slim, "shrunk": "too large: context lines dropped"}),
        lambda: References.model_validate(
            {**result, "files": [], "per_file": {f["relative_path"]: f["count"] for f in result["files"]},
             "shrunk": "too large: only per-file counts given; query a narrower symbol"}),
        lambda: References.model_validate(
            {**result, "files": [], "shrunk": "too large even as per-file counts: only the total is given"}),
    )


async def fitted(build: Callable[[int], Awaitable[dict[str, Any]]], model: type[BaseModel], cap: int) -> dict[str, Any]:
    """A page whose answer, as sent (text + structured content), fits `cap`: built with a budget in JSON
    characters of its items, measured, and rebuilt smaller while it does not fit."""
    budget = max(500, int(cap * PAGE_SHARE))
    page = await build(budget)
    for _ in range(4):
        _result, sent = render(model.model_validate(page), None)
        if sent <= cap or budget <= 500:
            break
        budget = max(500, int(budget * cap / sent * 0.9))
        page = await build(budget)
    return page


async def with_progress(ctx: Context, start: Callable[[Progress], Awaitable[Any]]) -> Any:
    """Run a long semantic call, sending a progress notification every PROGRESS_EVERY_S seconds while it runs
    (what it is doing, files done of total, seconds so far); nothing is sent for calls that finish sooner."""
    state: dict[str, Any] = {"done": 0, "total": None, "message": "working"}
    t0 = time.monotonic()

    def progress(done: int, total: int | None, message: str) -> None:  # called from the worker thread
        state.update(done=done, total=total, message=message)

    async def beat() -> None:
        while True:
            await anyio.sleep(PROGRESS_EVERY_S)
            elapsed = time.monotonic() - t0
            files = f"; {state['done']} of {state['total']} files" if state["total"] else ""
            try:  # progress must grow: seconds elapsed do
                await ctx.report_progress(round(elapsed, 1), None, f"{state['message']}{files} ({elapsed:.0f} s)")
            except Exception:  # a client that went away must not fail the call
                log.debug("progress notification failed", exc_info=True)

    result: Any = None
    error: Exception | None = None
    async with anyio.create_task_group() as tg:
        tg.start_soon(beat)
        try:
            result = await start(progress)
        except Exception as exc:  # raised as itself, not inside an exception group
            error = exc
        tg.cancel_scope.cancel()
    if error is not None:
        raise error
    return result


def _register_editing(tools: Toolbox, _run: Callable[..., Awaitable[Any]]) -> None:
    """The editing tools (left out when the server is read-only)."""

    @tools.add(Kind.DESTRUCTIVE, "Replace a symbol's body")
    async def replace_symbol_body(
        name_path: NamePath, relative_path: DefiningFile, body: Body,
    ) -> EditResult:
        """Replace a symbol's whole definition (signature included) with body; decorators stay unless body
        starts with one. Atomic."""
        return EditResult.model_validate(await _run("replace_symbol_body", name_path, relative_path, body))

    @tools.add(Kind.WRITE, "Insert before a symbol")
    async def insert_before_symbol(
        name_path: NamePath, relative_path: DefiningFile, body: Body,
    ) -> EditResult:
        """Insert body before a symbol (and its decorators), at its indentation, e.g. a new function or import."""
        return EditResult.model_validate(await _run("insert_before_symbol", name_path, relative_path, body))

    @tools.add(Kind.WRITE, "Insert after a symbol")
    async def insert_after_symbol(
        name_path: NamePath, relative_path: DefiningFile, body: Body,
    ) -> EditResult:
        """Insert body after a symbol's last line, at its indentation, e.g. a new method after another."""
        return EditResult.model_validate(await _run("insert_after_symbol", name_path, relative_path, body))

    @tools.add(Kind.DESTRUCTIVE, "Rename a symbol")
    async def rename_symbol(
        name_path: NamePath, relative_path: DefiningFile,
        new_name: Annotated[str, Field(min_length=1, max_length=200, description="the new identifier")],
    ) -> EditResult:
        """Rename a symbol everywhere in the project with the language server's rename: all files written, or
        none."""
        return EditResult.model_validate(await _run("rename_symbol", name_path, relative_path, new_name))

    @tools.add(Kind.DESTRUCTIVE, "Delete an unused symbol")
    async def safe_delete_symbol(name_path: NamePath, relative_path: DefiningFile) -> EditResult:
        """Delete a symbol (with its decorators) only if nothing refers to it; otherwise say where it is used."""
        return EditResult.model_validate(await _run("safe_delete_symbol", name_path, relative_path))


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
                    "INSERT INTO component_status (name, pid, status, updated_at) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT (name) DO UPDATE SET pid = excluded.pid, status = excluded.status, "
                    "updated_at = excluded.updated_at",
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

    async def _run(method: str, *args: Any, **kwargs: Any) -> Any:
        from ansf_mcp.semantic.service import USER_ERRORS

        if refusal:
            raise ToolError(refusal)

        def call() -> Any:
            return getattr(lazy.get(), method)(*args, **kwargs)

        what = f"{method}({', '.join(repr(a)[:80] for a in args[:1])})"
        long = pool.deadline_s * LONG_CALL_FACTOR if method in LONG_CALLS else None
        try:
            return await pool.run(what, call, long)
        except USER_ERRORS as exc:
            raise ToolError(str(exc)) from exc
        except OSError as exc:  # e.g. a path longer than the file system allows
            raise ToolError(f"{what}: cannot read that path ({exc.strerror or exc})") from exc
        except UnicodeError as exc:  # a lone surrogate cannot name a file
            raise ToolError(f"{what}: the path is not valid Unicode text") from exc
        finally:
            if publisher is not None and publisher.due():
                await anyio.to_thread.run_sync(publisher.now)

    async def _with_progress(ctx: Context, method: str, *args: Any, **kwargs: Any) -> Any:
        return await with_progress(ctx, lambda progress: _run(method, *args, progress=progress, **kwargs))

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
        include_info: Annotated[bool, Field(description="also return signature and docstring (the language "
                                                        "server's hover), for the first 20 matches")] = False,
    ) -> Shrinking[FoundSymbols]:
        """Find symbols by name path ('Class/method', '/top', 'f[1]'), optionally in a file or folder;
        include_body returns source, include_info signature and docs."""
        return symbol_steps(await _run("find_symbol", name_path, relative_path, include_body, substring,
                                       max_matches, include_info=include_info))

    @tools.add(Kind.READ, "Find references")
    async def find_references(
        ctx: Context,
        name_path: NamePath,
        relative_path: Annotated[str, Field(description="the file that defines the symbol, relative to the "
                                                        "project root")],
        cursor: Annotated[str | None, Field(description="next_cursor of the previous page; leave out for the "
                                                        "first page")] = None,
    ) -> Shrinking[References]:
        """References to name_path defined in relative_path, grouped by file, paged (next_cursor); 1-based
        line/column, enclosing symbol, context."""

        async def page(budget: int) -> dict[str, Any]:
            return await _with_progress(ctx, "find_references", name_path, relative_path, cursor=cursor,
                                        page_chars=budget)

        return reference_steps(await fitted(page, References, tools.max_answer_chars))

    @tools.add(Kind.READ, "Go to definition")
    async def goto_definition(relative_path: RelativePath, line: Line, column: Column) -> Definitions:
        """Definition(s) of the name at relative_path:line:column (1-based)."""
        answer = Definitions.model_validate(await _run("goto_definition", relative_path, line, column))
        for d in answer.definitions:
            if d.external_path:
                d.external_path = outside_name(d.external_path)
        return answer

    @tools.add(Kind.READ, "Search for a pattern")
    async def search_for_pattern(
        pattern: Annotated[str, Field(min_length=1, max_length=2000,
                                      description="a Python regular expression, matched line by line")],
        relative_path: Annotated[str | None, Field(description="a file or folder to search, relative to the "
                                                               "project root; leave out for the whole project")]
        = None,
        include_glob: Annotated[str | None, Field(description="only files matching this glob, e.g. '*.py' or "
                                                              "'src/**/*.ts'")] = None,
        exclude_glob: Annotated[str | None, Field(description="skip files matching this glob")] = None,
        context_lines: Annotated[int, Field(ge=0, le=10, description="lines of context before and after")] = 0,
        ignore_case: Annotated[bool, Field(description="match letters regardless of case")] = False,
        code_only: Annotated[bool, Field(description="only source files of the supported languages")] = False,
        cursor: Annotated[str | None, Field(description="next_cursor of the previous page")] = None,
    ) -> PatternMatches:
        """Regular-expression search over the project's text files (skips VCS, virtualenvs, build output,
        binaries); paged with next_cursor."""

        async def page(budget: int) -> dict[str, Any]:
            return await _run("search_for_pattern", pattern, relative_path, include_glob, exclude_glob,
                              context_lines, ignore_case, code_only, cursor, budget)

        return PatternMatches.model_validate(await fitted(page, PatternMatches, tools.max_answer_chars))

    @tools.add(Kind.READ, "Diagnostics of a file")
    async def get_diagnostics(relative_path: RelativePath) -> Diagnostics:
        """Errors and warnings the language server reports for a file (Python: syntax errors only)."""
        return Diagnostics.model_validate(await _run("get_diagnostics", relative_path))

    if not lazy.read_only:
        _register_editing(tools, _run)
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
