"""HTTP listeners under attack, through real sockets: other loopback addresses, DNS-rebound names, slow headers,
stray header bytes, and what /health tells anyone (issue 10, items 1-3 and 9)."""

from __future__ import annotations

import json
import resource
import selectors
import socket
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path

import httpx
import psutil
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from tests.conftest import ansf_command, free_port, stop, subprocess_env

pytestmark = pytest.mark.slow

INIT = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
    "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}
MCP_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
REBOUND = "127.0.0.1.evil.example"


def ready(read: Iterable[socket.socket] = (), write: Iterable[socket.socket] = (),
          timeout: float = 0.0) -> tuple[list[socket.socket], list[socket.socket]]:
    """select.select for sockets of any number: select() refuses descriptors above 1023, which a long test session
    (and these tests' hundreds of connections) reaches."""
    with selectors.DefaultSelector() as sel:
        for s in read:
            sel.register(s, selectors.EVENT_READ)
        for s in write:
            try:
                sel.register(s, selectors.EVENT_WRITE)
            except KeyError:  # already registered for reading
                sel.modify(s, selectors.EVENT_READ | selectors.EVENT_WRITE)
        if not sel.get_map():  # nothing to watch: wait as select() would
            time.sleep(timeout)
            return [], []
        events = sel.select(timeout)
    readable = [key.fileobj for key, ev in events if ev & selectors.EVENT_READ]
    writable = [key.fileobj for key, ev in events if ev & selectors.EVENT_WRITE]
    return readable, writable  # type: ignore[return-value]


class Server:
    """`ansf serve` (or `ansf dashboard`) as a subprocess on a free port, stderr kept in a file."""

    def __init__(self, tmp_path: Path, data_dir: Path):
        self.tmp_path, self.data_dir = tmp_path, data_dir
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = free_port()
        self.stderr_path = tmp_path / f"stderr-{self.port}.log"

    def start(self, *args: str, host: str = "127.0.0.1", env: dict[str, str] | None = None,
              nofile: int | None = None, dashboard: bool = False) -> str:
        environment = {**subprocess_env(self.data_dir), **(env or {})}
        if dashboard:
            cmd = [sys.executable, "-m", "ansf_mcp.dashboard", "--host", host, "--port", str(self.port), *args]
        else:
            cmd = [*ansf_command(), "serve", "--host", host, "--port", str(self.port), *args]

        def limit() -> None:
            if nofile:
                resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

        self.proc = subprocess.Popen(cmd, env=environment, cwd=self.tmp_path, stdout=subprocess.DEVNULL,
                                     stderr=self.stderr_path.open("wb"), preexec_fn=limit)
        base = f"http://{host}:{self.port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited: {self.stderr_path.read_text()}")
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    return base
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError("server did not become healthy in 30 s")

    def stop(self) -> None:
        if self.proc:
            stop(self.proc)


@pytest.fixture
def server(tmp_path: Path, data_dir: Path):
    started: list[Server] = []

    def make() -> Server:
        s = Server(tmp_path, data_dir)
        started.append(s)
        return s

    yield make
    for s in started:
        s.stop()


def start_dashboard(srv: Server, mode: str) -> str:
    """The dashboard on its own (`ansf dashboard`) or inside the MCP server (`ansf serve --dashboard`)."""
    if mode == "standalone":
        return srv.start(dashboard=True, env={"ANSF_DASHBOARD_INTERVAL_S": "1"})
    return srv.start("--transport", "http", "--dashboard")


def raw(host: str, port: int, request: bytes, timeout: float = 10) -> bytes:
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(request)
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                break
            if not chunk:
                break
            chunks.append(chunk)
            if b"\r\n\r\n" in b"".join(chunks):
                break
    return b"".join(chunks)


# -- item 1: another loopback address is not a loopback name -------------------------------------------------------


