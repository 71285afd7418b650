"""The opt-in timings (ansf_mcp/trace.py): off, nothing is written; on, each step's instants in order, the store's
transaction marked on the span its thread works for, garbage collections, and the shared server's requests."""

from __future__ import annotations

import gc
import json
from pathlib import Path

import anyio
import pytest

from ansf_mcp import trace
from ansf_mcp.board.board import Board
from ansf_mcp.board.models import AgentSpec, TaskSpec
from ansf_mcp.server.shared import traced
from ansf_mcp.store.sqlite import SqliteStore


def records(folder: Path) -> list[dict]:
    return [json.loads(line) for f in sorted(folder.glob("trace-*.jsonl")) for line in f.read_text().splitlines()]


@pytest.fixture
def tracing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "trace"
    monkeypatch.setattr(trace, "DIR", str(folder))
    return folder


def test_off_nothing_is_made_or_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(trace, "DIR", None)
    assert trace.span("claim") is None
    trace.write({"kind": "x"})
    trace.mark("lock")  # no span: nothing happens
    fn = len
    assert trace.working_for(None, fn) is fn
    assert list(tmp_path.iterdir()) == []


def test_a_claim_is_traced_from_the_call_through_the_store_s_transaction(tracing: Path, tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "s.sqlite3")
    board = Board(store)
    try:
        swarm = board.spawn("s", [AgentSpec(role="dev")], "mesh").swarm_id
        board.coordinate(swarm, [TaskSpec(id="t1", description="do it")], "round-robin")
        agent = board.view(swarm).agents[0].id
        claim = anyio.run(board.next, swarm, agent)
    finally:
        store.close()
    assert claim.claimed
    [record] = [r for r in records(tracing) if r["kind"] == "claim"]
    assert record["agent"] == agent
    order = ["call", "thread", "lock", "begin", "commit0", "commit1", "thread_end", "back"]
    assert [record[k] for k in order] == sorted(record[k] for k in order)


def test_garbage_collections_are_recorded_once_watched(tracing: Path) -> None:
    try:
        trace.watch_gc()
        trace.watch_gc()  # once only
        assert gc.callbacks.count(trace._on_gc) == 1
        gc.collect(0)
    finally:
        while trace._on_gc in gc.callbacks:  # the watcher leaves with the test
            gc.callbacks.remove(trace._on_gc)
    found = [r for r in records(tracing) if r["kind"] == "gc"]
    assert found and found[-1]["gen"] == 0 and found[-1]["t1"] >= found[-1]["t0"]


def test_a_request_to_the_shared_server_is_traced_with_its_tool_and_agent(tracing: Path) -> None:
    body = json.dumps({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
                       "params": {"name": "next_task", "arguments": {"agent_id": "a7"}}}).encode()

    async def app(scope, receive, send) -> None:
        while (await receive()).get("more_body"):
            pass
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b'data: {"result": {}}\n\n', "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def main() -> None:
        chunks = [{"type": "http.request", "body": body[:10], "more_body": True},
                  {"type": "http.request", "body": body[10:], "more_body": False}]

        async def receive() -> dict:
            return chunks.pop(0)

        async def send(message: dict) -> None:
            pass

        await traced(app, {"type": "http", "method": "POST", "path": "/mcp"}, receive, send)
        await traced(app, {"type": "http", "method": "POST", "path": "/mcp"}, receive_bad, send)

    async def receive_bad() -> dict:
        return {"type": "http.request", "body": b"not json", "more_body": False}

    anyio.run(main)
    first, second = [r for r in records(tracing) if r["kind"] == "http"]
    assert first["tool"] == "next_task" and first["agent"] == "a7" and first["method"] == "tools/call"
    assert first["in"] <= first["body"] <= first["head"] <= first["data"] <= first["end"]
    assert "tool" not in second and second["in"] <= second["end"]  # an unreadable body: instants only
