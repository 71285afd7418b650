"""Dashboard fixtures: rows written straight into a store, and a dashboard process on a free port."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from ansf_mcp.bench.runner import keep
from ansf_mcp.board.board import Board
from ansf_mcp.board.lifecycle import BoardPolicy
from ansf_mcp.board.models import AgentSpec, TaskSpec
from ansf_mcp.board.swarms import spawn
from ansf_mcp.board.tasks import insert_tasks
from ansf_mcp.store.db import Store, open_store
from ansf_mcp.system.report import BenchmarkReport, MachineInfo, ValueRatio
from tests.conftest import free_port, stop, subprocess_env

SWARM = "dash-swarm"


def next_snapshots(base: str, count: int, timeout_s: float = 20) -> list[dict]:
    """The next `count` snapshots the dashboard broadcasts, read from its WebSocket: each arrives right after a
    collection, so a test waits on the event itself instead of sleeping through collection intervals."""
    from websockets.sync.client import connect

    found: list[dict] = []
    with connect(base.replace("http://", "ws://", 1) + "/ws", open_timeout=10) as ws:
        deadline = time.monotonic() + timeout_s
        while len(found) < count:
            message = json.loads(ws.recv(timeout=max(0.1, deadline - time.monotonic())))
            if message.get("type") == "snapshot":
                found.append(message["snapshot"])
    return found


AGENT = "a1"


def seed_swarm(store: Store, swarm: str = SWARM) -> str:
    """The id of the swarm named `swarm`, spawned through the board (one agent, AGENT) on first use."""
    with store.reading() as conn:
        row = conn.execute("SELECT id FROM swarms WHERE name = ?", (swarm,)).fetchone()
    if row is not None:
        return str(row["id"])
    return spawn(store, swarm, [AgentSpec(id=AGENT, role="worker", capacity=1)], "mesh")


def add_outcomes(
    store: Store,
    rows: list[tuple[bool, float | None]],
    *,
    strategy: str = "history",
    duration_s: float | None = None,
    swarm: str = SWARM,
    at: float | None = None,
) -> None:
    """One task and one outcome per (success, p_success) row, through the board's write path: the task is put up,
    assigned to AGENT by `strategy` with that p_success (what coordinate writes), claimed and reported."""
    swarm_id = seed_swarm(store, swarm)
    now = time.time() if at is None else at
    # One attempt: a reported failure closes the task as failed, as the rows say.
    board = Board(store, BoardPolicy(max_attempts=1), clock=lambda: now)
    for success, p in rows:
        with store.transaction() as conn:
            n = conn.execute("SELECT COUNT(*) FROM tasks WHERE swarm_id = ?", (swarm_id,)).fetchone()[0]
            [task_id] = insert_tasks(conn, swarm_id, [TaskSpec(id=f"t{n + 1}", description="work")], now)
            conn.execute("UPDATE tasks SET assignee = ?, p_success = ?, strategy = ? WHERE swarm_id = ? AND id = ?",
                         (AGENT, p, strategy, swarm_id, task_id))
        claim = board.claim_next(swarm_id, AGENT)
        assert claim.claimed and claim.task is not None and claim.task.id == task_id, claim
        board.report(swarm_id, task_id, AGENT, success, duration_s=duration_s, claim=claim.claim)


def add_decisions(store: Store, elapsed_ms: list[float], strategy: str = "history", at: float | None = None) -> None:
    swarm_id = seed_swarm(store)
    now = time.time() if at is None else at
    with store.transaction() as conn:
        conn.executemany(
            "INSERT INTO decisions (swarm_id, strategy, model, agents, tasks, assigned, elapsed_ms, created_at) "
            "VALUES (?, ?, NULL, 3, 5, 5, ?, ?)",
            [(swarm_id, strategy, ms, now) for ms in elapsed_ms],
        )


def keep_report(store: Store, suite: str, results: dict, value_ratios: list[ValueRatio] | None = None,
                at: float | None = None) -> int:
    """A benchmark run stored the runner's way (runner.keep of a typed report)."""
    report = BenchmarkReport(
        suite=suite, version="test", machine=MachineInfo(memory_total_bytes=1, gpu="none", platform="test",
                                                         python="3"),
        started_at=time.time() if at is None else at, duration_s=0.0, quick=True, results=results,
        value_ratios=value_ratios or [], markdown="",
    )
    return keep(report, store)


def add_benchmark(store: Store) -> None:
    keep_report(store, "coordination", {"coordination": {}}, [
        ValueRatio(label="round-robin", mean=0.71, ci=(0.69, 0.73)),
        ValueRatio(label="history", mean=0.88, ci=(0.86, 0.9)),
        ValueRatio(label="neural", mean=0.93, ci=(0.91, 0.95)),
    ])


