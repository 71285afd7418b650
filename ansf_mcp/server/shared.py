"""One shared local server per data directory and project, found or started by the stdio relays.

Every stdio `ansf serve` (a relay) calls `ensure`: under a file lock, it reads the server's state file, checks
that the server answers, and otherwise starts one, detached, on 127.0.0.1 and a free port, and waits until it is
healthy before releasing the lock, so that sixteen relays starting together start exactly one. The server is
authenticated like any HTTP transport (a random token, kept in a 0600 file in the data directory) and stops by
itself after it has had no client for a while (`IdleExit`).

This module is imported by the relay, which must stay light: the standard library only (no pydantic, no SDK).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import http.client
import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ansf_mcp import trace
from ansf_mcp.ports import free_port

TOKEN_FILE = "shared-server.token"
STATE_DIR = "shared-servers"
DEFAULT_IDLE_EXIT_S = 300.0
START_TIMEOUT_S = 90.0


class SharedServerError(RuntimeError):
    """The shared server could not be found or started; the message says why and what to do."""

    # Whether `ansf serve --standalone` may work where the shared server did not (worth suggesting).
    standalone_helps = True


class DataDirUnusable(SharedServerError):
    """The data directory cannot hold the token and the server's state (a file in its place, no permission)."""

    standalone_helps = False


class StartRefused(SharedServerError):
    """The server refused its settings at start (exit status 2: a store it cannot open, an invalid ANSF_*
    variable); a standalone server reads the same settings and refuses them too."""

    standalone_helps = False


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int
    token: str
    pid: int

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/mcp"


@dataclass(frozen=True)
class Key:
    """What one shared server serves: clients that differ in any of these get servers of their own."""

    data_dir: Path
    project: Path
    store: str | None = None
    tools: str | None = None

    @property
    def name(self) -> str:
        raw = json.dumps([str(self.project), self.store, self.tools])
        return hashlib.sha256(raw.encode()).hexdigest()[:16]


def default_data_dir() -> Path:
    """The same rule as `Settings.data_dir`, without importing pydantic into every relay (~15 MB each)."""
    env = os.environ.get("ANSF_DATA_DIR")
    if env:
        return Path(env).expanduser().resolve()
    xdg = os.environ.get("XDG_DATA_HOME")
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".local" / "share"
    return (base / "ansf-mcp").resolve()


def read_token(data_dir: Path) -> str:
    """The shared server's token: made once, readable by this user only."""
    path = data_dir / TOKEN_FILE
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        if path.stat().st_mode & 0o077:
            raise SharedServerError(f"{path} is readable by other users; remove it (a new token is made)") from None
        token = path.read_text().strip()
        if token:
            return token
        path.unlink()  # an empty file left by a crash between create and write
        return read_token(data_dir)
    with os.fdopen(fd, "w") as f:
        token = secrets.token_urlsafe(32)
        f.write(token)
    return token


def _state_path(key: Key) -> Path:
    return key.data_dir / STATE_DIR / f"{key.name}.json"


@contextlib.contextmanager
def _locked(path: Path, timeout_s: float) -> Iterator[None]:
    """An exclusive lock on `path`, waited for at most `timeout_s` (a starting server holds it while it starts)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as f:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise SharedServerError(f"another relay has held {path} for {timeout_s:.0f} s") from None
                time.sleep(0.05)  # polling a lock, not waiting for an outcome
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


IDENTITY_PATH = "/shared-server"


def answers(host: str, port: int, pid: int, timeout_s: float = 2.0) -> bool:
    """Whether the shared server with process `pid` answers on `port` (not another program that took the port)."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout_s)
    try:
        conn.request("GET", IDENTITY_PATH)
        response = conn.getresponse()
        return response.status == 200 and json.loads(response.read()).get("pid") == pid
    except (OSError, ValueError, AttributeError, http.client.HTTPException):
        return False
    finally:
        conn.close()


