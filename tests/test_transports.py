"""Real transports: stdio in the initialize-handshake mode Claude Desktop uses, Streamable HTTP, SSE, tokens."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.sse import sse_client

from tests.conftest import ansf_command, subprocess_env
from tests.mcp_calls import call

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

DECOY = "raise ImportError('the decoy {name} package was imported instead of ansf_mcp.{name}')\n"


def decoy_project(root: Path) -> Path:
    """A user repository with its own top-level tools/ and semantic/ packages, as many have."""
    for name in ("tools", "semantic"):
        (root / name).mkdir(parents=True)
        (root / name / "__init__.py").write_text(DECOY.format(name=name))
    return root


def stdio_params(data_dir: Path, cwd: Path, *extra: str) -> StdioServerParameters:
    cmd = ansf_command()
    return StdioServerParameters(
        command=cmd[0], args=[*cmd[1:], "serve", *extra], env=subprocess_env(data_dir), cwd=str(cwd)
    )


async def test_stdio_handshake_from_a_folder_with_decoy_packages(data_dir: Path, tmp_path: Path) -> None:
    project = decoy_project(tmp_path / "repo")
    async with Client(stdio_params(data_dir, project), mode="legacy") as client:
        names = {t.name for t in (await client.list_tools()).tools}
        assert {"spawn_swarm", "coordinate", "next_task", "system_status"} <= names
        status = await call(client, "system_status")
        assert status["project_root"] == str(project.resolve())
        assert status["models"]["torch_imported"] is False, "listing tools must not import torch"


def test_python_dash_m_from_decoy_folder_imports_our_packages(tmp_path: Path) -> None:
    project = decoy_project(tmp_path / "repo")
    out = subprocess.run(
        [sys.executable, "-c", "import ansf_mcp.tools.swarm_tools, ansf_mcp.semantic; print('ok')"],
        cwd=project,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(project)},
    )
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


def test_stdout_carries_only_protocol(data_dir: Path, tmp_path: Path) -> None:
    """Raw stdio: every byte on stdout is a JSON-RPC message, even with debug logging on."""
    proc = subprocess.Popen(
        [*ansf_command(), "serve", "--log-level", "DEBUG"],
        env=subprocess_env(data_dir),
        cwd=tmp_path,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    requests = [
        {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
        {"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "swarm_status", "arguments": {}}},
    ]
    messages = []
    try:
        for request in requests:
            proc.stdin.write((json.dumps(request) + "\n").encode())
            proc.stdin.flush()
            if "id" in request:
                line = proc.stdout.readline()  # one response per request; a log line here fails json.loads
                messages.append(json.loads(line))
        rest, err = proc.communicate(timeout=60)  # closes stdin: the server exits
    finally:
        proc.kill()
    messages += [json.loads(line) for line in rest.decode().splitlines() if line.strip()]
    assert all(m.get("jsonrpc") == "2.0" for m in messages)
    assert [m.get("id") for m in messages[:3]] == [1, 2, 3]
    assert not messages[2].get("error") and not messages[2]["result"].get("isError")
    assert err, "debug logging should have gone to stderr"


async def test_sigkill_mid_work_then_restart_loses_nothing(data_dir: Path, tmp_path: Path) -> None:
    project = decoy_project(tmp_path / "repo")
    params = stdio_params(data_dir, project)
    async with Client(params, mode="legacy") as client:
        sw = (await call(client, "spawn_swarm", name="p", agents=[{"role": "backend"}, {"role": "qa"}]))["swarm_id"]
        await call(
            client,
            "coordinate",
            swarm_id=sw,
            tasks=[
                {"id": "a", "description": "Implement the export endpoint"},
                {"id": "b", "description": "Test the export endpoint", "depends_on": ["a"]},
                {"id": "c", "description": "Write release notes"},
            ],
        )
        first = await call(client, "next_task", swarm_id=sw, agent_id="agent-0", lease_seconds=3600)
        await call(client, "report_outcome", swarm_id=sw, task_id=first["task"]["id"], agent_id="agent-0",
                   success=True, summary="shipped", duration_s=2.5)
        second = await call(client, "next_task", swarm_id=sw, agent_id="agent-1", lease_seconds=3600)
        await call(client, "send_message", swarm_id=sw, from_agent="agent-0", to_agent="agent-1", body="ping")
        before = (await call(client, "swarm_status", swarm_id=sw))["swarm"]
        pids = [p.pid for p in _children_named("ansf")]
        assert pids, "could not find the server process"
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
    async with Client(params, mode="legacy") as client:
        after = (await call(client, "swarm_status", swarm_id=sw))["swarm"]
        inbox = await call(client, "read_messages", swarm_id=sw, agent_id="agent-1")
    strip = lambda tasks: [{k: v for k, v in t.items() if k != "lease_expires_in_s"} for t in tasks]  # noqa: E731
    assert strip(after["tasks"]) == strip(before["tasks"])
    assert after["agents"] == before["agents"]
    claimed = next(t for t in after["tasks"] if t["id"] == second["task"]["id"])
    assert claimed["state"] == "claimed" and claimed["lease_owner"] == "agent-1"
    assert claimed["lease_expires_in_s"] > 3000
    assert [m["body"] for m in inbox["messages"]] == ["ping"]
    assert after["agents"][0]["successes"] == 1


def _children_named(fragment: str):
    import psutil

    return [p for p in psutil.Process().children(recursive=True) if fragment in " ".join(p.cmdline())]


async def test_streamable_http_and_health(http_server) -> None:
    base, _ = http_server("http")
    health = httpx.get(f"{base}/health").json()
    assert health["status"] == "ok" and health["version"] and health["store"]["schema_version"] >= 1
    async with Client(f"{base}/mcp") as client:
        sw = (await call(client, "spawn_swarm", name="h", agents=[{"role": "r"}]))["swarm_id"]
        status = await call(client, "swarm_status", swarm_id=sw)
        assert status["swarm"]["agents"][0]["role"] == "r"


async def test_sse_transport(http_server) -> None:
    base, _ = http_server("sse")
    async with Client(sse_client(f"{base}/sse"), mode="legacy") as client:
        names = {t.name for t in (await client.list_tools()).tools}
        assert "coordinate" in names
        sw = (await call(client, "spawn_swarm", name="s", agents=[{"role": "r"}]))["swarm_id"]
        assert (await call(client, "swarm_status", swarm_id=sw))["swarm"]["swarm_id"] == sw


def test_off_loopback_without_token_is_refused(data_dir: Path) -> None:
    out = subprocess.run(
        [*ansf_command(), "serve", "--transport", "http", "--host", "0.0.0.0", "--port", "0"],
        env=subprocess_env(data_dir),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2 and "token" in out.stderr


async def test_off_loopback_requires_the_token(http_server) -> None:
    base, _ = http_server("http", "--token", "s3cret", host="0.0.0.0")
    assert httpx.get(f"{base}/health").status_code == 200
    init = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}
    headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
    assert httpx.post(f"{base}/mcp", json=init, headers=headers).status_code == 401
    bad = httpx.post(f"{base}/mcp", json=init, headers={**headers, "Authorization": "Bearer wrong"})
    assert bad.status_code == 401
    good = httpx.post(f"{base}/mcp", json=init, headers={**headers, "Authorization": "Bearer s3cret"})
    assert good.status_code == 200
    assert httpx.post(f"{base}/mcp?token=s3cret", json=init, headers=headers).status_code == 200


async def test_a_request_that_accepts_json_only_is_answered_in_json(http_server) -> None:
    """What the stdio relay asks for a call without a progress token: one JSON body instead of an SSE stream."""
    base, _ = http_server("http")
    both = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
    init = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}
    async with httpx.AsyncClient(base_url=base, timeout=60) as http:
        opened = await http.post("/mcp", json=init, headers=both)
        session = {"mcp-session-id": opened.headers["mcp-session-id"], "mcp-protocol-version": "2025-06-18"}
        await http.post("/mcp", json={"jsonrpc": "2.0", "method": "notifications/initialized"},
                        headers={**both, **session})
        spawn = {"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                 "params": {"name": "spawn_swarm", "arguments": {"name": "j", "agents": [{"role": "r"}]}}}
        r = await http.post("/mcp", json=spawn, headers={**both, **session, "Accept": "application/json"})
        assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
        assert r.json()["id"] == 2 and r.json()["result"]["structuredContent"]["swarm_id"]
        streamed = await http.post("/mcp", json={**spawn, "id": 3}, headers={**both, **session})
        assert streamed.headers["content-type"].startswith("text/event-stream")


async def test_a_request_body_over_the_limit_gets_a_json_rpc_error_that_says_so(http_server) -> None:
    """QA finding 4: the SDK refuses a body over its limit with a plain-text 413, which the MCP client showed as
    "Server returned an error response". The answer is a JSON-RPC error naming the limit: in the client, and
    on the wire whether the body's size is declared (Content-Length) or streamed (chunked)."""
    from mcp.server.transport_security import DEFAULT_MAX_REQUEST_BODY_SIZE as LIMIT
    from mcp.shared.exceptions import MCPError

    base, _ = http_server("http")
    huge = "x" * (LIMIT + 1)
    async with Client(f"{base}/mcp") as client:
        sw = (await call(client, "spawn_swarm", name="b", agents=[{"role": "r"}]))["swarm_id"]
        with pytest.raises(MCPError) as refused:
            await client.call_tool("coordinate", {"swarm_id": sw, "tasks": [{"description": huge}]})
        assert f"request body over {LIMIT} bytes" in str(refused.value) and "8000 characters" in str(refused.value)
        assert (await call(client, "swarm_status", swarm_id=sw))["swarm"]["tasks"] == []  # the session goes on
    headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "ping", "params": {"pad": huge}}).encode()

    async def chunks():
        for i in range(0, len(body), 1 << 20):
            yield body[i : i + (1 << 20)]

    async with httpx.AsyncClient(base_url=base, timeout=60) as http:
        for content in (body, chunks()):
            r = await http.post("/mcp", content=content, headers=headers)
            assert r.status_code == 413 and r.headers["content-type"] == "application/json"
            error = r.json()["error"]
            assert error["code"] == -32600 and error["data"] == {"max_request_body_bytes": LIMIT}


