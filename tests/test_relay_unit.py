"""The relay against a stub HTTP server that misbehaves on purpose: a server that dies mid-answer, and one that is
gone before a message reaches it. Real sockets, no MCP server needed to make the failures exact."""

from __future__ import annotations

import io
import json
import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from ansf_mcp.server import relay as relay_module
from ansf_mcp.server.relay import Relay
from ansf_mcp.server.shared import Endpoint

INIT = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}}
INITIALIZED = {"jsonrpc": "2.0", "method": "notifications/initialized"}
CALL = {"jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": {"name": "report_outcome", "arguments": {}}}


class Stub(ThreadingHTTPServer):
    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.posts: list[dict] = []
        self.initialized = threading.Event()
        self.cut_calls = False  # close the connection on tools/call without an answer, after reading it
        self.accepts: list[tuple[str, object, str]] = []  # (method, id, Accept header) of every POST
        self.refuse_json_only = False  # answer 406 to a POST that does not accept SSE (as an older server does)

    @property
    def endpoint(self) -> Endpoint:
        return Endpoint(host="127.0.0.1", port=self.server_address[1], token="t", pid=0)

    def methods(self) -> list[str]:
        return [p.get("method", "") for p in self.posts]


class Handler(BaseHTTPRequestHandler):
    server: Stub

    def log_message(self, *args: object) -> None:
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        accept = self.headers.get("Accept", "")
        self.server.accepts.append((body.get("method", ""), body.get("id"), accept))
        if self.server.refuse_json_only and "text/event-stream" not in accept:
            refusal = b'{"jsonrpc":"2.0","id":"server-error","error":{"code":-32600,"message":"Not Acceptable"}}'
            self.send_response(406)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(refusal)))
            self.end_headers()
            self.wfile.write(refusal)
            return
        self.server.posts.append(body)
        if body.get("method") == "tools/call" and self.server.cut_calls:
            self.close_connection = True
            self.connection.close()
            return
        if body.get("method") == "notifications/initialized":
            self.server.initialized.set()
        if "id" not in body:
            self.send_response(202)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        answer = json.dumps({"jsonrpc": "2.0", "id": body["id"],
                             "result": {"protocolVersion": "2025-06-18"} if body["method"] == "initialize" else {}})
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("mcp-session-id", "s1")
        self.end_headers()
        self.wfile.write(f"event: message\ndata: {answer}\n\n".encode())

    def do_GET(self) -> None:
        self.send_response(405)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_DELETE(self) -> None:
        self.do_GET()


@pytest.fixture
def stub() -> Iterator[Stub]:
    server = Stub()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def relay(connect, *messages: dict) -> list[dict]:
    stdin = io.BytesIO(b"".join(json.dumps(m).encode() + b"\n" for m in messages))
    stdout = io.BytesIO()
    Relay(connect, stdin, stdout).run()
    return [json.loads(line) for line in stdout.getvalue().splitlines()]


def test_a_request_cut_off_mid_answer_is_answered_and_never_sent_twice(stub: Stub):
    stub.cut_calls = True
    out = relay(lambda: stub.endpoint, INIT, INITIALIZED, CALL)
    assert [m["id"] for m in out] == [1, 5]
    assert "call again" in out[1]["error"]["message"].lower()
    assert stub.methods().count("tools/call") == 1  # not resent: the server may have acted on it


def test_a_request_cut_off_mid_answer_is_said_to_be_perhaps_done(stub: Stub):
    """'Call again' alone made a lead whose coordinate (without task ids) was cut off put the tasks up twice."""
    stub.cut_calls = True
    out = relay(lambda: stub.endpoint, INIT, INITIALIZED, CALL)
    said = out[1]["error"]["message"]
    assert "perhaps after carrying it out" in said and "coordinate" in said and "swarm_status" in said, said


