"""The semantic host: everything the semantic tools stand on, in one object the server builds once.

It owns the lazily built service (multilspy, diskcache: ~8 MB of imports, paid on the first semantic call only),
the worker pool with its deadlines, the background index and its budget per operating phase, the guard against
serving the file system root or the home folder, and the status (published to the store off the event loop,
best-effort). Its methods are typed: each answers with the model the tool returns, or raises SemanticCallError
with one sentence for the caller.
"""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from ansf_mcp.semantic.defaults import SEMANTIC_DEADLINE_SECONDS, SEMANTIC_WORKERS
from ansf_mcp.semantic.models import (
    Definitions,
    Diagnostics,
    EditResult,
    FoundSymbols,
    PatternMatches,
    References,
    SymbolsOverview,
)
from ansf_mcp.semantic.pool import SemanticCallError, SemanticPool

if TYPE_CHECKING:
    from ansf_mcp.semantic.service import SemanticService

log = logging.getLogger(__name__)

T = TypeVar("T")
Progress = Callable[[int, "int | None", str], None]  # (done, total or None, message), from a worker thread

# Whole-project calls (many language-server requests, each under its own timeout) get a longer deadline.
LONG_CALL_FACTOR = 6
# Files the background index may parse, per operating phase: none when memory is critical.
INDEX_FILES = {"critical": 0, "enhanced": 500, "optimal": 2_000}
INDEX_MIN_FREE_BYTES = 100_000_000  # the index fills the cache (<= 25 MB); never on a nearly full disk
PUBLISH_EVERY_S = 5.0
# After a caller's call ends the index waits this long more: an agent's next call usually follows at once.
QUERY_QUIET_S = 0.5
# An index held this long by callers' calls lets its own language server go (memory), started again on resuming.
LONG_WAIT_S = 10.0


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


def low_on_disk(data_dir: Path) -> bool:
    probe = data_dir
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        return shutil.disk_usage(probe).free < INDEX_MIN_FREE_BYTES
    except OSError:
        return True


def index_budget(phase: str | None) -> int:
    """Files the index may parse in `phase` (a phase label such as '2 enhanced'; None: not governed)."""
    if phase is None:
        return INDEX_FILES["optimal"]
    name = phase.rsplit(" ", 1)[-1]
    return INDEX_FILES.get(name, INDEX_FILES["optimal"] if name == "governed" else 0)


def last_name(name_path: str) -> str:
    """The name a name path ends in (`Class/method[1]` -> `method`)."""
    return name_path.strip().rstrip("/").rsplit("/", 1)[-1].split("[", 1)[0]


def checker_refusal(phase: str | None) -> str | None:
    """Why no type checker may start in `phase` (critical: it is the layer's largest process), or None."""
    if phase is not None and phase.rsplit(" ", 1)[-1] == "critical":
        return "no type checker is started while memory is critical (operating phase 1)"
    return None


class QueryGate:
    """Callers' semantic calls in flight. The background index waits at the gate before each file, so the first
    heavy query on a fresh server has the language server and the CPU to itself; the index resumes when no call
    has run for `quiet_s`."""

    def __init__(self, quiet_s: float = QUERY_QUIET_S, clock: Callable[[], float] = time.monotonic) -> None:
        self.quiet_s, self.clock = quiet_s, clock
        self._cond = threading.Condition()
        self.active = 0
        self._last_end = float("-inf")
        self.waits = 0  # how often the index found a call in flight (status)
        self.waited_s = 0.0

    @contextmanager
    def query(self) -> Iterator[None]:
        with self._cond:
            self.active += 1
        try:
            yield
        finally:
            with self._cond:
                self.active -= 1
                self._last_end = self.clock()
                self._cond.notify_all()

    def wait_idle(self, stop: threading.Event, limit_s: float = 600.0, on_long_wait: Callable[[], None] | None = None,
                  long_s: float = LONG_WAIT_S) -> None:
        """Block while a call is in flight or ended less than `quiet_s` ago (at most `limit_s`, or until `stop`);
        `on_long_wait()` runs once, outside the lock, when calls have held the wait for `long_s`."""
        t0 = self.clock()
        with self._cond:
            counted = False
            while not stop.is_set() and self.clock() - t0 < limit_s:
                quiet_for = self.clock() - self._last_end
                if self.active == 0 and quiet_for >= self.quiet_s:
                    break
                if not counted:
                    counted = True
                    self.waits += 1
                if on_long_wait is not None and self.clock() - t0 >= long_s:
                    hook, on_long_wait = on_long_wait, None
                    self._cond.release()  # stopping a process takes seconds: callers must not wait on the lock
                    try:
                        hook()
                    finally:
                        self._cond.acquire()
                    continue
                self._cond.wait(0.5 if self.active else max(0.01, self.quiet_s - quiet_for))
            if counted:
                self.waited_s += self.clock() - t0


