"""Short board writes on SQLite take turns on the event loop, one thread at a time (store.serial_writes): claims,
outcomes, renewals and releases; a decision, which computes before its transaction, stays in the write pool."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import anyio
import pytest

from ansf_mcp.board.board import Board
from ansf_mcp.board.models import AgentSpec, TaskSpec
from ansf_mcp.store.base import Connection
from ansf_mcp.store.sqlite import SqliteStore


class CountingStore(SqliteStore):
    """Counts the transactions open at once."""

    def __init__(self, path: Path) -> None:
        self.inside = 0
        self.most = 0
        self._count = threading.Lock()
        super().__init__(path)  # its migrations are transactions too

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        with self._count:
            self.inside += 1
            self.most = max(self.most, self.inside)
        try:
            with super().transaction() as conn:
                yield conn
        finally:
            with self._count:
                self.inside -= 1


@pytest.fixture
def board(tmp_path: Path) -> Iterator[Board]:
    store = CountingStore(tmp_path / "s.sqlite3")
    try:
        yield Board(store)
    finally:
        store.close()


def test_short_writes_take_turns_and_a_decision_does_not(board: Board) -> None:
    for short in (board.claim_next, board.report, board.renew, board.release):
        assert board._pool_for(short) == "turns"
    for other in (board.coordinate, board.manage, board.reassign):
        assert board._pool_for(other) == "write"


def test_on_a_store_whose_writers_run_side_by_side_every_write_goes_to_the_pool(board: Board,
                                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(type(board.store), "serial_writes", False)  # as PostgreSQL: row locks, many writers
    assert board._pool_for(board.claim_next) == "write"


def test_sixteen_agents_claiming_at_once_get_sixteen_tasks_one_transaction_at_a_time(board: Board) -> None:
    swarm = board.spawn("s", [AgentSpec(role="dev")] * 16, "mesh").swarm_id
    board.coordinate(swarm, [TaskSpec(id=f"t{i}", description=f"part {i}") for i in range(32)], "round-robin")
    agents = [a.id for a in board.view(swarm).agents]
    board.store.most = 0  # type: ignore[attr-defined]
    claims: list = []

    async def main() -> None:
        async def one(agent: str) -> None:
            claims.append(await board.next(swarm, agent))
            task = claims[-1].task.id
            await board.write(board.report, swarm, task, agent, True, "done")

        async with anyio.create_task_group() as tg:
            for agent in agents:
                tg.start_soon(one, agent)

    anyio.run(main)
    assert all(c.claimed for c in claims)
    assert len({c.task.id for c in claims}) == 16  # no task handed out twice
    assert board.store.most == 1  # type: ignore[attr-defined]
    assert board.counts(swarm)["succeeded"] == 16


def test_turns_run_in_order_in_one_thread_and_hand_back_answers_and_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    from ansf_mcp.board import turns as turns_module

    monkeypatch.setattr(turns_module, "IDLE_EXIT_S", 0.05)
    turns = turns_module.Turns()
    seen: list[tuple[int, str]] = []

    def job(i: int) -> int:
        seen.append((i, threading.current_thread().name))
        if i == 3:
            raise ValueError("three")
        return i * 10

    async def main() -> list:
        results: list = [None] * 6

        async def one(i: int) -> None:
            try:
                results[i] = await turns.run(lambda: job(i))
            except ValueError as exc:
                results[i] = str(exc)

        async with anyio.create_task_group() as tg:
            for i in range(6):
                tg.start_soon(one, i)
                await anyio.lowlevel.checkpoint()  # queued in this order
        return results

    assert anyio.run(main) == [0, 10, 20, "three", 40, 50]
    assert [i for i, _ in seen] == list(range(6))
    assert {name for _, name in seen} == {"ansf-board-turns"}
    thread = turns._thread
    assert thread is not None
    thread.join(10)  # idle: it ends by itself...
    assert not thread.is_alive() and turns._thread is None
    assert anyio.run(turns.run, lambda: 7) == 7  # ...and starts again with the next write


def test_a_caller_cancelled_while_its_write_runs_leaves_the_write_whole() -> None:
    from ansf_mcp.board.turns import Turns

    turns = Turns()
    started, release, finished = threading.Event(), threading.Event(), threading.Event()

    def write() -> str:
        started.set()
        release.wait(10)
        finished.set()
        return "written"

    async def main() -> None:
        with anyio.move_on_after(0) as scope:
            await turns.run(write)
        assert scope.cancelled_caught
        await anyio.to_thread.run_sync(started.wait, 10)
        release.set()
        await anyio.to_thread.run_sync(finished.wait, 10)
        assert await turns.run(lambda: "next") == "next"  # the thread goes on with the next write

    anyio.run(main)
    assert finished.is_set()
