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

from ansf_mcp.store.db import Store
from tests.conftest import free_port, stop, subprocess_env

SWARM = "dash-swarm"


def seed_swarm(store: Store, swarm: str = SWARM) -> None:
    with store.transaction() as conn:
        conn.execute(
            "INSERT OR IGNORE INTO swarms (id, name, topology, created_at) VALUES (?, ?, 'mesh', ?)",
            (swarm, swarm, time.time()),
        )


def add_outcomes(
    store: Store,
    rows: list[tuple[bool, float | None]],
    *,
    strategy: str = "history",
    duration_s: float | None = None,
    status: str | None = None,
    swarm: str = SWARM,
    at: float | None = None,
) -> None:
    """One task (with `strategy`) and one outcome per (success, p_success) row, committed together."""
    seed_swarm(store, swarm)
    now = time.time() if at is None else at
    with store.transaction() as conn:
        base = conn.execute("SELECT COALESCE(MAX(seq), 0) FROM tasks WHERE swarm_id = ?", (swarm,)).fetchone()[0]
        for i, (success, p) in enumerate(rows, start=1):
            task_id = f"t{base + i}"
            conn.execute(
                "INSERT INTO tasks (swarm_id, id, seq, description, priority, status, assignee, p_success, strategy, "
                "attempts, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                (swarm, task_id, base + i, "work", 1, status or ("succeeded" if success else "failed"), "a1", p,
                 strategy, 1, now, now),
            )
            conn.execute(
                "INSERT INTO outcomes (swarm_id, task_id, agent_id, task_text, success, summary, duration_s, "
                "p_success, created_at) VALUES (?,?,?,?,?,?,?,?,?)",
                (swarm, task_id, "a1", "work", int(success), "", duration_s, p, now),
            )


def add_decisions(store: Store, elapsed_ms: list[float], strategy: str = "history", at: float | None = None) -> None:
    now = time.time() if at is None else at
    with store.transaction() as conn:
        conn.executemany(
            "INSERT INTO decisions (swarm_id, strategy, model, agents, tasks, assigned, elapsed_ms, created_at) "
            "VALUES (?, ?, NULL, 3, 5, 5, ?, ?)",
            [(SWARM, strategy, ms, now) for ms in elapsed_ms],
        )


def add_benchmark(store: Store) -> None:
    report = {
        "suite": "coordination",
        "results": {
            "methods": [
                {"method": "round-robin", "value_ratio": {"mean": 0.71, "ci95": [0.69, 0.73]}},
                {"method": "history", "value_ratio": {"mean": 0.88, "ci95": [0.86, 0.9]}},
                {"method": "neural", "value_ratio": {"mean": 0.93, "ci95": [0.91, 0.95]}},
            ]
        },
    }
    with store.transaction() as conn:
        conn.execute(
            "INSERT INTO benchmark_runs (suite, created_at, report) VALUES (?, ?, ?)",
            ("coordination", time.time(), json.dumps(report)),
        )


@pytest.fixture
def store(settings) -> Iterator[Store]:
    s = Store(settings.db_path)
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
