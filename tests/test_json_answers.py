"""Per-request JSON answers on Streamable HTTP (ansf_mcp/server/json_answers.py): a real uvicorn server in a thread
serving a small MCP server whose tools report progress, raw HTTP for the wire and the SDK's own client for what a
client that follows the specification sees."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator

import anyio
import httpx
import pytest
import uvicorn
from mcp import Client
from mcp.server.mcpserver import Context, MCPServer

from ansf_mcp.server.json_answers import answer_json_when_asked, wants_json_only
from tests.conftest import free_port

pytestmark = pytest.mark.anyio

STREAM_OR_JSON = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
JSON_ONLY = {"Accept": "application/json", "Content-Type": "application/json"}
VERSION = "2025-06-18"


class Served:
    def __init__(self, url: str, gate: threading.Event) -> None:
        self.url = url
        self.gate = gate


@pytest.fixture
def served() -> Iterator[Served]:
    """A small MCP server on a real port: `count` reports progress n times; `gated` reports once, waits for
    `open_gate`, reports again; the session manager answers JSON when asked."""
    server = MCPServer("json-answers")
    gate = threading.Event()

    @server.tool()
    async def count(n: int, ctx: Context) -> str:
        for i in range(n):
            await ctx.report_progress(i + 1, n, f"step {i + 1}")
        return f"counted {n}"

    @server.tool()
    async def gated(ctx: Context) -> str:
        await ctx.report_progress(1, 2, "waiting")
        opened = await anyio.to_thread.run_sync(gate.wait, 30)
        await ctx.report_progress(2, 2, "through")
        return "through" if opened else "timed out"

    @server.tool()
    def open_gate() -> str:
        gate.set()
        return "opened"

    app = server.streamable_http_app()
    answer_json_when_asked(server.session_manager)
    port = free_port()
    uv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not uv.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the test server did not start"
        time.sleep(0.02)  # polling a starting server
    try:
        yield Served(f"http://127.0.0.1:{port}/mcp", gate)
    finally:
        uv.should_exit = True
        thread.join(10)


def open_session(http: httpx.Client, url: str) -> dict[str, str]:
    """The handshake (as a relay sends it, streams accepted); the headers every later request carries."""
    init = {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": VERSION, "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}
    r = http.post(url, json=init, headers=STREAM_OR_JSON)
    assert r.status_code == 200, r.text
    session = {"mcp-session-id": r.headers["mcp-session-id"], "mcp-protocol-version": VERSION}
    done = http.post(url, json={"jsonrpc": "2.0", "method": "notifications/initialized"},
                     headers={**STREAM_OR_JSON, **session})
    assert done.status_code == 202
    return session


def call(rid: int, tool: str, arguments: dict, progress: str | None = None) -> dict:
    params: dict = {"name": tool, "arguments": arguments}
    if progress is not None:
        params["_meta"] = {"progressToken": progress}
    return {"jsonrpc": "2.0", "id": rid, "method": "tools/call", "params": params}


def events(body: str) -> list[dict]:
    return [json.loads(line[5:]) for line in body.splitlines() if line.startswith("data:") and line[5:].strip()]


def test_accept_headers_that_ask_for_json_only():
    assert wants_json_only("application/json")
    assert wants_json_only("application/json;q=1, */*")
    assert not wants_json_only("application/json, text/event-stream")
    assert not wants_json_only("text/event-stream")
    assert not wants_json_only("")


def test_a_request_that_accepts_json_only_gets_one_json_body_and_its_progress_is_dropped(served: Served):
    with httpx.Client(timeout=30) as http:
        session = open_session(http, served.url)
        r = http.post(served.url, json=call(7, "count", {"n": 3}, progress="p7"), headers={**JSON_ONLY, **session})
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("application/json")
        answer = r.json()  # the answer itself, not a progress notification queued ahead of it
        assert answer["id"] == 7 and answer["result"]["content"][0]["text"] == "counted 3"


def test_a_request_that_accepts_streams_keeps_its_progress(served: Served):
    with httpx.Client(timeout=30) as http:
        session = open_session(http, served.url)
        r = http.post(served.url, json=call(8, "count", {"n": 3}, progress="p8"),
                      headers={**STREAM_OR_JSON, **session})
        assert r.headers["content-type"].startswith("text/event-stream")
        said = events(r.text)
        assert [m["params"]["progress"] for m in said if m.get("method") == "notifications/progress"] == [1, 2, 3]
        assert said[-1]["id"] == 8 and said[-1]["result"]["content"][0]["text"] == "counted 3"


async def test_a_streamed_request_keeps_its_stream_while_one_in_json_is_answered_beside_it(served: Served):
    """Concurrent requests of one session each get their own kind of answer: the JSON one in between does not
    turn the streamed one's progress off."""
    async with httpx.AsyncClient(timeout=30) as http:
        with anyio.fail_after(30):
            init = {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
                "protocolVersion": VERSION, "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}
            r = await http.post(served.url, json=init, headers=STREAM_OR_JSON)
            session = {"mcp-session-id": r.headers["mcp-session-id"], "mcp-protocol-version": VERSION}
            await http.post(served.url, json={"jsonrpc": "2.0", "method": "notifications/initialized"},
                            headers={**STREAM_OR_JSON, **session})
            streamed: list[dict] = []
            first_progress = anyio.Event()

            async def gated() -> None:
                async with http.stream("POST", served.url, json=call(9, "gated", {}, progress="g"),
                                       headers={**STREAM_OR_JSON, **session}) as s:
                    assert s.headers["content-type"].startswith("text/event-stream")
                    async for line in s.aiter_lines():
                        if line.startswith("data:") and line[5:].strip():
                            streamed.append(json.loads(line[5:]))
                            first_progress.set()

            async with anyio.create_task_group() as tg:
                tg.start_soon(gated)
                await first_progress.wait()  # the streamed call is in flight, waiting at its gate
                opened = await http.post(served.url, json=call(10, "open_gate", {}), headers={**JSON_ONLY, **session})
                assert opened.headers["content-type"].startswith("application/json")
                assert opened.json()["result"]["content"][0]["text"] == "opened"
    assert [m["params"]["message"] for m in streamed if m.get("method") == "notifications/progress"] == [
        "waiting", "through"]
    assert streamed[-1]["id"] == 9 and streamed[-1]["result"]["content"][0]["text"] == "through"


async def test_a_client_that_follows_the_specification_sees_no_change(served: Served):
    seen: list[float] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append(progress)

    async with Client(served.url, mode="legacy") as client:
        result = await client.call_tool("count", {"n": 4}, progress_callback=on_progress)
    assert not result.is_error and result.content[0].text == "counted 4"
    assert seen == [1, 2, 3, 4]