def test_other_127_addresses_need_the_token(data_dir: Path) -> None:
    out = subprocess.run(
        [*ansf_command(), "serve", "--transport", "http", "--host", "127.0.0.2", "--port", str(free_port())],
        env=subprocess_env(data_dir), capture_output=True, text=True, timeout=60,
    )
    assert out.returncode == 2, out.stderr
    assert "without a token" in out.stderr and "127.0.0.1" in out.stderr
    assert "Traceback" not in out.stderr


def test_127_0_0_2_with_a_token_refuses_a_rebound_page_without_it(server) -> None:
    srv = server()
    base = srv.start("--transport", "http", "--token", "s3cret", host="127.0.0.2")
    rebound = {**MCP_HEADERS, "Host": f"evil.example:{srv.port}", "Origin": f"http://evil.example:{srv.port}"}
    assert httpx.post(f"{base}/mcp", json=INIT, headers=rebound).status_code in (401, 403)
    assert httpx.post(f"{base}/mcp", json=INIT, headers={**MCP_HEADERS, "Host": f"evil.example:{srv.port}"}
                      ).status_code == 401
    ok = httpx.post(f"{base}/mcp", json=INIT, headers={**MCP_HEADERS, "Authorization": "Bearer s3cret"})
    assert ok.status_code == 200


@pytest.mark.parametrize("host", ["evil.example", REBOUND, "127.0.0.2", "localhost.evil.example"])
def test_loopback_mcp_refuses_names_that_are_not_exactly_loopback(server, host: str) -> None:
    srv = server()
    base = srv.start("--transport", "http")
    answer = httpx.post(f"{base}/mcp", json=INIT, headers={**MCP_HEADERS, "Host": f"{host}:{srv.port}"})
    assert answer.status_code in (403, 421), answer.text
    foreign = httpx.post(f"{base}/mcp", json=INIT, headers={**MCP_HEADERS, "Origin": f"http://{host}:{srv.port}"})
    assert foreign.status_code == 403, foreign.text
    assert httpx.post(f"{base}/mcp", json=INIT, headers={**MCP_HEADERS, "Host": f"localhost:{srv.port}",
                                                         "Origin": f"http://localhost:{srv.port}"}).status_code == 200


# -- item 2: the dashboard matches hosts exactly --------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["standalone", "serve --dashboard"])
def test_dashboard_refuses_a_name_that_only_starts_with_127(server, mode: str) -> None:
    srv = server()
    base = start_dashboard(srv, mode)
    evil = {"Host": f"{REBOUND}:{srv.port}", "Origin": f"http://{REBOUND}:{srv.port}"}
    for path in ("/", "/api/snapshot", "/metrics"):
        assert httpx.get(f"{base}{path}", headers=evil).status_code == 403, path
        assert httpx.get(f"{base}{path}").status_code == 200, path
    ws_url = f"ws://127.0.0.1:{srv.port}/ws"
    with pytest.raises(InvalidStatus):
        with connect(ws_url, origin=f"http://{REBOUND}:{srv.port}", open_timeout=5):
            pass
    with pytest.raises(InvalidStatus):  # what a rebound page sends: Host and Origin both the evil name
        sock = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
        with connect(f"ws://{REBOUND}:{srv.port}/ws", sock=sock, origin=f"http://{REBOUND}:{srv.port}",
                     open_timeout=5):
            pass
    with connect(ws_url, origin=base, open_timeout=5) as ws:
        assert json.loads(ws.recv(timeout=10))["type"] == "hello"


# -- item 3: slow headers cannot starve real clients ----------------------------------------------------------------