def running(pid: int) -> bool:
    """Whether `pid` is a live process: not gone, and not a zombie (a server that died, not yet reaped by the
    relay that started it, still answers `kill(pid, 0)`)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        try:
            os.kill(pid, 0)  # no /proc (macOS): existence is all there is to know
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    return state not in ("Z", "X")


def _read_state(key: Key, token: str) -> Endpoint | None:
    try:
        raw = json.loads(_state_path(key).read_text())
        return Endpoint(host=raw["host"], port=int(raw["port"]), token=token, pid=int(raw["pid"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def server_command(key: Key, port: int, idle_exit_s: float, log_level: str | None) -> list[str]:
    cmd = [sys.executable, "-m", "ansf_mcp", "serve", "--transport", "http", "--host", "127.0.0.1",
           "--port", str(port), "--project", str(key.project), "--data-dir", str(key.data_dir),
           "--idle-exit-s", f"{idle_exit_s:g}"]
    if key.store:
        cmd += ["--store", key.store]
    if key.tools:
        cmd += ["--tools", key.tools]
    if log_level:
        cmd += ["--log-level", log_level]
    return cmd


PORT_TRIES = 3


def _start(key: Key, token: str, idle_exit_s: float, log_level: str | None) -> Endpoint:
    """Start the server on a free port; again on another when a program took the port before the server bound it."""
    for attempt in range(PORT_TRIES):
        try:
            return _start_on(key, token, idle_exit_s, log_level, free_port("127.0.0.1"))
        except PortTaken:
            if attempt == PORT_TRIES - 1:
                raise SharedServerError(f"{PORT_TRIES} free ports in a row were taken before the shared server "
                                        "could bind them") from None
    raise AssertionError("unreachable")


class PortTaken(Exception):
    pass


def _port_taken(said: str, host: str, port: int) -> bool:
    """Whether a server's start-up log says another program took its port: our own check before start-up, or
    uvicorn's bind failing when the port was taken between that check and the bind."""
    return (f"cannot listen on {host}:{port}" in said
            or (f"('{host}', {port})" in said and "address already in use" in said.lower()))


def _start_on(key: Key, token: str, idle_exit_s: float, log_level: str | None, port: int) -> Endpoint:
    host = "127.0.0.1"
    env = {**os.environ, "ANSF_TOKEN": token}  # never on the command line, where `ps` shows it
    log_path = key.data_dir / STATE_DIR / f"{key.name}.log"
    log_start = log_path.stat().st_size if log_path.exists() else 0
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            server_command(key, port, idle_exit_s, log_level), env=env, cwd=str(key.project),
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log,
            start_new_session=True,  # outlives the relay that started it, and its terminal's signals
        )
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            with open(log_path, "rb") as f:
                f.seek(log_start)
                said = f.read().decode(errors="replace").strip()
            if _port_taken(said, host, port):
                raise PortTaken(port)
            error = StartRefused if proc.returncode == 2 else SharedServerError
            raise error(f"the shared server exited with status {proc.returncode} at start; "
                        f"its log {log_path} ends: {said[-600:]}")
        if answers(host, port, proc.pid, timeout_s=1.0):
            endpoint = Endpoint(host=host, port=port, token=token, pid=proc.pid)
            tmp = _state_path(key).with_suffix(".tmp")
            tmp.write_text(json.dumps({"host": host, "port": port, "pid": proc.pid, "project": str(key.project)}))
            tmp.replace(_state_path(key))
            return endpoint
        time.sleep(0.1)  # polling a starting process's health, as an operator would
    proc.terminate()
    raise SharedServerError(f"the shared server did not answer within {START_TIMEOUT_S:.0f} s; see {log_path}")


def ensure(key: Key, *, idle_exit_s: float = DEFAULT_IDLE_EXIT_S, log_level: str | None = None) -> Endpoint:
    """The running shared server for `key`, started (exactly once among concurrent callers) when none answers."""
    try:
        token = read_token(key.data_dir)
        (key.data_dir / STATE_DIR).mkdir(exist_ok=True)
    except OSError as exc:
        raise DataDirUnusable(f"cannot use the data directory {key.data_dir} ({exc.strerror or exc}); choose "
                              "another with --data-dir or ANSF_DATA_DIR") from exc
    with _locked(key.data_dir / STATE_DIR / f"{key.name}.lock", START_TIMEOUT_S + 30):
        known = _read_state(key, token)
        if known is not None and running(known.pid) and answers(known.host, known.port, known.pid):
            return known
        if known is not None and running(known.pid) and _is_ours(known.pid, key):
            with contextlib.suppress(OSError):
                os.kill(known.pid, signal.SIGTERM)  # alive but not answering: it would hold memory forever
        return _start(key, token, idle_exit_s, log_level)


