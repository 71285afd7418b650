"""What an LLM agent meets, through real transports: a stdio subprocess with the legacy initialize handshake (as
Claude Desktop and the Inspector start it) and Streamable HTTP. The board refuses impossible histories, lets work
move on (heartbeat, release, reassign, takeover), answers in a context-window-sized page, says what it expected
when arguments are wrong, and starts long work in the background."""

from __future__ import annotations

import contextlib
import sqlite3
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import httpx
import pytest
from mcp import Client, StdioServerParameters

from ansf_mcp.bench.mcp_suite import answer_size
from ansf_mcp.store.db import SQLITE_NAME
from tests.conftest import ansf_command, free_port, subprocess_env
from tests.mcp_calls import call, error

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

# Takeover without waiting: an agent not seen for 0 s counts as away (the grace itself is tested with a clock).
ENV = {"ANSF_TAKEOVER_GRACE_S": "0"}


@contextlib.asynccontextmanager
async def stdio_client(data_dir: Path, cwd: Path, **env: str) -> AsyncIterator[Client]:
    cmd = ansf_command()
    params = StdioServerParameters(command=cmd[0], args=[*cmd[1:], "serve"],
                                   env={**subprocess_env(data_dir), **ENV, **env}, cwd=str(cwd))
    async with Client(params, mode="legacy") as client:
        yield client