def test_half_open_sockets_time_out_and_real_clients_get_through(server) -> None:
    srv = server()
    base = srv.start("--transport", "http", nofile=256, env={"ANSF_HTTP_HEADER_TIMEOUT_S": "1"})
    attackers: list[socket.socket] = []
    try:
        for _ in range(400):  # more than the server's whole file table
            s = socket.socket()
            s.setblocking(False)
            try:
                s.connect(("127.0.0.1", srv.port))
            except BlockingIOError:
                pass
            attackers.append(s)
        pending = set(attackers)
        deadline = time.monotonic() + 10
        while pending and time.monotonic() < deadline:  # wait until every handshake completed
            _, writable = ready(write=list(pending), timeout=1.0)
            pending.difference_update(writable)
        sent = []
        for s in attackers:
            try:
                s.send(b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")  # headers never finish
                sent.append(s)
            except OSError:
                pass  # refused at the cap, or a handshake the kernel is still retrying: not a held connection
        assert len(sent) >= 100, f"only {len(sent)} sockets got their partial headers out"
        # The server closes the half-open sockets: past the connection cap the ones that stalled first, else at the
        # header deadline; a server without either keeps every one. Counted on the server's side: sockets still in
        # the kernel's handshake queue, which the listener never accepted, look open to this client but hold
        # nothing of the server's (and the kernel drops them without telling the client).
        def held_by_server() -> int:
            return sum(1 for c in psutil.Process(srv.proc.pid).net_connections(kind="tcp")
                       if c.status == psutil.CONN_ESTABLISHED and c.laddr and c.laddr.port == srv.port)

        deadline = time.monotonic() + 30
        held = held_by_server()
        while held > len(sent) // 10 and time.monotonic() < deadline:
            time.sleep(0.2)  # a poll of the server's sockets, not a timing assumption: the deadline bounds it
            held = held_by_server()
        assert held <= len(sent) // 10, f"the server still holds {held} of {len(sent)} half-open connections after 30 s"
        assert psutil.Process(srv.proc.pid).num_fds() < 256 - 32, "the server's file table is nearly full"
        # A real client gets through while the attack goes on.
        started = time.monotonic()
        with httpx.Client(timeout=5) as client:
            assert client.post(f"{base}/mcp", json=INIT, headers=MCP_HEADERS).status_code == 200
        assert time.monotonic() - started < 5
    finally:
        for s in attackers:
            s.close()
    assert srv.proc.poll() is None, "the server died"
    log = srv.stderr_path.read_bytes()
    assert b"Too many open files" not in log
    assert len(log) < 20_000, f"{len(log)} bytes of stderr"


def test_a_trickled_header_is_cut_at_the_deadline(server) -> None:
    srv = server()
    srv.start("--transport", "http", env={"ANSF_HTTP_HEADER_TIMEOUT_S": "1"})
    with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\n")
        started = time.monotonic()
        closed = False
        while time.monotonic() - started < 8:
            try:
                sock.sendall(b"X-A: b\r\n")  # one header line every 0.2 s: keep-alive timers restart on each
            except OSError:
                closed = True
                break
            readable, _ = ready([sock], timeout=0.2)
            try:
                if readable and sock.recv(4096) == b"":
                    closed = True
                    break
            except ConnectionResetError:  # cut with our last header line unread: the kernel resets, not closes
                closed = True
                break
        assert closed, "a client trickling header lines held the connection for 8 s"
        assert time.monotonic() - started < 4


# -- item 9: a stray header byte, and what /health says --------------------------------------------------------------


def test_non_utf8_header_byte_is_a_wrong_token_not_a_server_error(server) -> None:
    srv = server()
    srv.start("--transport", "http", "--token", "s3cret", host="127.0.0.2")
    for header in (b"X-ANSF-Token: \xff\xfe", b"Authorization: Bearer \xe9t\xe9", b"X-Other: \xff"):
        answer = raw("127.0.0.2", srv.port, b"GET /mcp HTTP/1.1\r\nHost: 127.0.0.2\r\n" + header + b"\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 401"), answer[:200]
    log = srv.stderr_path.read_text(errors="replace")
    assert "Traceback" not in log and "UnicodeDecodeError" not in log


def test_health_names_no_paths(server, data_dir: Path) -> None:
    srv = server()
    base = srv.start("--transport", "http")
    body = httpx.get(f"{base}/health").text
    assert str(data_dir) not in body and "sqlite3" not in body
    assert json.loads(body)["store"]["schema_version"] >= 1


def test_health_answers_503_while_starting(data_dir: Path) -> None:
    """Before the lifespan has started the runtime, /health says "starting" with 503 (a load balancer waits);
    once it has, 200."""
    from starlette.testclient import TestClient

    from ansf_mcp.server.app import build_server
    from ansf_mcp.server.http import build_http_app
    from ansf_mcp.settings import Settings

    server, runtime = build_server(Settings(data_dir=data_dir, transport="http", warm_model=False))
    app = build_http_app(server, runtime, "http")
    starting = TestClient(app, base_url="http://127.0.0.1").get("/health")  # no lifespan: not started
    assert (starting.status_code, starting.json()["status"]) == (503, "starting")
    with TestClient(app, base_url="http://127.0.0.1") as client:  # the lifespan runs: the runtime starts
        ready = client.get("/health")
    assert (ready.status_code, ready.json()["status"]) == (200, "ok")


# -- issue 17 item 9: the Origin's port, the page's token ------------------------------------------------------------


@pytest.mark.parametrize("mode", ["standalone", "serve --dashboard"])
def test_a_loopback_page_of_another_port_is_refused(server, mode: str) -> None:
    """Another program on this machine serves pages on other loopback ports; their scripts must not read ours."""
    srv = server()
    base = start_dashboard(srv, mode)
    other = srv.port + 1 if srv.port < 65535 else srv.port - 1
    for name in ("127.0.0.1", "localhost"):
        for path in ("/", "/api/snapshot", "/metrics"):
            assert httpx.get(f"{base}{path}", headers={"Origin": f"http://{name}:{other}"}).status_code == 403, path
            assert httpx.get(f"{base}{path}", headers={"Origin": f"http://{name}:{srv.port}"}).status_code == 200
        assert httpx.get(f"{base}/", headers={"Origin": f"http://{name}"}).status_code == 403  # port 80 is not ours
    with pytest.raises(InvalidStatus):
        with connect(f"ws://127.0.0.1:{srv.port}/ws", origin=f"http://127.0.0.1:{other}", open_timeout=5):
            pass
    with connect(f"ws://127.0.0.1:{srv.port}/ws", origin=f"http://localhost:{srv.port}", open_timeout=5) as ws:
        assert json.loads(ws.recv(timeout=10))["type"] == "hello"
    if mode == "serve --dashboard":  # the MCP endpoint too
        refused = httpx.post(f"{base}/mcp", json=INIT, headers={**MCP_HEADERS, "Origin": f"http://127.0.0.1:{other}"})
        assert refused.status_code == 403
        ok = httpx.post(f"{base}/mcp", json=INIT, headers={**MCP_HEADERS, "Origin": f"http://127.0.0.1:{srv.port}"})
        assert ok.status_code == 200, ok.text


def test_the_dashboard_page_gets_its_token_as_a_cookie_not_in_its_html(server) -> None:
    srv = server()
    base = srv.start("--transport", "http", "--dashboard", "--token", "s3cret-t0ken", host="0.0.0.0")
    base = base.replace("0.0.0.0", "127.0.0.1")
    page = httpx.get(f"{base}/?token=s3cret-t0ken")
    assert page.status_code == 200 and "s3cret-t0ken" not in page.text
    assert page.headers["referrer-policy"] == "no-referrer"
    cookie = page.headers["set-cookie"]
    assert cookie.startswith("ansf_token=s3cret-t0ken;") and "HttpOnly" in cookie and "SameSite=Strict" in cookie
    jar = {"ansf_token": "s3cret-t0ken"}
    for path in ("/", "/api/snapshot", "/metrics", "/static/dashboard.js"):  # what the page loads, by cookie
        assert httpx.get(f"{base}{path}", cookies=jar).status_code == 200, path
        assert httpx.get(f"{base}{path}", cookies={"ansf_token": "wrong"}).status_code == 401, path
    with connect(f"ws://127.0.0.1:{srv.port}/ws", additional_headers={"Cookie": "ansf_token=s3cret-t0ken"},
                 origin=base, open_timeout=5) as ws:
        assert json.loads(ws.recv(timeout=10))["type"] == "hello"
    # The cookie only reads: a request that changes state (an MCP POST) needs the token itself.
    assert httpx.post(f"{base}/mcp", json=INIT, headers=MCP_HEADERS, cookies=jar).status_code == 401
    sent = httpx.post(f"{base}/mcp", json=INIT, headers={**MCP_HEADERS, "Authorization": "Bearer s3cret-t0ken"})
    assert sent.status_code == 200, sent.text


class Reconnecting:
    """A slow-header attacker that keeps `width` half-open connections and opens a new one for each the server
    closes, from `source` (an address of this machine), until stopped."""

    def __init__(self, port: int, source: str, width: int):
        import threading

        self.port, self.source, self.width = port, source, width
        self.stop = threading.Event()
        self.opened = 0
        self.error: Exception | None = None
        self.thread = threading.Thread(target=self.run, daemon=True)

    def _open(self) -> socket.socket | None:
        s = socket.socket()
        s.setblocking(False)
        s.bind((self.source, 0))
        try:
            s.connect(("127.0.0.1", self.port))
        except BlockingIOError:
            pass
        except OSError:
            s.close()
            return None
        self.opened += 1
        return s

    def run(self) -> None:
        held: dict[socket.socket, bool] = {}  # socket -> partial headers sent
        try:
            while not self.stop.is_set():
                while len(held) < self.width:
                    s = self._open()
                    if s is None:
                        break
                    held[s] = False
                _, writable = ready(write=[s for s, sent in held.items() if not sent], timeout=0.01)
                for s in writable:
                    try:
                        s.send(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")  # never finished
                        held[s] = True
                    except OSError:
                        held.pop(s)
                        s.close()
                readable, _ = ready(list(held), timeout=0.01)
                for s in readable:  # closed by the server: reconnect at once
                    try:
                        if s.recv(4096):
                            continue
                    except (BlockingIOError, InterruptedError):
                        continue
                    except OSError:
                        pass
                    held.pop(s)
                    s.close()
        except Exception as exc:  # the test fails on it instead of passing without an attack
            self.error = exc
        finally:
            for s in held:
                s.close()

    def __enter__(self) -> Reconnecting:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(10)


@pytest.mark.parametrize("attacker", ["127.0.0.2", "127.0.0.1"])
def test_a_reconnecting_slow_header_attacker_starves_no_one(server, attacker: str) -> None:
    """The attacker holds more connections than the server's whole cap and reopens every one it loses; real
    clients, from another address or from the attacker's own, are still all served."""
    srv = server()
    base = srv.start("--transport", "http", nofile=256, env={"ANSF_HTTP_HEADER_TIMEOUT_S": "2"})
    failures: list[str] = []
    with Reconnecting(srv.port, attacker, width=400) as attack:
        deadline = time.monotonic() + 10
        while attack.opened < 400 and time.monotonic() < deadline:  # the table is full before real clients come
            time.sleep(0.05)
        for i in range(29):  # spread over several header deadlines, as clients come and go
            attack.stop.wait(0.2)
            try:
                with httpx.Client(timeout=5) as client:
                    answer = client.post(f"{base}/mcp", json=INIT, headers=MCP_HEADERS)
                if answer.status_code != 200:
                    failures.append(f"{i}: HTTP {answer.status_code}")
            except httpx.HTTPError as exc:
                failures.append(f"{i}: {type(exc).__name__}: {exc}")
        opened, alive = attack.opened, attack.thread.is_alive()
    assert attack.error is None and alive, f"the attack stopped early: {attack.error!r}"
    assert opened >= 400, f"the attacker opened only {opened} connections"
    log = srv.stderr_path.read_text(errors="replace")
    # Before fair sharing 22-23 of 29 failed; after it, about one run in seven loses one request to a reset the
    # server's log does not show (see the closing note): at most one is tolerated, never the attack's pattern.
    assert len(failures) <= 1, f"{len(failures)} of 29 real requests failed: {failures[:5]}; server log: {log[-1500:]}"
    assert srv.proc.poll() is None, "the server died"
