"""Language-server processes over multilspy's JSON-RPC handler: lifecycle, timeouts, restart, document sync.

One background thread runs an asyncio loop that owns every server process. Callers (worker threads) submit
coroutines with `LspLoop.call`. Each request has a timeout; a hung or dead server is restarted and the request
retried once. Children get PR_SET_PDEATHSIG(SIGKILL) and their own process group, and receive our pid as the
LSP `processId`, so they die with us even after SIGKILL of this process.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import hashlib
import logging
import os
import signal
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
from ansf_mcp.semantic.paths import read_text, settled, stamp_ns, uri_to_path
from ansf_mcp.semantic.positions import OFFERED, UTF16
from multilspy.lsp_protocol_handler.lsp_types import ErrorCodes
from multilspy.lsp_protocol_handler.server import Error as LspProtocolError
from multilspy.lsp_protocol_handler.server import LanguageServerHandler, ProcessLaunchInfo

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # runs in the child between fork and exec
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except Exception:
        pass


class LspError(RuntimeError):
    """A language server failed to answer (after one restart)."""


class LspTimeout(LspError):
    pass


class _ServerExited(LspProtocolError):
    """The server's output ended with the request unanswered: it exited or was killed, it did not refuse."""


class _ServerStopped(_ServerExited):
    """We ended the server ourselves (shutdown, memory pressure, another call's restart): no crash to recover from."""


class LspExited(LspError):
    """The server died while we waited for what it would publish (diagnostics are not a request: no answer fails)."""


class _Handler(LanguageServerHandler):
    """multilspy's handler, started with death-signal + own session so children die with us."""

    REAP_POLL_S = 0.2
    stopped = False  # set when we kill it on purpose (LanguageServer._kill)

    async def start(self) -> None:
        env = os.environ.copy()
        env.update(self.process_launch_info.env)
        self.process = await asyncio.create_subprocess_exec(
            *self.process_launch_info.cmd,
            stdout=asyncio.subprocess.PIPE,
            stdin=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
            cwd=self.process_launch_info.cwd,
            start_new_session=True,
            preexec_fn=_die_with_parent,
            limit=2**20,
        )
        # Set when the process is gone: waits for publications (which no pending request stands for) end on it.
        self.exited = asyncio.Event()
        self.loop = asyncio.get_event_loop()
        self.tasks[self.task_counter] = self.loop.create_task(self.run_forever())
        self.task_counter += 1
        self.tasks[self.task_counter] = self.loop.create_task(self.run_forever_stderr())
        self.task_counter += 1
        self.tasks[self.task_counter] = self.loop.create_task(self._reap())
        self.task_counter += 1

    async def send_request(self, method: str, params: dict | None = None) -> Any:
        # A request written after the server's output ended is answered by nobody (run_forever answered only what
        # was pending then): it would wait out the whole request timeout instead of failing like the one before it.
        if self.exited.is_set():
            raise self._gone()
        return await super().send_request(method, params)

    def _gone(self) -> _ServerExited:
        """What a request to this ended server is answered with: stopped by us, or exited on its own."""
        return (_ServerStopped(ErrorCodes.InternalError, "the language server was stopped") if self.stopped
                else _ServerExited(ErrorCodes.InternalError, "the language server exited"))

    async def _reap(self) -> None:
        """When the process we started dies, its group goes too: a launcher (basedpyright's Python wrapper of a
        node server) killed alone leaves its real server running on our pipes, answering as if nothing happened,
        and alive after every restart and after shutdown."""
        proc = self.process
        assert proc is not None
        while proc.returncode is None:  # not proc.wait(): before 3.12 it also waits for the pipes to close
            await asyncio.sleep(self.REAP_POLL_S)
        self.exited.set()
        _kill_group(proc.pid)

    async def run_forever(self) -> bool:
        try:
            return await super().run_forever()
        finally:
            # The server's stdout ended (it exited or was killed): answer what still waits now, not at the timeout.
            self.exited.set()
            pending = list(self._response_handlers.values())
            self._response_handlers.clear()
            gone = self._gone()
            for request in pending:
                with contextlib.suppress(Exception):
                    await request.on_error(gone)


