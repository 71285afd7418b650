"""The event loop never waits on storage (issue 17, items 5 and 6): real server processes whose store is held or
hung from outside keep answering ping, system_status, read-only swarm_status and /health within a second, and
the board call that waits gets one clear sentence within the store's time-out; nothing is lost."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import anyio
import httpx
import pytest
from mcp import Client, StdioServerParameters

from tests.conftest import ansf_command, subprocess_env
from tests.mcp_calls import call

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

STORE_TIMEOUT_S = 2.0  # ANSF_STORE_TIMEOUT_S of the servers under test: the held lock outlasts it
ANSWER_WITHIN_S = 1.0

# Another process takes SQLite's write lock and keeps it until told to let go (a line on its stdin).
HOLDER = ("import sqlite3, sys; c = sqlite3.connect(sys.argv[1], isolation_level=None); c.execute('BEGIN IMMEDIATE');"
          " print('held', flush=True); sys.stdin.readline(); c.execute('ROLLBACK')")


@contextmanager
def sqlite_lock_held(db: Path) -> Iterator[None]:
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(db)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        yield
    finally:
        holder.communicate("release\n", timeout=30)


def stdio_server(tmp_path: Path, **env: str) -> StdioServerParameters:
    cmd = ansf_command()
    return StdioServerParameters(
        command=cmd[0], args=[*cmd[1:], "serve"], cwd=str(tmp_path),
        env={**subprocess_env(tmp_path / "data"), "ANSF_STORE_TIMEOUT_S": str(STORE_TIMEOUT_S), **env},
    )


async def one_task_board(client: Client) -> str:
    sw = (await call(client, "spawn_swarm", name="waits", agents=[{"role": "worker"}]))["swarm_id"]
    await call(client, "coordinate", swarm_id=sw, tasks=[{"id": "job", "description": "the job"}],
               strategy="round-robin")
    return sw


async def while_waiting(blocked: Callable[[], Awaitable[object]],
                        probes: dict[str, Callable[[], Awaitable[object]]]) -> tuple[object, float, dict[str, float]]:
    """Run `blocked` and, until it returns, each probe in turn, back to back: (what `blocked` answered, seconds
    it took, the slowest answer of each probe). Bounded: the blocked call ends within the store's time-out."""
    got: dict[str, object] = {}
    slowest = dict.fromkeys(probes, 0.0)
    rounds = 0

    async def run_blocked() -> None:
        started = time.monotonic()
        got["answer"] = await blocked()
        got["took"] = time.monotonic() - started

    with anyio.fail_after(STORE_TIMEOUT_S * 10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(run_blocked)
            while "answer" not in got:
                for name, probe in probes.items():
                    started = time.monotonic()
                    await probe()
                    slowest[name] = max(slowest[name], time.monotonic() - started)
                rounds += 1
    assert rounds >= 3, f"only {rounds} probe rounds while the call waited: the check proves nothing"
    return got["answer"], got["took"], slowest  # type: ignore[return-value]


def next_task(client: Client, sw: str) -> Callable[[], Awaitable[object]]:
    async def claim() -> object:
        return await client.call_tool("next_task", {"swarm_id": sw, "agent_id": "agent-0"})
    return claim


def mcp_probes(client: Client, sw: str) -> dict[str, Callable[[], Awaitable[object]]]:
    return {
        "ping": client.send_ping,
        "system_status": lambda: call(client, "system_status"),
        "swarm_status": lambda: call(client, "swarm_status", swarm_id=sw),
    }


async def claimed_after_release(client: Client, sw: str) -> None:
    """Once the store answers again the task is still there, claimable once, its refused attempt not counted."""
    claim = await call(client, "next_task", swarm_id=sw, agent_id="agent-0")
    assert claim["claimed"] and claim["task"]["id"] == "job" and claim["task"]["attempts"] == 1, claim
    status = (await call(client, "swarm_status", swarm_id=sw))["swarm"]
    assert status["tasks_by_state"]["claimed"] == 1 and sum(status["tasks_by_state"].values()) == 1


def assert_clear_refusal(answer: object, took: float, words: str) -> None:
    assert answer.is_error, answer  # type: ignore[attr-defined]
    text = answer.content[0].text  # type: ignore[attr-defined]
    assert words in text and "ANSF_STORE_TIMEOUT_S" in text and "\n" not in text, text
    assert STORE_TIMEOUT_S - 0.1 <= took < STORE_TIMEOUT_S + 3.0, f"the refusal took {took:.2f} s"


async def test_a_held_sqlite_lock_freezes_nothing_on_stdio(tmp_path: Path) -> None:
    async with Client(stdio_server(tmp_path), mode="legacy") as client:
        sw = await one_task_board(client)
        with sqlite_lock_held(tmp_path / "data" / "ansf.sqlite3"):
            answer, took, slowest = await while_waiting(next_task(client, sw), mcp_probes(client, sw))
        print(f"held SQLite lock, stdio: next_task refused after {took:.2f} s; slowest answers {slowest}")
        assert_clear_refusal(answer, took, "stayed locked by another process")
        assert max(slowest.values()) <= ANSWER_WITHIN_S, slowest
        await claimed_after_release(client, sw)


async def test_a_held_sqlite_lock_leaves_health_answering(http_server, monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ANSF_STORE_TIMEOUT_S", str(STORE_TIMEOUT_S))
    base, _ = http_server("http")
    async with Client(f"{base}/mcp", mode="legacy") as client, httpx.AsyncClient(base_url=base, timeout=10) as web:
        sw = await one_task_board(client)

        async def health() -> None:
            assert (await web.get("/health")).status_code == 200

        with sqlite_lock_held(tmp_path / "data" / "ansf.sqlite3"):
            answer, took, slowest = await while_waiting(next_task(client, sw),
                                                        {"health": health, **mcp_probes(client, sw)})
        print(f"held SQLite lock, HTTP: next_task refused after {took:.2f} s; slowest answers {slowest}")
        assert_clear_refusal(answer, took, "stayed locked by another process")
        assert max(slowest.values()) <= ANSWER_WITHIN_S, slowest
        await claimed_after_release(client, sw)


def _backends(admin_url: str, dbname: str) -> list[int]:
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as conn:
        return [r[0] for r in conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND application_name LIKE 'ansf-mcp%%'", (dbname,))]


@contextmanager
def postgres_hung(cluster, dbname: str) -> Iterator[None]:
    """The postmaster and this database's backends stopped (SIGSTOP): connections stay open, nothing answers."""
    postmaster = int((cluster.data / "postmaster.pid").read_text().split()[0])
    stopped = [*_backends(cluster.url(), dbname), postmaster]
    assert len(stopped) >= 2, "the replica has no backend to stop"
    for pid in stopped:
        os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        for pid in stopped:
            os.kill(pid, signal.SIGCONT)


async def test_a_hung_postgresql_freezes_no_replica(pg_cluster, tmp_path: Path) -> None:
    url = pg_cluster.new_database()
    async with Client(stdio_server(tmp_path, ANSF_STORE=url), mode="legacy") as client:
        sw = await one_task_board(client)
        with postgres_hung(pg_cluster, url.rsplit("/", 1)[1]):
            seen: list[str] = []

            async def swarm_status() -> None:
                # Read-only: answered within its read deadline, by the board or by one sentence that it is hung.
                answer = await client.call_tool("swarm_status", {"swarm_id": sw})
                seen.append(answer.content[0].text if answer.is_error else "answered")

            answer, took, slowest = await while_waiting(
                next_task(client, sw), {"ping": client.send_ping, "system_status": lambda: call(client, "system_status"),
                                        "swarm_status": swarm_status})
            status = await call(client, "system_status")
        print(f"hung PostgreSQL: next_task refused after {took:.2f} s; slowest answers {slowest}")
        assert answer.is_error and "did not answer within" in answer.content[0].text, answer
        assert took < STORE_TIMEOUT_S + 4.0, f"the refusal took {took:.2f} s"
        assert max(slowest.values()) <= ANSWER_WITHIN_S, slowest
        assert "did not answer within" in status["store"]["error"]
        assert seen and all("did not answer within 0.8 s" in text for text in seen), seen
        # Resumed: the replica reconnects by itself and the task is there.
        await claimed_after_release(client, sw)
