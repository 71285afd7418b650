"""The stdio relay: `ansf serve` for one agent, pumping JSON-RPC lines between its client and the shared server.

Light on purpose (the standard library only, about 20 MB): sixteen agents cost sixteen relays and one server
holding the model, the language servers and the index. Each stdin line is POSTed to the shared server's
Streamable HTTP endpoint, on a connection each relay thread keeps open; JSON and SSE answers come back as lines
on stdout, which carries nothing else. A request that asks for progress (a progress token) gets its answer as an
SSE stream, which carries the progress notifications too; any other asks for one plain JSON body, which costs the
server about a third less CPU (server/json_answers.py). After the handshake a listening GET stream carries the
server's own notifications (resource updates, list changes).

When the shared server goes away (killed, or stopped after idling), a message that had not reached it is sent
again to a restarted server after the client's handshake is replayed; a request that was in flight is answered
with an error that says to call again, never left hanging.
"""

from __future__ import annotations

import http.client
import json
import logging
import select
import socket
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import IO, Any

from ansf_mcp import trace
from ansf_mcp.server.lines import is_long_poll, request_id
from ansf_mcp.server.shared import Endpoint, SharedServerError, running

log = logging.getLogger(__name__)

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
INTERNAL_ERROR = -32603
SESSION_HEADER = "mcp-session-id"
VERSION_HEADER = "mcp-protocol-version"
MAX_IN_FLIGHT = 64  # worker threads; a client with more requests outstanding waits for one to finish
# Silence on an answer for this long means a hung server, not a slow tool (every tool has a shorter deadline).
ANSWER_TIMEOUT_S = 900.0
# A kept-alive connection idle for this long is replaced before use: the server closes idle connections after 5 s
# (web.run_uvicorn's timeout_keep_alive), and a request sent as that close happens is reset unanswered (an agent
# that worked a few seconds between calls got "stopped while answering" for a request the server never read).
REUSE_IDLE_S = 2.0
STREAM_OR_JSON = "application/json, text/event-stream"
JSON_ONLY = "application/json"


class Unreached(Exception):
    """The message did not reach the server (refused connection, unknown session): safe to send again."""


class Lost(Exception):
    """The server went away after the message reached it: it may or may not have acted on it."""


def _error(rid: Any, code: int, message: str) -> bytes:
    return json.dumps({"jsonrpc": "2.0", "id": rid, "error": {"code": code, "message": message}}).encode() + b"\n"