class StatusPublisher:
    """Writes the semantic status to the store from its own thread, at most every `every_s`: a watcher in another
    process (the standalone dashboard) sees the language servers of the process that runs them, and no call ever
    waits for the store's lock. Best-effort: a failed write is logged at debug level and forgotten."""

    def __init__(self, status: Callable[[], dict[str, Any]], write: Callable[[str], None],
                 every_s: float = PUBLISH_EVERY_S) -> None:
        self._status, self._write, self.every_s = status, write, every_s
        self._due = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.used = False
        self.written = 0

    def poke(self) -> None:
        """Ask for a write soon (never blocks)."""
        self.used = True
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="semantic-status", daemon=True)
                self._thread.start()
        self._due.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._due.wait()
            if self._stop.is_set():
                return
            self._due.clear()
            self.publish()
            self._stop.wait(self.every_s)  # rate limit: pokes meanwhile coalesce into the next write

    def publish(self, final: bool = False) -> None:
        try:
            status = self._status()
            if final:
                status = {**status, "servers": [], "stopped": True,
                          "note": "the server process stopped, and its language servers with it"}
            self._write(json.dumps(status, default=str))
            self.written += 1
        except Exception:  # a status report must never fail a call or a shutdown
            log.debug("could not publish the semantic status", exc_info=True)

    def close(self) -> None:
        self._stop.set()
        self._due.set()
        if self._thread is not None:  # a write in flight lands first: the final word is the last
            self._thread.join(timeout=10)
        if self.used:  # never used here: nothing to report, and a watcher keeps saying so
            self.publish(final=True)