def _is_ours(pid: int, key: Key) -> bool:
    """Whether `pid` is a shared server for `key`. The state file outlives a server that stopped after idling, and
    its pid may since belong to any process: another agent's relay names the same project, and any ansf process
    names `ansf_mcp`."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    mine = [b"--transport", b"http", b"--idle-exit-s", str(key.data_dir).encode(), str(key.project).encode()]
    return all(arg in argv for arg in mine)


class IdleExit:
    """ASGI middleware of the shared server: counts open requests (each relay holds a listening stream open) and
    stops the process with SIGTERM (uvicorn's graceful stop) once none has been open for `idle_s`. It also answers
    `IDENTITY_PATH` with the process id, so that relays know they reached this server and not a stranger that
    took its port (a process id is no secret; everything else stays behind the token)."""

    def __init__(self, app: Any, idle_s: float, *, check_every_s: float = 1.0,
                 stop: Callable[[], None] | None = None) -> None:
        self.app = app
        self.idle_s = idle_s
        self._stop = stop or (lambda: os.kill(os.getpid(), signal.SIGTERM))
        self.open = 0
        self.last_seen = time.monotonic()
        self._lock = threading.Lock()
        trace.watch_gc()
        watcher = threading.Thread(target=self._watch, args=(check_every_s,), name="idle-exit", daemon=True)
        watcher.start()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope.get("path") == IDENTITY_PATH:
            with self._lock:
                self.last_seen = time.monotonic()  # a relay that just found the server is about to use it
            body = json.dumps({"pid": os.getpid()}).encode()
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})
            return
        if scope["type"] != "http" or scope.get("path") == "/health":
            await self.app(scope, receive, send)
            return
        with self._lock:
            self.open += 1
        try:
            if trace.DIR is not None and scope.get("method") == "POST":
                await traced(self.app, scope, receive, send)
            else:
                await self.app(scope, receive, send)
        finally:
            with self._lock:
                self.open -= 1
                self.last_seen = time.monotonic()

    def idle_for(self) -> float:
        with self._lock:
            return 0.0 if self.open else time.monotonic() - self.last_seen

    def _watch(self, every_s: float) -> None:
        while self.idle_for() < self.idle_s:
            time.sleep(every_s)  # a background timer, not a wait for an outcome
        sys.stderr.write(f"ansf serve: no client for {self.idle_s:g} s (--idle-exit-s), stopping\n")
        self._stop()

    def stop_with(self, stop: Callable[[], None]) -> None:
        """How to stop once idle; the server that runs this app knows a cleaner way than a signal."""
        self._stop = stop


async def traced(app: Any, scope: Any, receive: Any, send: Any) -> None:
    """`app` on one POST, its instants traced (trace.py): arrival, body read, response head, first and last body
    chunk; with the tool and agent the body names."""
    step = trace.Span("http")
    step.mark("in")
    body: list[bytes] = []

    async def receiving() -> Any:
        message = await receive()
        if message.get("type") == "http.request":
            body.append(message.get("body", b""))
            if not message.get("more_body"):
                step.mark("body")
                try:
                    request = json.loads(b"".join(body))
                    params = request.get("params") or {}
                    step.record.update(method=request.get("method"), tool=params.get("name"),
                                       agent=(params.get("arguments") or {}).get("agent_id"))
                except (ValueError, AttributeError):
                    pass
        return message

    async def sending(message: Any) -> None:
        if message.get("type") == "http.response.start":
            step.mark("head")
        elif message.get("type") == "http.response.body":
            if message.get("body") and b"result" in message.get("body", b"") and "data" not in step.record:
                step.mark("data")
        await send(message)
        if message.get("type") == "http.response.body" and not message.get("more_body"):
            step.mark("end")

    try:
        await app(scope, receiving, sending)
    finally:
        step.done()