class Relay:
    """Pumps one client's stdio to the shared server; `connect()` finds the server, or starts it when none answers."""

    def __init__(self, connect: Callable[[], Endpoint], stdin: IO[bytes], stdout: IO[bytes]) -> None:
        self._connect = connect
        self._stdin = stdin
        self._stdout = stdout
        self._out_lock = threading.Lock()
        self._session_lock = threading.RLock()  # held while reconnecting, which posts the handshake again
        self._endpoint: Endpoint | None = None
        self._session: str | None = None
        self._version: str | None = None
        self._generation = 0
        self._handshake: list[bytes] = []  # the client's initialize request and initialized notification
        # Whether the server answers a POST that accepts JSON only (an older shared server refuses it: 406).
        self._json_answers = True
        self._pool = ThreadPoolExecutor(MAX_IN_FLIGHT, thread_name_prefix="relay")
        self._waiting: set[Any] = set()  # ids of the long-polls still running (next_task / read_messages, wait_s)
        # The client's resource subscriptions, replayed after the handshake when the server was restarted (a new
        # server knows none of them, and the client would hear of no more updates, told nothing).
        self._subscriptions: dict[str, None] = {}
        self._waiting_lock = threading.Lock()  # guards _waiting and _subscriptions
        # One kept-alive connection per thread: a new connection per message cost the server an accept and a
        # protocol instance, and the relay a connect and a process check, on every call.
        self._local = threading.local()

    # -- output ------------------------------------------------------------------------------------------------

    def write(self, line: bytes) -> None:
        line = line.strip()
        if not line:
            return
        if b"\n" in line:  # a pretty-printed body: stdio framing needs one line per message
            line = json.dumps(json.loads(line), separators=(",", ":")).encode()
        with self._out_lock:
            self._stdout.write(line + b"\n")
            self._stdout.flush()

    # -- the pump ----------------------------------------------------------------------------------------------

    def run(self) -> None:
        try:
            for raw in iter(self._stdin.readline, b""):
                line = raw.strip()
                if line:
                    self._dispatch(line)
            self._cancel_waits()
        finally:
            self._pool.shutdown(wait=True, cancel_futures=False)
            self._end_session()

    def _cancel_waits(self) -> None:
        """The client's input ended (it closed it, or died): its long-polls are cancelled on the server. Left to
        run, a next_task(wait_s) claimed the next task that became ready for an agent that was gone, and the
        swarm waited out the lease. Other requests still running are answered as before."""
        with self._waiting_lock:
            waiting = list(self._waiting)
        for rid in waiting:
            note = json.dumps({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {
                "requestId": rid, "reason": "the client closed its input"}}).encode()
            try:
                self._post(note, is_handshake=False, stream=False, echo=False)
            except Exception as exc:  # best effort: the wait ends at its wait_s anyway
                log.debug("could not cancel %r: %s", rid, exc)

    def _dispatch(self, line: bytes) -> None:
        try:
            message = json.loads(line)
        except (ValueError, RecursionError) as exc:
            rid = request_id(line.decode("utf-8", "replace"))
            if rid is not None or b'"id"' in line:
                self.write(_error(rid, PARSE_ERROR, f"Parse error: {exc}"))
            return
        why = _not_a_message(message)
        if why is not None:
            # Answered here, as a standalone server answers it: the shared server's 400 carried pydantic's
            # multi-line text as an internal error, and a batch got no answer at all.
            rid = message.get("id") if isinstance(message, dict) else None
            if not isinstance(message, dict) or "method" not in message or rid is not None:
                rid = rid if isinstance(rid, int | str) and not isinstance(rid, bool) else None
                self.write(_error(rid, INVALID_REQUEST, f"Invalid request: {why}"))
            return
        method = message.get("method") if isinstance(message, dict) else None
        if method == "initialize":
            self._handshake = [line]
            self._forward(line, message)  # in order: nothing else is sent before the client has its answer
        elif method == "notifications/initialized":
            self._handshake = [*self._handshake[:1], line]
            self._forward(line, message)
            self._listen()
        else:
            step = None
            if trace.DIR is not None and method == "tools/call":
                params = message.get("params") or {}
                step = trace.span("relay", tool=params.get("name"), agent=(params.get("arguments") or {}).get("agent_id"))
                step.mark("read")  # type: ignore[union-attr]
            if is_long_poll(message):
                with self._waiting_lock:
                    self._waiting.add(message.get("id"))
            params = message.get("params") if isinstance(message, dict) else None
            uri = params.get("uri") if isinstance(params, dict) else None
            with self._waiting_lock:  # read by the thread that reconnects
                if method == "resources/subscribe" and isinstance(uri, str):
                    self._subscriptions[uri] = None
                elif method == "resources/unsubscribe" and isinstance(uri, str):
                    self._subscriptions.pop(uri, None)
            self._pool.submit(self._forward, line, message, step)

    def _forward(self, line: bytes, message: Any, step: trace.Span | None = None) -> None:
        try:
            self._forward_once(line, message, step)
        finally:
            if isinstance(message, dict) and "id" in message:
                with self._waiting_lock:
                    self._waiting.discard(message.get("id"))

    def _forward_once(self, line: bytes, message: Any, step: trace.Span | None = None) -> None:
        rid = message.get("id") if isinstance(message, dict) and "method" in message else None
        handshake = self._is_handshake(message)
        # What a restarted server must be told first: the handshake messages that came before this one.
        before = {"initialize": 0, "notifications/initialized": 1}.get(message.get("method"), 2) if handshake else 2
        generation = self._generation
        if step is not None:
            step.mark("thread")
        stream = handshake or _wants_progress(message)
        for attempt in range(2):
            try:
                self._post(line, is_handshake=handshake, stream=stream, step=step)
                if step is not None:
                    step.mark("ended")
                    step.done()
                return
            except Unreached as exc:
                if attempt == 1:
                    return self._fail(rid, f"the shared ANSF server is unreachable ({exc})")
                try:
                    generation = self._reconnect(generation, replay=before)
                except (SharedServerError, Unreached, Lost) as start_exc:
                    return self._fail(rid, f"the shared ANSF server could not be restarted: {start_exc}")
            except Lost as exc:  # the next message finds the server gone and restarts it
                # "Call again" alone duplicated what the server had done before it stopped: a coordinate without
                # task ids put its tasks up twice, a message went out twice (board/README "repeated calls").
                return self._fail(rid, f"the shared ANSF server stopped while answering this request ({exc}), "
                                       "perhaps after carrying it out; it is restarted on the next call. Call "
                                       "again: report_outcome, release_task, manage_task, dissolve_swarm and a "
                                       "coordinate whose tasks all have ids answer a repeat as the first; a "
                                       "coordinate without task ids, send_message or spawn_swarm only after "
                                       "checking it is not there yet (swarm_status, read_messages)")
            except Exception as exc:  # a relay that dies leaves its client waiting: answer instead
                log.exception("relay failure")
                return self._fail(rid, f"the relay failed: {exc}")

    @staticmethod
    def _is_handshake(message: Any) -> bool:
        return isinstance(message, dict) and message.get("method") in ("initialize", "notifications/initialized")

    def _fail(self, rid: Any, why: str) -> None:
        if rid is not None:
            self.write(_error(rid, INTERNAL_ERROR, why))
        else:
            sys.stderr.write(f"ansf relay: {why}\n")

    # -- HTTP ------------------------------------------------------------------------------------------------

    def _endpoint_now(self) -> Endpoint:
        with self._session_lock:
            if self._endpoint is None:
                self._endpoint = self._connect()
            return self._endpoint

    def _headers(self, endpoint: Endpoint, accept: str) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {endpoint.token}", "Accept": accept,
                   "Content-Type": "application/json"}
        if self._session:
            headers[SESSION_HEADER] = self._session
        if self._version:
            headers[VERSION_HEADER] = self._version
        return headers

    def _connection(self, endpoint: Endpoint) -> http.client.HTTPConnection:
        """This thread's kept-alive connection to `endpoint`, or a new one when there is none, it was opened to
        another server, it has been idle long enough for the server to be closing it (REUSE_IDLE_S), or the
        server has closed it (it made room for others): a closed one shows as readable before anything is sent on
        it, so nothing is lost."""
        local = self._local
        if endpoint.pid > 0 and not running(endpoint.pid):
            # Dead before the message left (a kept-alive connection to it may not show it yet): whatever answers on
            # its port now (another program that took the port, a lingering socket) is not our server.
            self._drop_connection()
            raise Unreached("its process has exited")
        conn: http.client.HTTPConnection | None = getattr(local, "conn", None)
        if (conn is not None and local.endpoint == endpoint and conn.sock is not None
                and time.monotonic() - local.used_at < REUSE_IDLE_S and not _dropped(conn.sock)):
            return conn
        self._drop_connection()
        conn = http.client.HTTPConnection(endpoint.host, endpoint.port, timeout=ANSWER_TIMEOUT_S)
        try:
            conn.connect()
        except OSError as exc:  # nobody listens: the message cannot have been acted on
            conn.close()
            raise Unreached(type(exc).__name__) from exc
        local.conn, local.endpoint, local.used_at = conn, endpoint, time.monotonic()
        return conn

    def _drop_connection(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
        self._local.conn = None

    def _post(self, line: bytes, *, is_handshake: bool, stream: bool = True, echo: bool = True,
              step: trace.Span | None = None) -> None:
        endpoint = self._endpoint_now()
        conn = self._connection(endpoint)
        json_only = not stream and self._json_answers
        done = False
        try:
            try:
                if step is not None:
                    step.mark("post")
                conn.request("POST", "/mcp", body=line,
                             headers=self._headers(endpoint, JSON_ONLY if json_only else STREAM_OR_JSON))
                response = conn.getresponse()
                if step is not None:
                    step.mark("head")
                if response.status == 406 and json_only:  # refused unread: ask again as the specification says
                    response.read()
                    self._json_answers = False
                    done = True
                    return self._post(line, is_handshake=is_handshake, stream=True, echo=echo, step=step)
            except (OSError, http.client.HTTPException) as exc:
                # Connected, then cut off: the server may have acted on it, so it is not sent again.
                raise Lost(type(exc).__name__) from exc
            if response.status == 404 and not is_handshake:
                raise Unreached("the server does not know this session: it was restarted")
            if is_handshake and response.getheader(SESSION_HEADER):
                self._session = response.getheader(SESSION_HEADER)
            try:
                self._relay_body(response, line, is_handshake=is_handshake, echo=echo, step=step)
            except (OSError, http.client.HTTPException) as exc:
                raise Lost(type(exc).__name__) from exc
            done = True
            self._local.used_at = time.monotonic()
        finally:
            if not done:  # an answer not read to its end leaves the connection unusable
                self._drop_connection()

    def _relay_body(self, response: http.client.HTTPResponse, line: bytes, *, is_handshake: bool,
                    echo: bool, step: trace.Span | None = None) -> None:
        kind = (response.getheader("content-type") or "").split(";")[0].strip()
        if kind == "text/event-stream":
            for data in _events(response):
                self._seen(data, is_handshake)
                if echo:
                    self.write(data)
                    if step is not None and "written" not in step.record:
                        step.mark("written")
            return
        body = response.read()
        if response.status == 202 or not body.strip():
            return
        if 200 <= response.status < 300:
            self._seen(body, is_handshake)
            if echo:
                self.write(body)
                if step is not None:
                    step.mark("written")
            return
        # An HTTP error: answer the request it refused, with the request's id (the server could not read it).
        rid = request_id(line.decode("utf-8", "replace"))
        try:
            why = json.loads(body).get("error", {}).get("message") or body.decode()[:300]
        except (ValueError, AttributeError):
            why = body.decode("utf-8", "replace")[:300]
        if rid is not None and echo:
            code = PARSE_ERROR if response.status == 400 and "arse" in why else INTERNAL_ERROR
            self.write(_error(rid, code, f"{why} (HTTP {response.status} from the shared server)"))
        elif rid is None:
            sys.stderr.write(f"ansf relay: the shared server refused a message: HTTP {response.status} {why}\n")

    def _seen(self, data: bytes, is_handshake: bool) -> None:
        """Learn the negotiated protocol version from the initialize answer (sent on every later request)."""
        if not is_handshake:
            return
        try:
            version = json.loads(data).get("result", {}).get("protocolVersion")
        except (ValueError, AttributeError):
            return
        if isinstance(version, str):
            self._version = version

    # -- the listening stream and recovery -------------------------------------------------------------------

    def _listen(self) -> None:
        if self._session is None:
            return
        threading.Thread(target=self._listen_once, args=(self._generation,), name="relay-listen",
                         daemon=True).start()

    def _listen_once(self, generation: int) -> None:
        """The server's own notifications (resource updates...), until the stream or the session ends."""
        try:
            endpoint = self._endpoint_now()
            conn = http.client.HTTPConnection(endpoint.host, endpoint.port)
            conn.request("GET", "/mcp", headers=self._headers(endpoint, "text/event-stream"))
            response = conn.getresponse()
            if response.status != 200:
                return
            for data in _events(response):
                if generation != self._generation:
                    return
                self.write(data)
        except (OSError, http.client.HTTPException):
            return  # a dead server shows on the next request, which restarts it

    def _reconnect(self, generation: int, replay: int = 2) -> int:
        """Find or restart the server and replay the first `replay` handshake messages; once per failure among
        all threads (a thread that saw an older generation finds the work done)."""
        with self._session_lock:
            if generation != self._generation:
                return self._generation
            self._endpoint = self._connect()
            self._session = None
            self._json_answers = True  # the server found or started now may be newer than the one that refused
            self._generation += 1
            for line in self._handshake[:replay]:
                self._post(line, is_handshake=True, echo=False)
            if replay >= 2 and len(self._handshake) > 1:
                with self._waiting_lock:
                    subscribed = list(self._subscriptions)
                for n, uri in enumerate(subscribed):
                    again = json.dumps({"jsonrpc": "2.0", "id": f"ansf-relay-resubscribe-{self._generation}-{n}",
                                        "method": "resources/subscribe", "params": {"uri": uri}}).encode()
                    self._post(again, is_handshake=False, stream=False, echo=False)
                self._listen()
        sys.stderr.write("ansf relay: reconnected to the shared server\n")
        return self._generation

    def _end_session(self) -> None:
        endpoint, session = self._endpoint, self._session
        if endpoint is None or session is None:
            return
        conn = http.client.HTTPConnection(endpoint.host, endpoint.port, timeout=5)
        try:
            conn.request("DELETE", "/mcp", headers=self._headers(endpoint, "application/json"))
            conn.getresponse().read()
        except (OSError, http.client.HTTPException):
            pass  # the server forgets sessions it cannot reach either way
        finally:
            conn.close()


def _not_a_message(message: Any) -> str | None:
    """Why a parsed line is no JSON-RPC message the server could take (None: it may be one; the server checks the
    rest). A client's own answers (result or error, no method) pass."""
    if isinstance(message, list):
        return "batches (JSON arrays) are not supported; send one message per line"
    if not isinstance(message, dict):
        return "Input should be an object"
    if message.get("jsonrpc") != "2.0":
        return "jsonrpc: Input should be '2.0'"
    if "method" not in message:
        return None if "result" in message or "error" in message else "method: Field required"
    if not isinstance(message["method"], str):
        return "method: Input should be a valid string"
    if "params" in message and not isinstance(message["params"], dict):
        return "params: Input should be an object"
    return None


def _wants_progress(message: Any) -> bool:
    """Whether a request asks for progress notifications (they need its answer to be a stream)."""
    params = message.get("params") if isinstance(message, dict) else None
    meta = params.get("_meta") if isinstance(params, dict) else None
    return isinstance(meta, dict) and meta.get("progressToken") is not None


def _dropped(sock: socket.socket) -> bool:
    """Whether an idle connection's socket is no longer usable: readable with nothing asked means the server
    closed it (or sent something unasked); either way a request must not go on it."""
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


def _events(response: http.client.HTTPResponse) -> Any:
    """The data of each server-sent event (comments, ids and empty priming events skipped)."""
    data: list[bytes] = []
    for raw in iter(response.readline, b""):
        line = raw.rstrip(b"\r\n")
        if not line:
            if data:
                yield b"\n".join(data)
                data = []
        elif line.startswith(b"data:"):
            data.append(line[5:].lstrip(b" ") if line[5:6] == b" " else line[5:])
    if data:
        yield b"\n".join(data)


def serve_relay(key: Any, *, idle_exit_s: float, log_level: str | None) -> int:
    """Relay this process's stdio to the shared server for `key` until the client closes stdin."""
    from ansf_mcp.server.shared import ensure

    def connect() -> Endpoint:
        return ensure(key, idle_exit_s=idle_exit_s, log_level=log_level)

    try:
        connect()  # start it now: the client's first request should not wait for a model-sized start-up
    except SharedServerError as exc:
        hint = " (or run `ansf serve --standalone`)" if exc.standalone_helps else ""
        sys.stderr.write(f"ansf serve: {exc}{hint}\n")
        return 2
    Relay(connect, sys.stdin.buffer, sys.stdout.buffer).run()
    return 0