class SemanticHost:
    def __init__(self, project_root: Path, data_dir: Path, *, read_only: bool = False, workers: int = SEMANTIC_WORKERS,
                 deadline_s: float = SEMANTIC_DEADLINE_SECONDS, index: bool = False, phase: Callable[[], str | None] | None = None,
                 publish: Callable[[str], None] | None = None, **service_options: Any) -> None:
        """`phase`: the operating phase's label now (the index budget follows it); `publish`: writes the status
        (JSON) where watchers read it; `service_options`: passed to SemanticService (tests, benchmarks)."""
        self.root = Path(project_root).resolve()
        self.data_dir = Path(data_dir).resolve()
        self.read_only = read_only
        self.refusal = root_refusal(self.root)
        self.pool = SemanticPool(workers=workers, deadline_s=deadline_s)
        self.index_enabled = index
        self._phase = phase or (lambda: None)
        self._service_options = service_options
        self._service: SemanticService | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.index_thread: threading.Thread | None = None
        self.gate = QueryGate()
        self.publisher = StatusPublisher(self.status, publish) if publish is not None else None

    # ---- life --------------------------------------------------------------------------------------
    def service(self) -> SemanticService:
        with self._lock:
            if self._service is None:
                from ansf_mcp.semantic.service import SemanticService

                self._service = SemanticService(self.root, self.data_dir, read_only=self.read_only,
                                                **self._service_options)
                self._service.checker_refusal = lambda: checker_refusal(self._phase())
            return self._service

    def index_budget(self) -> int:
        return index_budget(self._phase())

    def start(self) -> None:
        """Server start (quick): roll back edits a crash interrupted, then index in the background."""
        if not self.read_only:
            from ansf_mcp.semantic.journal import recover

            recover(self.data_dir)
        if self.index_enabled and self.refusal is None:
            self.start_indexing()

    def start_indexing(self) -> threading.Thread:
        """Index the project in a daemon thread (the service and its language servers start there, and only when
        the project has source files of a served language: an idle server elsewhere stays light)."""

        def run() -> None:
            from ansf_mcp.semantic.languages import SOURCE_EXTENSIONS
            from ansf_mcp.semantic.paths import walk_files

            try:
                if not any(True for _ in walk_files(self.root, self.root, SOURCE_EXTENSIONS, limit=1)) \
                        or self.index_budget() == 0:
                    return
                if low_on_disk(self.data_dir):
                    log.warning("semantic index skipped: less than %d MB free under %s (the cache would take "
                                "room the store needs)", INDEX_MIN_FREE_BYTES // 10**6, self.data_dir)
                    return
                service = self.service()
                service.index(self.index_budget, self._stop, pause=lambda: self.gate.wait_idle(
                    self._stop, on_long_wait=lambda: service.stop_index_servers(
                        f"callers' calls held the index for {LONG_WAIT_S:.0f} s; started again when it resumes")))
            except Exception:  # an index is an optimisation: log, never crash the server
                log.exception("semantic index failed")

        thread = threading.Thread(target=run, name="semantic-index", daemon=True)
        thread.start()
        self.index_thread = thread
        return thread

    def shutdown(self) -> None:
        """Servers stop (stuck calls end with them), the pool lets its threads go, the final status is written."""
        self._stop.set()
        if self.index_thread is not None:
            self.index_thread.join(timeout=5)
        if self._service is not None:
            self._service.shutdown()
        self.pool.shutdown()
        if self.publisher is not None:
            self.publisher.close()

    def trim(self) -> None:
        if self._service is not None:
            self._service.trim_memory()

    def status(self) -> dict[str, Any]:
        if self._service is None:
            return {"started": False, "note": "no semantic query yet; language servers start on first use"}
        status = self._service.status()
        if status.get("index") is not None:
            status["index"] = {**status["index"], "waits_for_queries": self.gate.waits,
                               "waited_for_queries_s": round(self.gate.waited_s, 2)}
        return status

    # ---- calls -------------------------------------------------------------------------------------
    async def run(self, what: str, fn: Callable[[SemanticService], T], *, long: bool = False,
                  cancel: threading.Event | None = None) -> T:
        """`fn(service)` on a worker under the deadline (`long`: whole-project calls); errors meant for the
        caller become SemanticCallError. `cancel` is set when the caller goes away, for calls that watch it."""
        from ansf_mcp.semantic.service import USER_ERRORS

        if self.refusal:
            raise SemanticCallError(self.refusal)
        deadline = self.pool.deadline_s * LONG_CALL_FACTOR if long else None
        try:
            return await self.pool.run(what, lambda: self._call(fn), deadline)
        except USER_ERRORS as exc:
            raise SemanticCallError(str(exc)) from exc
        except OSError as exc:  # e.g. a path longer than the file system allows
            raise SemanticCallError(f"{what}: cannot read that path ({exc.strerror or exc})") from exc
        except UnicodeError as exc:  # a lone surrogate cannot name a file
            raise SemanticCallError(f"{what}: the path is not valid Unicode text") from exc
        except asyncio.CancelledError:
            if cancel is not None:
                cancel.set()
            raise
        finally:
            if cancel is not None:  # a call past its deadline stops too: its answer would go nowhere
                cancel.set()
            if self.publisher is not None:
                self.publisher.poke()

    def _call(self, fn: Callable[[SemanticService], T]) -> T:
        with self.gate.query():  # on the worker: a call past its deadline still holds the index back
            return fn(self.service())

    @staticmethod
    def _what(method: str, first: object) -> str:
        return f"{method}({repr(first)[:80]})"

    async def symbols_overview(self, relative_path: str, depth: int = 0) -> SymbolsOverview:
        return await self.run(self._what("symbols_overview", relative_path),
                              lambda s: s.symbols_overview(relative_path, depth), long=True)

    async def find_symbol(self, name_path: str, relative_path: str | None = None, include_body: bool = False,
                          substring: bool = False, max_matches: int = 50, include_info: bool = False
                          ) -> FoundSymbols:
        return await self.run(self._what("find_symbol", name_path), lambda s: s.find_symbol(
            name_path, relative_path, include_body, substring, max_matches, include_info=include_info), long=True)

    async def find_references(self, name_path: str, relative_path: str, cursor: str | None = None,
                              page_chars: int | None = None, progress: Progress | None = None) -> References:
        def refs(s: SemanticService) -> References:
            s.hint_index(last_name(name_path))  # the files it will name are indexed next, beside the query
            return s.find_references(name_path, relative_path, cursor=cursor, page_chars=page_chars,
                                     progress=progress)

        return await self.run(self._what("find_references", name_path), refs, long=True)

    async def goto_definition(self, relative_path: str, line: int, column: int) -> Definitions:
        return await self.run(self._what("goto_definition", relative_path),
                              lambda s: s.goto_definition(relative_path, line, column))

    async def search_for_pattern(self, pattern: str, relative_path: str | None = None,
                                 include_glob: str | None = None, exclude_glob: str | None = None,
                                 context_lines: int = 0, ignore_case: bool = False, code_only: bool = False,
                                 cursor: str | None = None, page_chars: int = 20_000) -> PatternMatches:
        stop = threading.Event()
        return await self.run(self._what("search_for_pattern", pattern), lambda s: s.search_for_pattern(
            pattern, relative_path, include_glob, exclude_glob, context_lines, ignore_case, code_only, cursor,
            page_chars, stop=stop), long=True, cancel=stop)

    async def get_diagnostics(self, relative_path: str) -> Diagnostics:
        return await self.run(self._what("get_diagnostics", relative_path),
                              lambda s: s.get_diagnostics(relative_path))

    async def replace_symbol_body(self, name_path: str, relative_path: str, body: str,
                                  allow_type_errors: bool = False) -> EditResult:
        return await self.run(self._what("replace_symbol_body", name_path),
                              lambda s: s.replace_symbol_body(name_path, relative_path, body,
                                                              allow_type_errors=allow_type_errors))

    async def insert_before_symbol(self, name_path: str, relative_path: str, body: str,
                                   allow_type_errors: bool = False) -> EditResult:
        return await self.run(self._what("insert_before_symbol", name_path),
                              lambda s: s.insert_before_symbol(name_path, relative_path, body,
                                                               allow_type_errors=allow_type_errors))

    async def insert_after_symbol(self, name_path: str, relative_path: str, body: str,
                                  allow_type_errors: bool = False) -> EditResult:
        return await self.run(self._what("insert_after_symbol", name_path),
                              lambda s: s.insert_after_symbol(name_path, relative_path, body,
                                                              allow_type_errors=allow_type_errors))

    async def rename_symbol(self, name_path: str, relative_path: str, new_name: str,
                            allow_type_errors: bool = False) -> EditResult:
        def rename(s: SemanticService) -> EditResult:
            s.hint_index(last_name(name_path))  # the index fetches the files that mention it first
            return s.rename_symbol(name_path, relative_path, new_name, allow_type_errors=allow_type_errors)

        return await self.run(self._what("rename_symbol", name_path), rename, long=True)

    async def safe_delete_symbol(self, name_path: str, relative_path: str) -> EditResult:
        return await self.run(self._what("safe_delete_symbol", name_path),
                              lambda s: s.safe_delete_symbol(name_path, relative_path), long=True)