@contextlib.asynccontextmanager
async def http_client(data_dir: Path, cwd: Path) -> AsyncIterator[Client]:
    port = free_port()
    proc = subprocess.Popen([*ansf_command(), "serve", "--transport", "http", "--port", str(port)],
                            env={**subprocess_env(data_dir), **ENV}, cwd=cwd,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, proc.stderr.read().decode()
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            assert time.monotonic() < deadline, "server did not become healthy"
            time.sleep(0.1)
        async with Client(f"{base}/mcp") as client:
            yield client
    finally:
        proc.kill()
        proc.wait()


@pytest.fixture(params=["stdio", "http"])
async def client(request, data_dir: Path, tmp_path: Path) -> AsyncIterator[Client]:
    opener = stdio_client if request.param == "stdio" else http_client
    async with opener(data_dir, tmp_path) as c:
        yield c


async def test_titles_and_one_sentence_errors(client: Client) -> None:
    tools = (await client.list_tools()).tools
    assert all(t.title for t in tools) and {"renew_lease", "release_task", "reassign_task",
                                            "benchmark_status", "benchmark_cancel"} <= {t.name for t in tools}
    await call(client, "spawn_swarm", name="team", agents=[{"role": "backend"}])
    text = await error(client, "swarm_status", swarm_id="team")  # a name where an id is expected
    assert text.startswith("swarm_status: swarm_id 'team' is not in the expected form") and "\n" not in text
    assert "use swarm_status() to list swarm ids" in text and "validation error" not in text


async def test_the_board_refuses_impossible_histories_and_lets_work_move_on(client: Client) -> None:
    sw = (await call(client, "spawn_swarm", name="p", agents=[{"role": r} for r in ("ui", "qa", "e2e")]))["swarm_id"]
    await call(client, "coordinate", swarm_id=sw, strategy="round-robin", tasks=[
        {"id": "ui", "description": "build the ui"}, {"id": "tests", "description": "write the tests"},
        {"id": "e2e", "description": "run e2e", "depends_on": ["ui", "tests"]}])
    assert (await call(client, "next_task", swarm_id=sw, agent_id="agent-0"))["task"]["id"] == "ui"
    refused = await error(client, "report_outcome", swarm_id=sw, task_id="e2e", agent_id="agent-2", success=True)
    assert "blocked (waiting for 'ui', 'tests')" in refused and "nothing was recorded" in refused
    assert "claimed by 'agent-0'" in await error(client, "report_outcome", swarm_id=sw, task_id="ui",
                                                 agent_id="agent-1", success=True)
    # a retried failure report: the same answer, one outcome
    first = await call(client, "report_outcome", swarm_id=sw, task_id="ui", agent_id="agent-0", success=False)
    assert await call(client, "report_outcome", swarm_id=sw, task_id="ui", agent_id="agent-0",
                      success=False) == first
    assert "already reported as a failure" in await error(client, "report_outcome", swarm_id=sw, task_id="ui",
                                                          agent_id="agent-0", success=True)
    # heartbeat and release
    claim = await call(client, "next_task", swarm_id=sw, agent_id="agent-1", lease_seconds=30)
    assert (await call(client, "renew_lease", swarm_id=sw, task_id=claim["task"]["id"], agent_id="agent-1",
                       lease_seconds=600))["lease_expires_in_s"] == 600
    released = await call(client, "release_task", swarm_id=sw, task_id=claim["task"]["id"], agent_id="agent-1")
    assert released["state"] == "ready"
    # the failed task went back on the board unassigned: unassigned work comes before any takeover
    assert (await call(client, "next_task", swarm_id=sw, agent_id="agent-0"))["task"]["id"] == "ui"
    # reassign, then a takeover of work pinned to an agent that is away (grace 0 here)
    await call(client, "reassign_task", swarm_id=sw, task_id=claim["task"]["id"], to_agent="agent-2")
    taken = await call(client, "next_task", swarm_id=sw, agent_id="agent-1")
    assert taken["claimed"] and taken["taken_over_from"] == "agent-2" and "has not been seen" in taken["note"]
    agents = (await call(client, "swarm_status", swarm_id=sw))["swarm"]["agents"]
    assert [(a["successes"], a["failures"]) for a in agents] == [(0, 1), (0, 0), (0, 0)]


async def test_a_64_task_board_answers_within_2k_tokens_with_a_cursor(client: Client) -> None:
    agents = [{"role": r, "capabilities": [r]} for r in ("backend", "frontend", "testing", "devops") * 4]
    sw = (await call(client, "spawn_swarm", name="big", agents=agents))["swarm_id"]
    await call(client, "coordinate", swarm_id=sw, strategy="round-robin",
               tasks=[{"description": f"Implement endpoint {i} for the billing service"} for i in range(64)])
    result = await client.call_tool("swarm_status", {"swarm_id": sw})
    assert answer_size(result)["tokens"] <= 2000 and not result.content[0].text.startswith("{")
    seen, cursor = [], None
    while True:
        page = (await call(client, "swarm_status", swarm_id=sw, limit=30, **({"cursor": cursor} if cursor else {}))
                )["swarm"]
        seen += [t["id"] for t in page["tasks"]]
        if not (cursor := page["next_cursor"]):
            break
    assert seen == [f"task-{i}" for i in range(64)]


async def test_benchmark_returns_a_handle_and_can_be_cancelled(client: Client) -> None:
    run = await call(client, "benchmark", suite="mcp", quick=True)
    assert run["state"] == "running" and run["report"] is None
    await call(client, "benchmark_cancel", run_id=run["run_id"])
    with anyio.fail_after(120):
        while (state := (await call(client, "benchmark_status", run_id=run["run_id"]))["state"]) == "cancelling":
            await anyio.sleep(0.2)
    assert state in ("cancelled", "succeeded"), state  # a run may finish before its next progress step


def test_stdio_server_from_the_root_folder_refuses_semantic_work_fast(data_dir: Path) -> None:
    """Started with the working directory / and no --project (as some clients do): the semantic tools say to use
    --project instead of scanning the whole disk."""
    import json

    proc = subprocess.Popen([*ansf_command(), "serve"], env=subprocess_env(data_dir), cwd="/",
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    requests = [
        {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/call",
         "params": {"name": "find_symbol", "arguments": {"name_path": "main"}}},
    ]
    try:
        out, _ = proc.communicate("".join(json.dumps(r) + "\n" for r in requests).encode(), timeout=60)
    finally:
        proc.kill()
    answers = {m["id"]: m for m in map(json.loads, out.decode().splitlines()) if "id" in m}
    result = answers[2]["result"]
    assert result["isError"] and "--project" in result["content"][0]["text"], result


def seen_by_the_board(data_dir: Path, swarm_id: str, agent_id: str) -> bool:
    """Whether the agent's next_task has been answered once (its claim attempt wrote last_seen_at)."""
    with contextlib.closing(sqlite3.connect(data_dir / SQLITE_NAME, timeout=5)) as db:
        row = db.execute("SELECT last_seen_at FROM agents WHERE swarm_id = ? AND id = ?", (swarm_id, agent_id)
                         ).fetchone()
    return row is not None and row[0] is not None


async def test_agents_in_two_stdio_servers_wait_for_each_other_and_their_loops_end(data_dir: Path,
                                                                                   tmp_path: Path) -> None:
    """Two stdio servers (one per agent, as clients start them) on one board: an agent waiting in next_task is
    woken by a report made through the other server; a failed chain answers *blocked by* the failed task in both,
    and cancelling it makes both answer *done*."""
    async with stdio_client(data_dir, tmp_path, ANSF_MAX_ATTEMPTS="1") as a, \
            stdio_client(data_dir, tmp_path, ANSF_MAX_ATTEMPTS="1") as b:
        sw = (await call(a, "spawn_swarm", name="w", agents=[{"role": "x"}, {"role": "y"}]))["swarm_id"]
        await call(a, "coordinate", swarm_id=sw, strategy="round-robin", tasks=[
            {"id": "p", "description": "prepare"}, {"id": "q", "description": "use it", "depends_on": ["p"]}])
        assert (await call(a, "next_task", swarm_id=sw, agent_id="agent-0"))["task"]["id"] == "p"
        got: dict = {}

        async def agent_1() -> None:
            got.update(await call(b, "next_task", swarm_id=sw, agent_id="agent-1", wait_s=30))

        with anyio.fail_after(30):
            async with anyio.create_task_group() as tg:
                tg.start_soon(agent_1)
                while not seen_by_the_board(data_dir, sw, "agent-1"):  # its first attempt found nothing: waiting
                    await anyio.sleep(0.05)
                await call(a, "report_outcome", swarm_id=sw, task_id="p", agent_id="agent-0", success=True)
        assert got["status"] == "assigned" and got["task"]["id"] == "q"
        assert got["waited_s"] < 4  # woken by the other server's report, not by the 5 s re-check

        await call(a, "coordinate", swarm_id=sw, strategy="round-robin", tasks=[
            {"id": "f", "description": "flaky"}, {"id": "g", "description": "after flaky", "depends_on": ["f"]}])
        assert (await call(a, "next_task", swarm_id=sw, agent_id="agent-0"))["task"]["id"] == "f"
        await call(a, "report_outcome", swarm_id=sw, task_id="f", agent_id="agent-0", success=False, summary="boom")
        await call(b, "report_outcome", swarm_id=sw, task_id="q", agent_id="agent-1", success=True)
        for client, agent in ((a, "agent-0"), (b, "agent-1")):
            stuck = await call(client, "next_task", swarm_id=sw, agent_id=agent, wait_s=30)
            assert stuck["status"] == "blocked" and stuck["blocked_by"] == ["f"] and stuck["waited_s"] < 10
        assert (await call(b, "manage_task", swarm_id=sw, task_id="f", action="cancel"))["cancelled"] == ["g"]
        for client, agent in ((a, "agent-0"), (b, "agent-1")):
            assert (await call(client, "next_task", swarm_id=sw, agent_id=agent))["status"] == "done"
