"""The stdio relay and the one shared server it finds or starts: real `ansf serve` processes, real clients in the
initialize-handshake (legacy) mode that Claude Desktop and IDEs use."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest
from mcp import Client, StdioServerParameters

from ansf_mcp.server.shared import STATE_DIR, TOKEN_FILE
from tests.conftest import ansf_command, subprocess_env
from tests.mcp_calls import call

pytestmark = [pytest.mark.anyio, pytest.mark.slow]


def relay_env(data_dir: Path) -> dict[str, str]:
    env = subprocess_env(data_dir)
    env.pop("ANSF_STANDALONE")
    return env


def relay_params(data_dir: Path, project: Path, *extra: str) -> StdioServerParameters:
    cmd = ansf_command()
    return StdioServerParameters(command=cmd[0], args=[*cmd[1:], "serve", "--project", str(project), *extra],
                                 env=relay_env(data_dir), cwd=str(project))


def shared_pids(data_dir: Path) -> list[int]:
    """Live processes serving `data_dir` as a shared server, found by their command lines, not by our records."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().split()[2]
        except OSError:
            continue
        if state != "Z" and b"--idle-exit-s" in argv and str(data_dir).encode() in argv:
            pids.append(int(entry.name))
    return pids


def wait_gone(pid: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z":
                return True
        except OSError:
            return True
        time.sleep(0.1)  # polling a process's exit
    return False


@pytest.fixture
def shared_servers(data_dir: Path) -> Iterator[Path]:
    """The data directory; every shared server started on it is stopped afterwards, even when a test fails."""
    yield data_dir
    for pid in shared_pids(data_dir):
        os.kill(pid, signal.SIGTERM)
        if not wait_gone(pid, 10):
            os.kill(pid, signal.SIGKILL)


async def test_relays_started_together_share_one_server_and_one_board(shared_servers: Path, tmp_path: Path):
    data_dir, n = shared_servers, 4
    boards: list[dict] = []
    clients: list[Client] = []
    all_connected, checked = anyio.Event(), anyio.Event()

    async def agent() -> None:
        async with Client(relay_params(data_dir, tmp_path), mode="legacy") as client:
            boards.append(await call(client, "swarm_status"))
            clients.append(client)
            if len(clients) == n:
                all_connected.set()
            await checked.wait()

    async with anyio.create_task_group() as tg:
        for _ in range(n):
            tg.start_soon(agent)  # n relays start at once, each finding or starting the shared server
        try:
            with anyio.fail_after(120):
                await all_connected.wait()
            assert all(b["swarms"] == [] for b in boards)
            assert len(shared_pids(data_dir)) == 1, "the relays started more than one shared server"
            sw = (await call(clients[0], "spawn_swarm", name="s", agents=[{"role": "backend"}]))["swarm_id"]
            seen = await call(clients[-1], "swarm_status", swarm_id=sw)
            assert seen["swarm"]["swarm_id"] == sw
        finally:
            checked.set()
    assert (data_dir / TOKEN_FILE).stat().st_mode & 0o777 == 0o600


async def test_a_killed_shared_server_is_restarted_and_the_session_goes_on(shared_servers: Path, tmp_path: Path):
    data_dir = shared_servers
    async with Client(relay_params(data_dir, tmp_path), mode="legacy") as client:
        sw = (await call(client, "spawn_swarm", name="s", agents=[{"role": "qa"}]))["swarm_id"]
        [first] = shared_pids(data_dir)
        os.kill(first, signal.SIGKILL)
        assert wait_gone(first, 10)
        with anyio.fail_after(120):
            seen = await call(client, "swarm_status", swarm_id=sw)  # the store outlives the server
        assert seen["swarm"]["swarm_id"] == sw
        [second] = shared_pids(data_dir)
        assert second != first


class Updates:
    """A client's message handler that keeps the URIs of resource-updated notifications."""

    def __init__(self) -> None:
        self.heard: list[str] = []
        self.woken = anyio.Event()

    async def __call__(self, message) -> None:
        if getattr(message, "method", None) == "notifications/resources/updated":
            self.heard.append(str(message.params.uri))
            self.woken.set()


async def subscribed_watcher_and_lead(shared_servers: Path, tmp_path: Path, restart: bool) -> tuple[Updates, str]:
    """A watcher subscribed to a swarm's board behind one relay, a lead doing work behind another (the shared
    server SIGKILLed in between when `restart`); what the watcher heard."""
    updates = Updates()
    params = relay_params(shared_servers, tmp_path)
    async with Client(params, mode="legacy", message_handler=updates) as watcher, \
            Client(params, mode="legacy") as lead:
        sw = (await call(lead, "spawn_swarm", name="s", agents=[{"role": "qa"}]))["swarm_id"]
        await watcher.subscribe_resource(f"ansf://swarms/{sw}")
        if restart:
            [first] = shared_pids(shared_servers)
            os.kill(first, signal.SIGKILL)
            assert wait_gone(first, 10)
            for client in (watcher, lead):  # each relay finds the server gone on its next message, starts one
                with contextlib.suppress(Exception):
                    await client.call_tool("swarm_status", {})
        await call(lead, "coordinate", swarm_id=sw, strategy="round-robin", tasks=[{"description": "x"}])
        with anyio.fail_after(30):
            await updates.woken.wait()
    return updates, sw


@pytest.mark.filterwarnings("ignore:resources/(un)?subscribe is removed")
async def test_a_subscriber_behind_one_relay_hears_of_work_done_through_another(shared_servers: Path,
                                                                               tmp_path: Path):
    updates, sw = await subscribed_watcher_and_lead(shared_servers, tmp_path, restart=False)
    assert updates.heard == [f"ansf://swarms/{sw}"]


def test_stdout_carries_only_protocol_and_bad_lines_are_answered(shared_servers: Path, tmp_path: Path):
    lines = [
        {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
    ]
    raw = "".join(json.dumps(m) + "\n" for m in lines) + '{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"\\ud800"}}\n'
    raw += '{"jsonrpc": "2.0", "id": 8, "method": \n'  # cut short: not JSON
    proc = subprocess.run([*ansf_command(), "serve"], input=raw.encode(), env=relay_env(shared_servers),
                          cwd=tmp_path, capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    answers = [json.loads(line) for line in proc.stdout.decode().splitlines()]  # every line is JSON-RPC
    by_id = {a["id"]: a for a in answers}
    assert set(by_id) == {1, 2, 7, 8}, answers
    assert by_id[1]["result"]["serverInfo"]["name"] == "ansf-mcp"
    assert any(t["name"] == "next_task" for t in by_id[2]["result"]["tools"])
    assert by_id[7]["error"]["code"] in (-32700, -32600, -32602, -32603) and by_id[8]["error"]["code"] == -32700


def test_the_shared_server_stops_after_its_last_client_leaves(shared_servers: Path, tmp_path: Path):
    init = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}})
    proc = subprocess.run([*ansf_command(), "serve", "--idle-exit-s", "1"], input=(init + "\n").encode(),
                          env=relay_env(shared_servers), cwd=tmp_path, capture_output=True, timeout=120)
    assert proc.returncode == 0 and b'"serverInfo"' in proc.stdout, proc.stderr.decode()[-2000:]
    [pid] = shared_pids(shared_servers)
    assert wait_gone(pid, 60), "the idle shared server did not stop"
    log = next((shared_servers / STATE_DIR).glob("*.log")).read_text()
    assert "no client for 1 s" in log


