"""PostgreSQL round trips, counted where the driver sends them (store/postgres.py's CountingCursor): a claim and
an outcome in one each (server-side functions, board/pg_functions.py); batches that fail write nothing; pooled connections survive a restart
of the server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ansf_mcp.board.board import Board
from ansf_mcp.board.errors import Refused
from ansf_mcp.board.models import TaskSpec
from ansf_mcp.store.base import StoreError
from ansf_mcp.store.db import open_store
from ansf_mcp.store.postgres import PostgresStore
from tests.board_helpers import FakeClock, agents


@pytest.fixture
def pg(pg_cluster) -> Iterator[PostgresStore]:
    store = open_store(pg_cluster.new_database())
    assert isinstance(store, PostgresStore)
    yield store
    store.close()


def _trips(store: PostgresStore, fn, *args, **kwargs):
    before = store.trips.value
    out = fn(*args, **kwargs)
    return out, store.trips.value - before


def test_a_claim_and_an_outcome_take_one_round_trip_each(pg: PostgresStore) -> None:
    board = Board(pg, clock=FakeClock())
    sw = board.spawn("rt", agents("a", "b"), "mesh").swarm_id
    board.coordinate(sw, [TaskSpec(id="t0", description="first"),
                          TaskSpec(id="t1", description="then", depends_on=["t0"])], "round-robin")
    agent = board.get_task(sw, "t0").task.assignee
    claim, claim_trips = _trips(pg, board.claim_next, sw, agent)
    assert claim.claimed and claim.task is not None and claim.task.id == "t0" and claim.claim == 1
    receipt, report_trips = _trips(pg, board.report, sw, "t0", agent, True, "done")
    assert receipt.state == "succeeded" and receipt.unblocked == ["t1"] and receipt.claim == 1
    assert (claim_trips, report_trips) == (1, 1)
    # What was written is all there: the claim ended, the outcome with its receipt, the dependent ready.
    with pg.reading() as conn:
        assert conn.execute("SELECT ended FROM claims WHERE task_id = 't0'").fetchone()[0] == "reported"
        assert conn.execute("SELECT receipt IS NOT NULL FROM outcomes WHERE task_id = 't0'").fetchone()[0]
    assert board.get_task(sw, "t1").task.state == "ready"
    # The same report again is answered from the stored receipt, and a failure on a new claim re-offers the task.
    assert board.report(sw, "t0", agent, True, "done") == receipt
    other = board.get_task(sw, "t1").task.assignee
    claim2, trips2 = _trips(pg, board.claim_next, sw, other)
    failed, trips3 = _trips(pg, board.report, sw, "t1", other, False, "broke")
    assert claim2.task.id == "t1" and failed.state == "ready" and failed.attempts == 1
    assert (trips2, trips3) == (1, 1)


def test_a_refused_claim_or_outcome_writes_nothing(pg: PostgresStore) -> None:
    board = Board(pg, clock=FakeClock())
    sw = board.spawn("rt", agents("a"), "mesh").swarm_id
    board.coordinate(sw, [TaskSpec(id="t0", description="only")], "round-robin")
    agent = board.view(sw).agents[0].id
    with pytest.raises(Refused):
        board.report(sw, "t0", agent, True, "never claimed")
    with pg.reading() as conn:
        assert conn.execute("SELECT COUNT(*) FROM outcomes").fetchone()[0] == 0
    assert board.claim_next(sw, agent).claimed
    busy = board.claim_next(sw, agent)
    assert busy.status == "wait" and "its capacity" in (busy.reason or "")


def test_a_failing_batch_rolls_back_everything_before_it(pg: PostgresStore) -> None:
    with pytest.raises(StoreError, match="nothing was written"), pg.transaction() as conn:
        pg.batch(conn, [("CREATE TABLE scratch (x INTEGER)", ()), ("INSERT INTO scratch VALUES (?)", (1,))])
        pg.batch(conn, [("INSERT INTO scratch VALUES (?)", (2,)), ("SELECT 1 / 0", ())], commit=True)
    with pg.reading() as conn:
        assert conn.execute("SELECT to_regclass('scratch') IS NULL").fetchone()[0]


def test_batched_values_keep_percent_signs_and_quotes(pg: PostgresStore) -> None:
    with pg.transaction() as conn:
        rows = pg.batch(conn, [("SELECT :a AS a, :b AS b", {"a": "it's 100%", "b": "x;y"})], commit=True)
    assert [tuple(r) for r in rows[0]] == [("it's 100%", "x;y")]


def test_pooled_connections_come_back_after_a_server_restart(pg_cluster) -> None:
    store = open_store(pg_cluster.new_database())
    assert isinstance(store, PostgresStore)
    store.CHECK_IDLE_S = 0.0  # every connection is checked when taken (by default only one idle for 2 s)
    try:
        board = Board(store)
        sw = board.spawn("restart", agents("a"), "mesh").swarm_id
        pg_cluster.stop()  # immediate: synchronous_commit is on, so what was acknowledged is in the WAL already
        pg_cluster.start()
        assert board.view(sw).swarm_id == sw  # readers: a fresh connection, no error
        board.coordinate(sw, [TaskSpec(id="t0", description="after")], "round-robin")
        assert board.view(sw).tasks[0].id == "t0"
    finally:
        store.close()


@pytest.mark.anyio
async def test_waiting_readers_hold_no_pooled_connection(pg: PostgresStore) -> None:
    """Forty agents waiting in read_messages (and a next_task waiting for work) leave the pools free: a status
    read and a write answer at once, and the pools never open more than their size."""
    import anyio

    board = Board(pg)
    sw = board.spawn("waits", agents("a", "b"), "mesh").swarm_id
    ids = [a.id for a in board.view(sw).agents]
    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            for _ in range(40):
                tg.start_soon(board.inbox, sw, ids[0], 0, 10, 20.0)
            tg.start_soon(board.next, sw, ids[0], None, 20.0)
            await anyio.wait_all_tasks_blocked()
            started = anyio.current_time()
            assert (await board.read(board.view, sw)).swarm_id == sw
            await board.write(board.coordinate, sw, [TaskSpec(id="t0", description="x")], "round-robin")
            took = anyio.current_time() - started
            tg.cancel_scope.cancel()
    assert took < 2.0, took
    for pool, size in ((pg._readers, pg.READERS), (pg._writers, pg.WRITERS)):
        assert pool.get_stats()["pool_size"] <= size


class _OneWriter(PostgresStore):
    WRITERS = 1


def test_a_call_that_finds_every_connection_busy_fails_in_one_sentence(pg_cluster) -> None:
    store = _OneWriter(pg_cluster.new_database(), timeout_s=0.5)
    try:
        with store.transaction() as conn:
            conn.executemany("CREATE TEMP TABLE IF NOT EXISTS held (x INTEGER)", [()])  # BEGIN goes with it
            with pytest.raises(StoreError) as refused, store.transaction():
                pass
        text = str(refused.value)
        assert "every connection is busy" in text and "nothing was written" in text and "\n" not in text, text
        with store.transaction() as conn:  # the connection is back in the pool: writes go on
            assert [tuple(r) for r in conn.execute("SELECT 1 AS one")] == [(1,)]
    finally:
        store.close()


@pytest.mark.parametrize("value", [
    "it's", "back\\slash\\'", "ünïcode ✓", "", "100% of ?", "-- not a comment", 0, -7, 2**62, -(2**70),
    1796298154.0191982, -0.0, 1e-300, 3.5e30, float("nan"), float("inf"), None, "nul\x00inside",
])
def test_values_bound_into_batched_statements_come_back_unchanged(pg: PostgresStore, value: object) -> None:
    # Batched statements quote plain values themselves (postgres._literal) and leave the rest (NUL, NaN, inf)
    # to psycopg: either way the value written is the value read.
    import math

    with pg.transaction() as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS literals (k INTEGER, t TEXT, n NUMERIC, f DOUBLE PRECISION)")
    column = "t" if isinstance(value, str) or value is None else "n" if isinstance(value, int) else "f"
    try:
        with pg.transaction() as conn:
            pg.batch(conn, [(f"INSERT INTO literals (k, {column}) VALUES (1, ?)", (value,))])
            got = pg.batch(conn, [(f"SELECT {column} FROM literals WHERE k = ?", (1,))], commit=True)[0][0][0]
    except StoreError as exc:
        assert isinstance(value, str) and "\x00" in value  # PostgreSQL's text holds no NUL: refused, one line
        assert "\n" not in str(exc)
        return
    if isinstance(value, float) and math.isnan(value):
        assert math.isnan(got)
    else:
        assert got == value