class LspLoop:
    """A daemon thread running the asyncio loop that owns all language-server processes."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="semantic-lsp-loop", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def call(self, coro, timeout: float | None = None):
        fut = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return fut.result(timeout)

    def stop(self) -> None:
        if self.loop.is_running():
            self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)


@dataclass
class ServerSpec:
    language: str  # human name, e.g. "Python"
    key: str  # short id, e.g. "python"
    cmd: list[str]
    version: str
    init_options: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)  # answers workspace/configuration
    env: dict[str, str] = field(default_factory=dict)
    language_ids: dict[str, str] = field(default_factory=dict)  # extension -> languageId
    wait_for_diagnostics: bool = False  # clangd: wait until a file is parsed before querying
    open_all_for_references: bool = False  # clangd without background index: open project files first
    server_name: str | None = None  # shown in status; default: the command's file name
    # Column unit the server really uses, when it differs from what it announces; None: as negotiated.
    position_encoding: str | None = None
    # Servers that publish diagnostics in stages (syntax first, then semantics): wait this long for a later one.
    diagnostics_settle_s: float = 0.0

    @property
    def display_name(self) -> str:
        return self.server_name or self.cmd[0].rsplit("/", 1)[-1]

    def language_id(self, path: Path) -> str:
        return self.language_ids.get(path.suffix.lower(), self.key)


@dataclass
class _OpenDoc:
    version: int
    mtime_ns: int
    size: int
    ino: int = 0  # an edit replaces the file (a new inode): re-sent even within the clock's granularity
    settled: bool = False  # read long enough after its last write that the stat above stands for the content
    digest: str = ""


_background = threading.local()


@contextlib.contextmanager
def background_work():
    """Requests made inside (the background index) yield to callers' requests: each waits until no caller's
    request has run for FOREGROUND_QUIET_S, so a query never queues behind the index."""
    _background.active = True
    try:
        yield
    finally:
        _background.active = False


class LanguageServer:
    """One running server for (spec, root). Thread-safe `request()`; restarts on hang/death."""

    MAX_OPEN = 64
    FOREGROUND_QUIET_S = 0.3

    def __init__(self, spec: ServerSpec, root: Path, loop: LspLoop, request_timeout: float = 30.0,
                 init_timeout: float = 60.0) -> None:
        self.spec = spec
        self.root = root.resolve()
        self.loop = loop
        self.request_timeout = request_timeout
        self.init_timeout = init_timeout
        self.handler: _Handler | None = None
        self.open_docs: OrderedDict[str, _OpenDoc] = OrderedDict()
        self._lock: asyncio.Lock | None = None
        self._diag: dict[str, asyncio.Event] = {}
        self._published: dict[str, list[dict]] = {}  # uri -> the diagnostics last published for its content
        self._quiet: set[str] = set()  # uris whose last publication settled (nothing followed it)
        self._publications = 0  # publications received so far (what arrived while an overlay stood)
        self._published_at: dict[str, int] = {}  # uri -> the number of its last publication
        self.started_at: float | None = None
        self.start_seconds: float | None = None
        self.restarts = 0
        self.requests = 0
        self.capabilities: dict[str, Any] = {}
        self._foreground = 0  # callers' requests in flight (the background index waits for them)
        self._foreground_at = 0.0
        self._fg_lock = threading.Lock()
        self.position_encoding = UTF16  # what the running server counts columns in (negotiated at initialise)
        # Set by stop(): its owner has dropped it (shutdown, memory trim), so a server started now would be a
        # process nobody stops.
        self.closed = False

    # ---- lifecycle (loop thread) -------------------------------------------------------------------
    @property
    def pid(self) -> int | None:
        h = self.handler
        return h.process.pid if h and h.process else None

    def alive(self) -> bool:
        h = self.handler
        return bool(h and h.process and h.process.returncode is None)

    async def _start(self) -> None:
        if self.handler is not None:  # a dead server's reader and pipes (and any process left in its group) go first
            await self._kill()
            if self.closed:  # stopped on purpose while the dead one was ended: a server started now nobody stops
                raise self._stopped_error()
        t0 = time.perf_counter()
        h = _Handler(ProcessLaunchInfo(cmd=list(self.spec.cmd), env=dict(self.spec.env), cwd=str(self.root)),
                     logger=None)
        self.handler = h
        self.open_docs.clear()
        self._diag.clear()
        self._published.clear()
        self._published_at.clear()
        self._quiet.clear()

        async def _configuration(params):
            items = (params or {}).get("items", [])
            return [self.spec.settings.get(i.get("section", ""), None) if i.get("section") else self.spec.settings
                    for i in items]

        async def _null(_params):
            return None

        async def _ignore(_params):
            return None

        async def _diagnostics(params):
            uri = (params or {}).get("uri")
            if uri:
                self._published[uri] = list((params or {}).get("diagnostics") or [])
                self._publications += 1
                self._published_at[uri] = self._publications
                self._quiet.discard(uri)
                self._diag.setdefault(uri, asyncio.Event()).set()

        h.on_request("workspace/configuration", _configuration)
        h.on_request("client/registerCapability", _null)
        h.on_request("client/unregisterCapability", _null)
        h.on_request("window/workDoneProgress/create", _null)
        h.on_request("window/showMessageRequest", _null)
        h.on_request("workspace/workspaceFolders", lambda _p: _folders(self.root))
        for n in ("window/logMessage", "window/showMessage", "$/progress", "telemetry/event",
                  "language/status", "$/typescriptVersion", "textDocument/clangd.fileStatus"):
            h.on_notification(n, _ignore)
        h.on_notification("textDocument/publishDiagnostics", _diagnostics)
        await h.start()
        if h.stopped or self.closed:  # stopped while its process was being spawned: end it here, nobody else will
            await _end(h)
            if self.handler is h:
                self.handler = None
            raise LspError(f"{self.spec.language} language server ({self.spec.display_name}) was stopped while "
                           "starting")
        params = {
            "processId": os.getpid(),
            "rootPath": str(self.root),
            "rootUri": self.root.as_uri(),
            "workspaceFolders": [{"uri": self.root.as_uri(), "name": self.root.name}],
            "initializationOptions": self.spec.init_options,
            "capabilities": _CLIENT_CAPABILITIES,
            "clientInfo": {"name": "ansf-mcp-semantic", "version": "0.1"},
        }
        try:
            init = await asyncio.wait_for(h.send_request("initialize", params), self.init_timeout)
        except Exception as exc:
            await self._kill()
            raise LspError(f"{self.spec.language} language server ({self.spec.display_name}) failed to initialise: "
                           f"{type(exc).__name__}: {exc}") from exc
        caps = (init or {}).get("capabilities") or {}
        self.capabilities = caps
        self.position_encoding = self.spec.position_encoding or caps.get("positionEncoding") or UTF16
        h.send_notification("initialized", {})
        if self.spec.settings:
            h.send_notification("workspace/didChangeConfiguration", {"settings": self.spec.settings})
        self.started_at = time.time()
        self.start_seconds = time.perf_counter() - t0
        log.info("started %s server pid=%s in %.2fs", self.spec.key, self.pid, self.start_seconds)

    async def _kill(self) -> None:
        h = self.handler
        self.handler = None
        self.open_docs.clear()
        if h is not None:
            await _end(h)

    async def _shutdown(self) -> None:
        h = self.handler
        if h and self.alive():
            with contextlib.suppress(Exception):
                await asyncio.wait_for(h.send_request("shutdown", None), 2)
                h.send_notification("exit", None)
        await self._kill()

    def stop(self) -> None:
        self.closed = True
        with contextlib.suppress(Exception):
            self.loop.call(self._shutdown(), timeout=8)

    # ---- documents (loop thread) -------------------------------------------------------------------
    async def _sync_doc(self, path: Path, h: _Handler) -> str:
        uri = path.as_uri()
        try:
            st = path.stat()
        except FileNotFoundError:
            if uri in self.open_docs:
                self.open_docs.pop(uri)
                h.send_notification("textDocument/didClose", {"textDocument": {"uri": uri}})
            return uri
        doc = self.open_docs.get(uri)
        same = doc is not None and (doc.mtime_ns, doc.size, doc.ino) == (stamp_ns(st), st.st_size, st.st_ino)
        if doc and same and doc.settled:
            self.open_docs.move_to_end(uri)
            return uri
        text, _clean = read_text(path)
        digest = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()
        if doc and doc.digest == digest:  # touched, or read too soon after a write to trust its stat: unchanged
            doc.mtime_ns, doc.size, doc.ino, doc.settled = stamp_ns(st), st.st_size, st.st_ino, settled(st)
            self.open_docs.move_to_end(uri)
            return uri
        if doc:
            doc.version += 1
            doc.mtime_ns, doc.size, doc.ino = stamp_ns(st), st.st_size, st.st_ino
            doc.settled, doc.digest = settled(st), digest
            self._diag.pop(uri, None)
            self._published.pop(uri, None)
            self._quiet.discard(uri)
            h.send_notification("textDocument/didChange", {
                "textDocument": {"uri": uri, "version": doc.version},
                "contentChanges": [{"text": text}],
            })
        else:
            self.open_docs[uri] = _OpenDoc(1, stamp_ns(st), st.st_size, st.st_ino, settled(st), digest)
            self._diag.pop(uri, None)
            self._published.pop(uri, None)
            self._quiet.discard(uri)
            h.send_notification("textDocument/didOpen", {
                "textDocument": {"uri": uri, "languageId": self.spec.language_id(path), "version": 1, "text": text},
            })
            while len(self.open_docs) > self.MAX_OPEN:
                old, _ = self.open_docs.popitem(last=False)
                h.send_notification("textDocument/didClose", {"textDocument": {"uri": old}})
        if self.spec.wait_for_diagnostics:
            ev = self._diag.setdefault(uri, asyncio.Event())
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(ev.wait(), min(self.request_timeout, 20))
        return uri

    async def _refresh_open(self, h: _Handler) -> None:
        """Re-sync every open document whose file changed on disk (so cross-file answers are fresh)."""
        for uri in list(self.open_docs):
            await self._sync_doc(Path(uri_to_path(uri)), h)

    def _request_lock(self) -> asyncio.Lock:
        if self._lock is None:  # made on the loop thread, where it is used
            self._lock = asyncio.Lock()
        return self._lock

    def _stopped_error(self, method: str | None = None) -> LspError:
        what = f" while answering {method}" if method else ""
        return LspError(f"{self.spec.language} language server was stopped{what} (the server is shutting down or "
                        "freeing memory); try again")

    @contextlib.asynccontextmanager
    async def _session(self, used: list[_Handler] | None = None):
        """The server's request lock held and the server started: its handler (also appended to `used`, so that a
        failed call can tell which server failed it)."""
        async with self._request_lock():
            if not self.alive():
                if self.closed:
                    raise self._stopped_error()
                await self._start()
            assert self.handler is not None
            if used is not None:
                used.append(self.handler)
            yield self.handler

    async def _request(self, method: str, path: Path | None, make_params: Callable[[str | None], dict],
                       also_open: list[Path] | None, used: list[_Handler] | None = None) -> Any:
        async with self._session(used) as h:
            await self._refresh_open(h)
            for p in also_open or ():
                await self._sync_doc(p, h)
            uri = await self._sync_doc(path, h) if path is not None else None
            self.requests += 1
            return await asyncio.wait_for(h.send_request(method, make_params(uri)), self.request_timeout)

    async def _restart(self, failed: _Handler | None) -> None:
        """Restart the server that failed a call (None: its start failed), unless another call already did.

        Two calls can fail on one server (the second was sent before the first noticed the death): each restarting
        it would kill the other's new server, or leak one whose spawn the kill did not yet see. The comparison and
        _kill's swap of the handler run with no await between them on the one loop thread, so only one call gets
        past it; it kills outside the request lock, so a call stuck on the hung server is freed at once (it retries
        on the new one), and starts under it, so a call's lazy start and this one never both spawn."""
        if self.handler is not failed:
            return  # restarted (or started afresh) by another call already: the retry goes to that server
        if failed is not None:
            self.restarts += 1
            await self._kill()
        async with self._request_lock():
            if self.closed:  # stopped on purpose meanwhile: its owner has dropped it
                raise self._stopped_error()
            if not self.alive():  # else a call's retry started one while we waited for the lock
                # failed starts share the None handler, so each passes the check above: only one that starts counts
                self.restarts += failed is None
                await self._start()

    async def _retire(self, failed: _Handler | None) -> None:
        """Stop the server that failed a call twice, unless it was already replaced (the new one is another call's)."""
        if failed is not None and self.handler is failed:
            await self._kill()

    def request(self, method: str, path: Path | None, make_params: Callable[[str | None], dict],
                also_open: list[Path] | None = None) -> Any:
        """Blocking; call from a worker thread. Retries once after restarting a hung or dead server."""
        if getattr(_background, "active", False):
            self._yield_to_foreground()
            return self._request_with_retry(method, path, make_params, also_open)
        with self._fg_lock:
            self._foreground += 1
        try:
            return self._request_with_retry(method, path, make_params, also_open)
        finally:
            with self._fg_lock:
                self._foreground -= 1
                self._foreground_at = time.monotonic()

    def _yield_to_foreground(self, limit_s: float = 120.0) -> None:
        end = time.monotonic() + limit_s
        while time.monotonic() < end:
            with self._fg_lock:
                quiet = self._foreground == 0 and time.monotonic() - self._foreground_at >= self.FOREGROUND_QUIET_S
            if quiet:
                return
            time.sleep(0.05)

    def _request_with_retry(self, method: str, path: Path | None, make_params: Callable[[str | None], dict],
                            also_open: list[Path] | None) -> Any:
        last: Exception | None = None
        budget = self.request_timeout + self.init_timeout + 10 + 25 * len(also_open or ())
        for attempt in (1, 2):
            used: list[_Handler] = []
            try:
                return self.loop.call(self._request(method, path, make_params, also_open, used), timeout=budget)
            except _ServerExited as exc:  # a crash (or kill -9) under the request: as for a hang, restart and retry
                last = exc
            except LspProtocolError as exc:
                raise LspError(f"{self.spec.language} server answered {method} with an error: {exc}") from exc
            except LspError as exc:
                last = exc
            except (TimeoutError, BrokenPipeError, ConnectionResetError, OSError) as exc:
                last = exc
            if self.closed:  # stopped on purpose (shutdown, memory trim): nothing is started again here
                raise self._stopped_error(method) from last
            failed = used[0] if used else None
            if isinstance(last, _ServerStopped):  # another call's restart ended it: the new server takes the retry
                if attempt == 1:
                    continue
                break  # stopped twice: leave the server the other call started alone
            if attempt == 2:  # give up; the next call starts a fresh server lazily
                log.warning("%s %s failed again (%r); stopping the server", self.spec.key, method, last)
                with contextlib.suppress(Exception):
                    self.loop.call(self._retire(failed), timeout=10)
                break
            log.warning("%s %s failed (%r); restarting the server and retrying once", self.spec.key, method, last)
            try:
                self.loop.call(self._restart(failed), timeout=self.init_timeout + 10)
            except Exception as exc:
                if self.closed:
                    raise self._stopped_error(method) from exc
                last = exc
                break
        if isinstance(last, (TimeoutError, asyncio.TimeoutError)):
            raise LspTimeout(f"{self.spec.language} language server did not answer {method} within "
                             f"{self.request_timeout:.0f}s, even after a restart; try again shortly")
        if isinstance(last, _ServerExited):
            raise LspError(f"{self.spec.language} language server ({self.spec.display_name}) exited while answering "
                           f"{method}, again after a restart; try again shortly (the next call starts a fresh "
                           "server)")
        raise LspError(f"{self.spec.language} language server failed on {method} (restarted once): {last}; try "
                       "again shortly")

    async def _diagnostics_of(self, path: Path, wait: float, name: str | None) -> list[dict] | None:
        async with self._session() as h:
            uri = await self._sync_doc(path, h)
            ev = self._diag.setdefault(uri, asyncio.Event())
        await self._unless_exited(h, self._settled(uri, ev, wait), [uri], f"diagnostics for {name or path.name}")
        return self._published.get(uri)

    async def _settled(self, uri: str, ev: asyncio.Event, wait: float) -> None:
        """Until a publication came (at most `wait` s) and, for servers that publish in stages, no later one
        followed within the settle time."""
        if uri in self._quiet and ev.is_set():
            return  # settled before, nothing published since: the same content's answer stands
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(ev.wait(), wait)
            while self.spec.diagnostics_settle_s > 0:  # a later stage replaces the earlier list
                ev.clear()
                try:
                    await asyncio.wait_for(ev.wait(), self.spec.diagnostics_settle_s)
                except TimeoutError:
                    # settled: what was published stands for this content, so the next call for the same
                    # content must not wait for a publication that will never come again
                    ev.set()
                    self._quiet.add(uri)
                    break

    async def _diagnostics_for(self, texts: dict[Path, str | None], wait: float,
                               fresh: frozenset[Path]) -> dict[Path, list[dict] | None]:
        # held while waiting: another request would sync the files from disk and undo the overlay
        async with self._session() as h:
            for path in fresh:  # what they had is forgotten before the overlay goes out: their next one counts
                uri = path.as_uri()
                self._diag.pop(uri, None)
                self._published.pop(uri, None)
                self._quiet.discard(uri)
            uris: dict[Path, str] = {}
            overlaid: list[Path] = []
            overlay_from = self._publications
            for path, text in texts.items():
                uri = await self._sync_doc(path, h)
                doc = self.open_docs.get(uri)
                if text is not None and doc is not None:
                    digest = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()
                    if digest != doc.digest:
                        # the overlay is not the file: the next sync compares the file's content and sends it
                        # again unless the file now holds exactly this text (the edit was written)
                        doc.version += 1
                        doc.digest, doc.mtime_ns, doc.settled = digest, -1, False
                        self._diag.pop(uri, None)
                        self._published.pop(uri, None)
                        self._quiet.discard(uri)
                        h.send_notification("textDocument/didChange", {
                            "textDocument": {"uri": uri, "version": doc.version},
                            "contentChanges": [{"text": text}]})
                        overlaid.append(path)
                uris[path] = uri
            # every file settles at once: a rename's files or an edit's importers cost one settle time, not one each
            await self._unless_exited(h, asyncio.gather(
                *(self._settled(uri, self._diag.setdefault(uri, asyncio.Event()), wait) for uri in uris.values())),
                list(uris.values()), "its diagnostics")
            answers = {path: self._published.get(uri) for path, uri in uris.items()}
            if overlaid:
                await self._withdraw(overlaid, overlay_from, h)
            return answers

    async def _unless_exited(self, h: _Handler, waiting, uris: list[str], what: str) -> None:
        """`waiting` (for what is published for `uris`), unless the server dies first: a dead server publishes
        nothing more, so waiting out the caller's budget would only delay the same answer. Raises LspExited,
        saying it died before it published `what`."""
        task = asyncio.ensure_future(waiting)
        died = asyncio.ensure_future(h.exited.wait())
        try:
            await asyncio.wait({task, died}, return_when=asyncio.FIRST_COMPLETED)
            finished = task.done()  # the wait ended on its own, not cancelled below
        finally:
            died.cancel()
            if not task.done():
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
        # The wait settled with a publication for every file before the death was seen (the server published, then
        # exited): that answer arrived and stands. Settled without one (its wait ran out) it is no answer, and a
        # death with the wait still running raises at once: a staged publisher's first list may be partial.
        if not finished or (h.exited.is_set() and not all(uri in self._published for uri in uris)):
            # the dead server stays registered: its next request finds it not alive and starts a fresh one
            raise LspExited(f"{self.spec.display_name} died before it published {what}; the next call starts it "
                            "again")
        task.result()

    async def _withdraw(self, overlaid: list[Path], overlay_from: int, h: _Handler) -> None:
        """Give the server the files on disk again (the overlay may be refused and never written) and forget what
        it published while the overlay stood: those answers describe content that is not on disk, and a later
        question must wait for the server's answer to the content that is."""
        for uri in [uri for uri, seq in self._published_at.items() if seq > overlay_from]:
            self._published_at.pop(uri, None)
            self._diag.pop(uri, None)
            self._published.pop(uri, None)
            self._quiet.discard(uri)
        for path in overlaid:
            await self._sync_doc(path, h)  # the overlay's mtime of -1 never matches: the disk's text goes out

    def diagnostics_for(self, texts: dict[Path, str | None], wait: float = 10.0, timeout: float | None = None,
                        fresh: frozenset[Path] = frozenset()) -> dict[Path, list[dict] | None]:
        """What the server publishes for each file holding the given text (None: the file's own content), the
        text sent in memory only, never written; None for a file with nothing published within `wait` s.
        `timeout` bounds the whole call, a start of the server included; `fresh`: files whose answer must be
        published after this call's texts were sent (files that import a changed one)."""
        limit = timeout if timeout is not None else wait + self.init_timeout + 10
        try:
            return self.loop.call(self._diagnostics_for(texts, wait, fresh), timeout=limit)
        except TimeoutError as exc:
            raise LspTimeout(f"{self.spec.language} language server ({self.spec.display_name}) gave no diagnostics "
                             f"within {limit:g} s") from exc
        except OSError as exc:
            raise LspError(f"{self.spec.language} language server failed while publishing diagnostics: {exc}") \
                from exc

    def diagnostics(self, path: Path, wait: float = 10.0, name: str | None = None) -> list[dict] | None:
        """What the server published for the file's current content (None: nothing within `wait` seconds);
        LspExited as soon as the server dies while it waits. `name`: the file as the caller's sentences name it."""
        try:
            return self.loop.call(self._diagnostics_of(path, wait, name), timeout=wait + self.init_timeout + 10)
        except (TimeoutError, OSError) as exc:
            raise LspError(f"{self.spec.language} language server failed while publishing diagnostics: {exc}") \
                from exc

    def rss_bytes(self) -> int | None:
        pid = self.pid
        if not pid:
            return None
        try:
            p = psutil.Process(pid)
            return p.memory_info().rss + sum(c.memory_info().rss for c in p.children(recursive=True))
        except psutil.Error:
            return None

    def status(self) -> dict:
        return {
            "language": self.spec.language,
            "server": self.spec.display_name,
            "version": self.spec.version,
            "root": str(self.root),
            "pid": self.pid,
            "alive": self.alive(),
            "start_seconds": round(self.start_seconds, 3) if self.start_seconds else None,
            "rss_bytes": self.rss_bytes(),
            "restarts": self.restarts,
            "requests": self.requests,
            "open_documents": len(self.open_docs),
            "position_encoding": self.position_encoding,
        }