def add_replay(store: Store, repo: str = "demo-repo") -> None:
    """A replay-suite run as `ansf bench --suite replay` stores it (top-1 on REAL history; NaN where one episode)."""
    def cell(similarity: float, history: float, random: float) -> dict:
        return {"episodes": 8, "tasks": 128,
                "random": {"mean": random, "ci95": 0.03},
                "similarity": {"mean": similarity, "ci95": 0.04, "vs_similarity": 0.0, "vs_similarity_ci95": 0.0},
                "history": {"mean": history, "ci95": float("nan"), "vs_similarity": history - similarity,
                            "vs_similarity_ci95": 0.02}}
    keep_report(store, "replay", {"replay": {
        "repo": repo, "head": "0123456789abcdef", "commits": 640, "authors": 7,
        "results": {"none": {"16": cell(0.617, 0.590, 0.448), "32": cell(0.6, 0.58, 0.43)}},
    }})


# The seeded team: each agent does well on its own domain's work and fails elsewhere (one in four flipped).
DOMAINS = {
    "backend": ["Add pagination to the orders API endpoint", "Fix the database migration for invoices",
                "Cache the API responses of the search endpoint", "Add retries to the payments API client"],
    "frontend": ["Design the dark mode theme for the settings page", "Fix the layout of the login form on mobile",
                 "Add a chart component to the dashboard page", "Make the navigation menu keyboard accessible"],
    "writer": ["Document the release process in the handbook", "Write the tutorial on installing the command line tool",
               "Update the changelog and the upgrade notes", "Explain the configuration options in the user guide"],
}


async def seed_through_tools(settings, strategies: list[str]) -> dict:
    """Real board calls through the MCP tools (in-process SDK client): spawn, coordinate, claim, report.

    Returns the swarm, every (strategy, p_success, success) the tools answered, and swarm_status's estimator scores.
    """
    from mcp import Client

    from ansf_mcp.server.app import build_server

    server, app = build_server(settings)
    pairs: list[tuple[str, float, bool]] = []
    reported = 0

    async def call(client, tool: str, **args) -> dict:
        result = await client.call_tool(tool, args)
        assert not result.is_error, result.content[0].text
        return result.structured_content

    try:
        async with Client(server) as c:
            spawned = await call(c, "spawn_swarm", name="calibration-team", topology="mesh", agents=[
                {"role": role, "capabilities": [role], "capacity": 2} for role in DOMAINS])
            swarm = spawned["swarm_id"]
            role_of = {a["id"]: a["role"] for a in spawned["agents"]}
            for k, strategy in enumerate(strategies):
                texts = [(role, f"{DOMAINS[role][(k + i) % 4]} (round {k})") for role in DOMAINS for i in range(2)]
                domain = dict((t, role) for role, t in texts)
                result = await call(c, "coordinate", swarm_id=swarm, strategy=strategy,
                                    tasks=[{"description": t} for _, t in texts])
                assert result["strategy"] == strategy and not result["unassigned"]
                p_of = {a["task"]: a["p_success"] for a in result["assignments"]}
                mine: dict[str, int] = {}
                for a in result["assignments"]:
                    mine[a["agent"]] = mine.get(a["agent"], 0) + 1
                for agent, count in mine.items():
                    for _ in range(count):  # only the agent's own assignments: a re-offered task stays unclaimed
                        claim = await call(c, "next_task", swarm_id=swarm, agent_id=agent)
                        task = claim["task"]
                        assert claim["claimed"] and task["id"] in p_of and task["assignee"] == agent
                        success = (domain[task["description"]] == role_of[agent]) != (reported % 4 == 3)
                        reported += 1
                        await call(c, "report_outcome", swarm_id=swarm, task_id=task["id"], agent_id=agent,
                                   success=success, summary="done" if success else "wrong skills",
                                   duration_s=2.0 if success else 0.1)
                        pairs.append((strategy, p_of[task["id"]], success))
            status = await call(c, "swarm_status", swarm_id=swarm)
    finally:
        app.shutdown()
    return {"swarm_id": swarm, "pairs": pairs, "estimators": status["swarm"]["estimators"],
            "auto_uses": status["swarm"]["auto_uses"]}


@pytest.fixture
def store(settings) -> Iterator[Store]:
    s = open_store(settings.store_spec)
    yield s
    s.close()


class DashboardProcess:
    def __init__(self, data_dir: Path, cwd: Path):
        self.data_dir = data_dir
        self.cwd = cwd
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = free_port()

    def start(self, *extra: str, host: str = "127.0.0.1", env: dict[str, str] | None = None) -> str:
        environment = subprocess_env(self.data_dir)
        environment.setdefault("ANSF_DASHBOARD_INTERVAL_S", "1")
        environment.update(env or {})
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ansf_mcp.dashboard", "--host", host, "--port", str(self.port), *extra],
            env=environment, cwd=self.cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        base = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"dashboard exited: {self.proc.stderr.read().decode()}")
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    return base
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError("dashboard did not become healthy in 30 s")

    def stop(self) -> None:
        if self.proc:
            stop(self.proc)


@pytest.fixture
def dashboard_process(data_dir: Path, tmp_path: Path) -> Iterator[DashboardProcess]:
    d = DashboardProcess(data_dir, tmp_path)
    yield d
    d.stop()