async def test_each_project_gets_its_own_shared_server(shared_servers: Path, tmp_path: Path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    async with Client(relay_params(shared_servers, a), mode="legacy") as ca, \
            Client(relay_params(shared_servers, b), mode="legacy") as cb:
        roots = [(await call(c, "system_status"))["project_root"] for c in (ca, cb)]
    assert roots == [str(a), str(b)]
    assert len(list((shared_servers / STATE_DIR).glob("*.json"))) == 2


def test_a_terminal_is_told_what_serve_waits_for(data_dir: Path, tmp_path: Path):
    import pty

    leader, follower = pty.openpty()
    proc = subprocess.Popen([*ansf_command(), "serve", "--standalone"], stdin=follower, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=subprocess_env(data_dir), cwd=tmp_path)
    os.close(follower)
    try:
        first = proc.stderr.readline().decode()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        os.close(leader)
    assert "waiting for an MCP client on stdin" in first and "standalone" in first
    assert proc.stdout.read() == b""


async def test_a_standalone_stdio_server_warms_nothing_unless_asked(data_dir: Path, tmp_path: Path):
    env = subprocess_env(data_dir)
    del env["ANSF_WARMUP"]  # the user's default, not the tests' setting
    cmd = ansf_command()
    params = StdioServerParameters(command=cmd[0], args=[*cmd[1:], "serve", "--standalone"], env=env,
                                   cwd=str(tmp_path))
    async with Client(params, mode="legacy") as client:
        status = await call(client, "system_status")
    assert status["components"]["model_warmup"]["state"] == "skipped", status["components"]["model_warmup"]
    assert status["models"]["torch_imported"] is False


@pytest.mark.parametrize(("argv", "env", "warm", "index"), [
    (["--standalone"], {}, False, False),  # one agent in its own process: nothing at start
    (["--standalone"], {"ANSF_WARMUP": "1", "ANSF_SEMANTIC_INDEX": "1"}, True, True),  # unless asked for
    (["--standalone"], {"ANSF_WARMUP": "0"}, False, False),
    (["--transport", "http"], {}, True, True),  # the shared (HTTP) server warms once for every agent
])
def test_what_a_server_loads_at_start(monkeypatch: pytest.MonkeyPatch, argv: list[str], env: dict[str, str],
                                      warm: bool, index: bool) -> None:
    import argparse

    from ansf_mcp.cli import _serve_args, serve_settings

    for name in ("ANSF_WARMUP", "ANSF_SEMANTIC_INDEX"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = serve_settings(_serve_args(argparse.ArgumentParser()).parse_args(argv))
    assert (settings.warm_model, settings.semantic_index) == (warm, index)


def test_a_port_taken_before_the_server_binds_it_is_replaced(shared_servers: Path, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch):
    import socket

    from ansf_mcp.server import shared

    monkeypatch.setenv("ANSF_WARMUP", "0")
    free = shared.free_port
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        taken = blocker.getsockname()[1]
        offered = iter([taken])
        monkeypatch.setattr(shared, "free_port", lambda host: next(offered, None) or free(host))
        endpoint = shared.ensure(shared.Key(data_dir=shared_servers, project=tmp_path))
    assert endpoint.port != taken
    assert shared.answers(endpoint.host, endpoint.port, endpoint.pid)


def test_a_stranger_on_the_recorded_port_is_not_taken_for_the_server(shared_servers: Path, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch):
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    from threading import Thread

    from ansf_mcp.server import shared

    class Healthy(BaseHTTPRequestHandler):  # answers /health like any ansf server, but is not ours
        def do_GET(self) -> None:
            self.send_response(200 if self.path == "/health" else 404)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    monkeypatch.setenv("ANSF_WARMUP", "0")
    stranger = ThreadingHTTPServer(("127.0.0.1", 0), Healthy)
    Thread(target=stranger.serve_forever, daemon=True).start()
    bystander = subprocess.Popen(["sleep", "60"])  # a live process that is not a shared server
    key = shared.Key(data_dir=shared_servers, project=tmp_path)
    try:
        (shared_servers / STATE_DIR).mkdir(parents=True)
        (shared_servers / STATE_DIR / f"{key.name}.json").write_text(json.dumps(
            {"host": "127.0.0.1", "port": stranger.server_address[1], "pid": bystander.pid}))
        endpoint = shared.ensure(key)
        assert endpoint.port != stranger.server_address[1] and endpoint.pid != bystander.pid
        assert bystander.poll() is None, "a process that is not a shared server was signalled"
    finally:
        bystander.kill()
        bystander.wait()
        stranger.shutdown()
        stranger.server_close()


def test_a_port_taken_between_the_check_and_the_bind_is_tried_again(shared_servers: Path, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch):
    """Another program may take the chosen free port after the server's own check and before uvicorn binds it
    (seen once in CI with parallel test workers): uvicorn's bind error counts as a taken port, and the server is
    started again on another."""
    from ansf_mcp.server import shared

    monkeypatch.setenv("ANSF_WARMUP", "0")
    real = shared.server_command
    ports: list[int] = []

    def first_loses_its_port(key, port, idle_exit_s, log_level):
        ports.append(port)
        if len(ports) > 1:
            return real(key, port, idle_exit_s, log_level)
        said = (f"ERROR uvicorn.error: [Errno 98] error while attempting to bind on address ('127.0.0.1', {port}): "
                "address already in use")
        return [sys.executable, "-c", f"import sys; sys.stderr.write({said!r} + '\\n'); sys.exit(3)"]

    monkeypatch.setattr(shared, "server_command", first_loses_its_port)
    key = shared.Key(data_dir=shared_servers, project=tmp_path)
    (shared_servers / STATE_DIR).mkdir(parents=True, exist_ok=True)
    endpoint = shared.ensure(key)  # the fixture stops the server it started
    assert len(ports) == 2 and endpoint.port == ports[1]


@pytest.mark.parametrize("how", ["input closed", "relay killed"])
async def test_a_client_gone_during_a_long_poll_gets_no_task_claimed_for_it(shared_servers: Path, tmp_path: Path,
                                                                          how: str):
    """Before, next_task(wait_s) went on waiting on the server and claimed the next ready task for an agent that was
    gone, which held it for a whole lease. Input closed: the relay cancels its client's long-polls. Relay killed
    (kill -9, or the client's SIGTERM to a relay slow to exit): it cannot, and the server cancels a long-poll whose
    connection closes before it is answered."""
    data_dir = shared_servers
    async with Client(relay_params(data_dir, tmp_path), mode="legacy") as lead:
        sw = (await call(lead, "spawn_swarm", name="s", agents=[{"role": "a"}, {"role": "b"}]))["swarm_id"]
        await call(lead, "coordinate", swarm_id=sw, strategy="round-robin", tasks=[
            {"id": "t1", "description": "build it"}, {"id": "t2", "description": "ship it", "depends_on": ["t1"]}])
        first = await call(lead, "next_task", swarm_id=sw, agent_id="agent-0")
        holder = "agent-0" if first["status"] == "assigned" else "agent-1"
        if first["status"] != "assigned":
            first = await call(lead, "next_task", swarm_id=sw, agent_id="agent-1")
        gone = "agent-1" if holder == "agent-0" else "agent-0"
        lines = [
            {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
                "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}},
            {"jsonrpc": "2.0", "method": "notifications/initialized"},
            {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "next_task", "arguments": {
                "swarm_id": sw, "agent_id": gone, "wait_s": 30}}},
        ]
        proc = subprocess.Popen([*ansf_command(), "serve", "--project", str(tmp_path)], env=relay_env(data_dir),
                                cwd=tmp_path, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        try:
            proc.stdin.write("".join(json.dumps(m) + "\n" for m in lines).encode())
            proc.stdin.flush()
            await anyio.sleep(2)  # the long-poll is waiting on the server
            if how == "input closed":
                proc.stdin.close()
            else:
                proc.kill()
                proc.wait(timeout=10)
            await anyio.sleep(1)
            await call(lead, "report_outcome", swarm_id=sw, task_id="t1", agent_id=holder, success=True,
                       claim=first["claim"])
            await anyio.sleep(2)  # a wait still running would have claimed t2 by now
            t2 = await call(lead, "get_task", swarm_id=sw, task_id="t2")
            assert t2["task"]["state"] == "ready", t2
            if how == "input closed":
                assert proc.wait(timeout=30) == 0
        finally:
            proc.kill()


@pytest.mark.filterwarnings("ignore:resources/(un)?subscribe is removed")
async def test_a_subscription_outlives_a_restart_of_the_shared_server(shared_servers: Path, tmp_path: Path):
    # the watcher's relay subscribes again on the new server, so the update still reaches it
    updates, sw = await subscribed_watcher_and_lead(shared_servers, tmp_path, restart=True)
    assert updates.heard == [f"ansf://swarms/{sw}"]