def test_busy_port_names_the_flag(http_server, data_dir: Path) -> None:
    base, _ = http_server("http")
    port = base.rsplit(":", 1)[1]
    out = subprocess.run(
        [*ansf_command(), "serve", "--transport", "http", "--port", port],
        env=subprocess_env(data_dir),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2 and "--port" in out.stderr


async def test_http_serve_with_dashboard_is_one_process(http_server) -> None:
    base, _ = http_server("http", "--dashboard")
    page = httpx.get(f"{base}/")
    assert page.status_code == 200 and "<html" in page.text.lower()
    assert httpx.get(f"{base}/metrics").status_code == 200
    async with Client(f"{base}/mcp") as client:
        status = await call(client, "system_status")
    snapshot = httpx.get(f"{base}/api/snapshot").json()
    # One process, one governor: the page shows the phase the MCP tools report.
    assert snapshot["phase"]["phase"] == status["phase"]["phase"]
    assert snapshot["memory"]["source"] == status["phase"]["memory"]["source"]


def test_stdio_with_dashboard_is_refused(data_dir: Path) -> None:
    out = subprocess.run(
        [*ansf_command(), "serve", "--dashboard"], env=subprocess_env(data_dir), capture_output=True, text=True,
        timeout=60,
    )
    assert out.returncode == 2 and "--transport http" in out.stderr