def test_a_message_that_never_reached_a_server_goes_to_the_restarted_one_after_the_handshake(stub: Stub):
    first = Stub()
    threading.Thread(target=first.serve_forever, daemon=True).start()
    current = [first]
    read_end, write_end = os.pipe()
    stdout = io.BytesIO()
    pump = threading.Thread(target=Relay(lambda: current[0].endpoint, os.fdopen(read_end, "rb"), stdout).run)
    pump.start()
    with os.fdopen(write_end, "wb", buffering=0) as stdin:
        stdin.write(json.dumps(INIT).encode() + b"\n" + json.dumps(INITIALIZED).encode() + b"\n")
        assert first.initialized.wait(10)
        first.shutdown()
        first.server_close()  # gone: its port refuses connections
        current[0] = stub  # what `ensure` finds next: the restarted server
        stdin.write(json.dumps(CALL).encode() + b"\n")
    pump.join(30)
    out = [json.loads(line) for line in stdout.getvalue().splitlines()]
    assert [m["id"] for m in out] == [1, 5] and "result" in out[1], out
    assert first.methods() == ["initialize", "notifications/initialized"]
    assert stub.methods() == ["initialize", "notifications/initialized", "tools/call"]  # replayed, then sent once


class KeepAliveHandler(Handler):
    """HTTP/1.1 with lengths: the connection stays open between requests, as uvicorn's does."""

    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        super().setup()
        self.server.connections.append(self.connection)  # type: ignore[attr-defined]

    def end_headers(self) -> None:
        if self._answer is not None:
            self.send_header("Content-Length", str(len(self._answer)))
        super().end_headers()

    def do_POST(self) -> None:
        self._answer: bytes | None = None
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.posts.append(body)
        if "id" not in body:
            self.send_response(202)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        result = {"protocolVersion": "2025-06-18"} if body["method"] == "initialize" else {}
        self._answer = json.dumps({"jsonrpc": "2.0", "id": body["id"], "result": result}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("mcp-session-id", "s1")
        self.end_headers()
        self.wfile.write(self._answer)


@pytest.fixture
def keep_alive() -> Iterator[tuple[Stub, Relay, io.BytesIO]]:
    """A stub server that keeps connections alive (and lists them), a relay to it and the relay's stdout, after
    the handshake and one call: both sent on one connection."""
    server = Stub()
    server.RequestHandlerClass = KeepAliveHandler
    server.connections = []  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    stdout = io.BytesIO()
    r = Relay(lambda: server.endpoint, io.BytesIO(), stdout)
    try:
        r._post(json.dumps(INIT).encode(), is_handshake=True)
        r._post(json.dumps(CALL).encode(), is_handshake=False)
        assert len(server.connections) == 1  # the call went on the handshake's connection
        yield server, r, stdout
    finally:
        server.shutdown()
        server.server_close()


def test_messages_share_a_kept_alive_connection_and_one_the_server_closed_is_replaced(keep_alive):
    import select
    import socket

    server, r, stdout = keep_alive
    # The server closes the idle connection (its keep-alive ran out); the relay sees it before sending.
    server.connections[0].shutdown(socket.SHUT_RDWR)
    assert select.select([r._local.conn.sock], [], [], 10)[0], "the close never reached the relay"
    r._post(json.dumps({**CALL, "id": 6}).encode(), is_handshake=False)
    assert len(server.connections) == 2
    assert [p.get("id") for p in server.posts] == [1, 5, 6]  # each sent once
    assert [json.loads(line)["id"] for line in stdout.getvalue().splitlines()] == [1, 5, 6]


def test_a_line_that_is_not_json_is_answered_with_its_id(stub: Stub):
    stdin = io.BytesIO(b'{"jsonrpc": "2.0", "id": 8, "method": \n')
    stdout = io.BytesIO()
    Relay(lambda: stub.endpoint, stdin, stdout).run()
    [answer] = [json.loads(line) for line in stdout.getvalue().splitlines()]
    assert answer["id"] == 8 and answer["error"]["code"] == -32700
    assert stub.posts == []


def test_lines_that_are_no_request_are_answered_as_invalid_requests(stub: Stub):
    """Once forwarded: the shared server's HTTP 400 came back as an internal error (-32603) carrying pydantic's
    multi-line text, and a batch got no answer at all. Now answered here, as a standalone server does."""
    lines = [
        '{"jsonrpc":"2.0","id":1,"method":5}', '{"jsonrpc":"2.0","id":2,"method":"tools/call","params":"x"}',
        '{"jsonrpc":"2.0","id":3}', '{"jsonrpc":"1.0","id":4,"method":"ping"}', '[{"jsonrpc":"2.0","id":5,"method":"ping"}]',
        '{"jsonrpc":"2.0","method":"notifications/x","params":5}',  # a notification: nobody to answer
        "123",
    ]
    stdout = io.BytesIO()
    Relay(lambda: stub.endpoint, io.BytesIO("\n".join(lines).encode() + b"\n"), stdout).run()
    answers = [(a["id"], a["error"]["code"], a["error"]["message"]) for a in map(json.loads, stdout.getvalue().splitlines())]
    assert answers == [
        (1, -32600, "Invalid request: method: Input should be a valid string"),
        (2, -32600, "Invalid request: params: Input should be an object"),
        (3, -32600, "Invalid request: method: Field required"),
        (4, -32600, "Invalid request: jsonrpc: Input should be '2.0'"),
        (None, -32600, "Invalid request: batches (JSON arrays) are not supported; send one message per line"),
        (None, -32600, "Invalid request: Input should be an object"),
    ]
    assert stub.posts == []
    # a client's answer to a request of the server (no method) is not one of them
    assert relay_module._not_a_message({"jsonrpc": "2.0", "id": "s-1", "result": {}}) is None


def test_the_idle_timer_waits_for_open_requests_and_answers_who_it_is():
    import anyio

    from ansf_mcp.server.shared import IDENTITY_PATH, IdleExit

    stopped = threading.Event()
    inside, release = threading.Event(), threading.Event()

    async def app(scope, receive, send) -> None:  # a request that stays open until released (a listening stream)
        inside.set()
        await anyio.to_thread.run_sync(release.wait)

    idle = IdleExit(app, idle_s=0.05, check_every_s=0.01, stop=stopped.set)
    sent: list[dict] = []

    async def send(message: dict) -> None:
        sent.append(message)

    async def scenario() -> None:
        await idle({"type": "http", "path": IDENTITY_PATH}, None, send)
        async with anyio.create_task_group() as tg:
            tg.start_soon(idle, {"type": "http", "path": "/mcp"}, None, send)
            await anyio.to_thread.run_sync(inside.wait)
            assert idle.open == 1
            assert not stopped.wait(0.3), "stopped while a client was connected"  # 6x the idle time, open
            release.set()
        assert await anyio.to_thread.run_sync(stopped.wait, 10), "did not stop once idle"

    anyio.run(scenario)
    assert json.loads(sent[1]["body"]) == {"pid": os.getpid()}


def test_a_connection_idle_long_enough_for_the_server_to_be_closing_it_is_not_reused(keep_alive):
    """uvicorn closes a connection idle for 5 s; a request sent as it closes is reset unanswered. The relay opens a
    new one once its connection has idled REUSE_IDLE_S, before the server could be closing it."""
    from ansf_mcp.server import relay as relay_module

    server, r, stdout = keep_alive
    r._local.used_at -= relay_module.REUSE_IDLE_S  # idle that long (the server has not closed it yet)
    r._post(json.dumps({**CALL, "id": 6}).encode(), is_handshake=False)
    assert len(server.connections) == 2
    r._post(json.dumps({**CALL, "id": 7}).encode(), is_handshake=False)  # fresh again: reused
    assert len(server.connections) == 2
    assert [p.get("id") for p in server.posts] == [1, 5, 6, 7]
    assert [json.loads(line)["id"] for line in stdout.getvalue().splitlines()] == [1, 5, 6, 7]


def test_a_traced_relay_records_each_tool_call_s_instants(stub: Stub, tmp_path, monkeypatch):
    from ansf_mcp import trace

    monkeypatch.setattr(trace, "DIR", str(tmp_path))
    call = {**CALL, "params": {"name": "next_task", "arguments": {"agent_id": "a1"}}}
    out = relay(lambda: stub.endpoint, INIT, INITIALIZED, call)
    assert [m["id"] for m in out] == [1, 5]
    [record] = [json.loads(line) for f in tmp_path.glob("trace-*.jsonl") for line in f.read_text().splitlines()]
    assert record["kind"] == "relay" and record["tool"] == "next_task" and record["agent"] == "a1"
    instants = [record[k] for k in ("read", "thread", "post", "head", "written", "ended")]
    assert instants == sorted(instants)


PROGRESS_CALL = {**CALL, "id": 6, "params": {**CALL["params"], "_meta": {"progressToken": "p"}}}
STREAMS = "application/json, text/event-stream"


def test_only_a_request_that_asks_for_progress_accepts_a_stream(stub: Stub):
    out = relay(lambda: stub.endpoint, INIT, INITIALIZED, CALL, PROGRESS_CALL)
    assert sorted(m["id"] for m in out) == [1, 5, 6]
    assert sorted(stub.accepts, key=str) == sorted([
        ("initialize", 1, STREAMS), ("notifications/initialized", None, STREAMS),
        ("tools/call", 5, "application/json"), ("tools/call", 6, STREAMS)], key=str)


def test_a_server_that_refuses_json_only_gets_every_request_again_with_streams(stub: Stub):
    stub.refuse_json_only = True
    stdout = io.BytesIO()
    r = Relay(lambda: stub.endpoint, io.BytesIO(), stdout)
    r._post(json.dumps(INIT).encode(), is_handshake=True)
    for rid in (5, 7):  # one after the other: the first refusal teaches the relay to ask for streams at once
        r._post(json.dumps({**CALL, "id": rid}).encode(), is_handshake=False, stream=False)
    assert [json.loads(line)["id"] for line in stdout.getvalue().splitlines()] == [1, 5, 7]  # no refusal shows
    assert [(i, a) for m, i, a in stub.accepts if m == "tools/call"] == [
        (5, "application/json"), (5, STREAMS), (7, STREAMS)]
    assert [p.get("id") for p in stub.posts if p.get("method") == "tools/call"] == [5, 7]  # each acted on once
    # The server it reconnects to (a restart, perhaps a newer version) is asked for JSON again.
    stub.refuse_json_only = False
    r._handshake = [json.dumps(INIT).encode()]
    r._reconnect(r._generation, replay=1)
    r._post(json.dumps({**CALL, "id": 9}).encode(), is_handshake=False, stream=False)
    assert [(i, a) for m, i, a in stub.accepts if m == "tools/call"][-1] == (9, "application/json")


def _exec_done(proc) -> None:
    """Wait until the process's command line is readable: right after a start on a busy machine /proc/PID/cmdline
    can still read empty, which `_is_ours` rightly takes for a stranger (it would make both checks below vacuous or
    false); the processes these checks are about have been running for a while."""
    import time

    deadline = time.monotonic() + 10
    while not Path(f"/proc/{proc.pid}/cmdline").read_bytes().strip(b"\0"):
        assert time.monotonic() < deadline, "the process never showed its command line"
        time.sleep(0.01)


def test_a_stale_record_naming_a_pid_now_used_by_another_ansf_process_stops_nothing(tmp_path, monkeypatch):
    """The state file outlives a server that stopped after idling; once its pid was reused by another ansf process
    (another agent's relay, a server of another project), the next relay took that process for a hung server of its
    own and sent it SIGTERM."""
    import subprocess
    import sys

    from ansf_mcp.server import shared

    key = shared.Key(data_dir=tmp_path / "data", project=tmp_path)
    shared.read_token(key.data_dir)
    (key.data_dir / shared.STATE_DIR).mkdir()
    # Another agent's relay on the same project, as `ps` shows it.
    relay = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "-m", "ansf_mcp", "serve",
                              "--project", str(tmp_path)])
    try:
        _exec_done(relay)
        shared._state_path(key).write_text(json.dumps({"host": "127.0.0.1", "port": 9, "pid": relay.pid}))
        started = Endpoint(host="127.0.0.1", port=1, token="t", pid=1)
        monkeypatch.setattr(shared, "_start", lambda *args, **kwargs: started)
        assert shared.ensure(key) is started
        with pytest.raises(subprocess.TimeoutExpired):
            relay.wait(timeout=0.5)
    finally:
        relay.kill()
        relay.wait()
    # A hung server of this key, alive and silent, is still stopped: it would hold its memory forever.
    hung = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)",
                             *shared.server_command(key, 9, 300, None)[1:]])
    try:
        _exec_done(hung)
        shared._state_path(key).write_text(json.dumps({"host": "127.0.0.1", "port": 9, "pid": hung.pid}))
        assert shared.ensure(key) is started
        assert hung.wait(timeout=10) == -15
    finally:
        hung.kill()
        hung.wait()