def _folders(root: Path):
    async def _f():
        return [{"uri": root.as_uri(), "name": root.name}]
    return _f()


async def _end(h: _Handler) -> None:
    """Kill a handler's server (its whole process group) and close its reader and pipes."""
    h.stopped = True
    proc = h.process
    if proc is None:  # not spawned yet: the _start spawning it sees `stopped` and ends it
        return
    # A dead leader's pid may since belong to another process: only a live one is killed with its children. Its
    # group is killed either way (a pid is not reused while a group of that id has members), in case its reaper
    # had not yet done it.
    if proc.returncode is None:
        _kill_tree(proc.pid)
    else:
        _kill_group(proc.pid)
    with contextlib.suppress(Exception):
        await asyncio.wait_for(proc.wait(), 3)
    with contextlib.suppress(Exception):
        await asyncio.wait_for(h._cancel_pending_tasks(), 3)
    for pipe in (proc.stdin, proc.stdout, proc.stderr):
        with contextlib.suppress(Exception):
            pipe.close()  # type: ignore[union-attr]


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(Exception):
        os.killpg(pgid, signal.SIGKILL)  # own session => pgid == the leader's pid, even after the leader died


def _kill_tree(pid: int) -> None:
    try:
        parent = psutil.Process(pid)
        procs = [*parent.children(recursive=True), parent]
    except psutil.Error:
        procs = []
    _kill_group(pid)
    for p in procs:
        with contextlib.suppress(psutil.Error):
            p.kill()


_CLIENT_CAPABILITIES: dict[str, Any] = {
    "workspace": {
        "configuration": True,
        "workspaceFolders": True,
        "didChangeConfiguration": {"dynamicRegistration": True},
        "symbol": {"dynamicRegistration": True},
        "workspaceEdit": {"documentChanges": True, "resourceOperations": [], "failureHandling": "abort"},
    },
    "textDocument": {
        "synchronization": {"dynamicRegistration": True, "didSave": False},
        "documentSymbol": {
            "dynamicRegistration": True,
            "hierarchicalDocumentSymbolSupport": True,
            "symbolKind": {"valueSet": list(range(1, 27))},
        },
        "definition": {"dynamicRegistration": True, "linkSupport": True},
        "references": {"dynamicRegistration": True},
        "rename": {"dynamicRegistration": True, "prepareSupport": False},
        "hover": {"dynamicRegistration": True, "contentFormat": ["markdown", "plaintext"]},
        "publishDiagnostics": {"relatedInformation": False},
    },
    "window": {"workDoneProgress": False},
    "general": {"positionEncodings": OFFERED},
}
