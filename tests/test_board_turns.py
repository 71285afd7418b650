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
