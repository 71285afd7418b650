"""The swarm's record of each estimator in the store: the newest scored (p, outcome) pairs in a bounded ring beside
the raw sums, written by the report in its own round trips, kept across restarts, on both engines; records from
before the ring existed stay readable."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from mcp import Client

from ansf_mcp.board import scores, swarms
from ansf_mcp.board.board import Board
from ansf_mcp.board.models import TaskSpec
from ansf_mcp.coordinator.scoring import KEPT_OUTCOMES, Tally, brier, log_loss
from ansf_mcp.store import postgres as pg_store
from ansf_mcp.store import sqlite as sqlite_store
from ansf_mcp.store.db import Store, open_store
from ansf_mcp.store.migrations import MIGRATIONS
from ansf_mcp.store.postgres import PostgresStore
from tests.board_helpers import FakeClock, agents
from tests.mcp_calls import call
from tests.test_transports import _children_named, stdio_params


def _outcome(i: int) -> tuple[dict[str, float], bool]:
    """The i-th outcome: each estimator's p for it, and whether it succeeded (every p tells which outcome it is)."""
    return {"similarity": round(0.01 + (i % 97) / 100, 4), "history": round(0.9 - (i % 89) / 100, 4)}, i % 3 == 0


def _score(store: Store, swarm: str, first: int, count: int) -> None:
    """Outcomes first..first+count-1 scored as a report scores them: the predictions kept for the (task, agent),
    read back and scored in the report's statements."""
    with store.transaction() as conn:
        for i in range(first, first + count):
            ps, success = _outcome(i)
            task = f"t{i}"
            conn.executemany("INSERT INTO predictions (swarm_id, task_id, agent_id, estimator, p) VALUES (?, ?, ?, ?, ?)",
                             [(swarm, task, "agent-0", name, p) for name, p in ps.items()])
            rows = store.batch(conn, [(scores.PREDICTIONS_SQL, (swarm, task, "agent-0"))])[0]
            store.batch(conn, scores.outcome_statements(swarm, task, "agent-0", success, rows))


def _expected(first: int, last: int, kept_from: int) -> dict[str, Tally]:
    """The raw sums of outcomes first..last and the pairs of kept_from..last."""
    out: dict[str, Tally] = {}
    for i in range(first, last + 1):
        ps, success = _outcome(i)
        for name, p in ps.items():
            t = out.setdefault(name, Tally())
            t.n += 1
            t.log_loss_sum += log_loss(p, success)
            t.brier_sum += brier(p, success)
            if i >= kept_from:
                t.kept.append((p, success))
    return out


def _same(got: dict[str, Tally], want: dict[str, Tally]) -> None:
    assert set(got) == set(want)
    for name, t in want.items():
        g = got[name]
        assert g.n == t.n and g.kept == t.kept, name
        assert g.log_loss_sum == pytest.approx(t.log_loss_sum) and g.brier_sum == pytest.approx(t.brier_sum)


def test_the_ring_keeps_the_newest_pairs_and_survives_a_restart(store_spec: str | Path) -> None:
    store = open_store(store_spec)
    sw = Board(store, clock=FakeClock()).spawn("ring", agents("any"), "mesh").swarm_id
    total = KEPT_OUTCOMES + 88
    for first in range(0, total, 100):
        _score(store, sw, first, min(100, total - first))
    with store.reading() as conn:
        stored = conn.execute("SELECT estimator, COUNT(*), MIN(seq), MAX(seq) FROM estimator_outcomes "
                              "GROUP BY estimator ORDER BY estimator").fetchall()
        assert [tuple(r) for r in stored] == [(name, KEPT_OUTCOMES, 89, total) for name in ("history", "similarity")]
        assert conn.execute("SELECT COUNT(*) FROM predictions").fetchone()[0] == 0  # consumed as before
        before = scores.tallies(conn, sw)
    _same(before, _expected(0, total - 1, total - KEPT_OUTCOMES))
    store.close()
    store = open_store(store_spec)
    try:
        with store.reading() as conn:
            after = scores.tallies(conn, sw)
        _same(after, _expected(0, total - 1, total - KEPT_OUTCOMES))
        # Whose outcome each pair is, for the success model's per-agent shift.
        assert all(t.kept_agents == ["agent-0"] * KEPT_OUTCOMES for t in after.values())
        view = {s.estimator: s for s in Board(store, clock=FakeClock()).view(sw).estimators}
        assert view["similarity"].outcomes == total and view["similarity"].kept_outcomes == KEPT_OUTCOMES
        assert view["similarity"].compared == "recalibrated"
        assert view["similarity"].recalibrated_log_loss == round(
            after["similarity"].recalibrated.log_loss_sum / KEPT_OUTCOMES, 4)  # type: ignore[union-attr]
    finally:
        store.close()


def test_records_from_before_the_ring_stay_readable_and_the_ring_continues_them(
        store_spec: str | Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A data directory (or database) at the schema before the ring, with a swarm's raw record in it.
    ring = next(i for i, step in enumerate(MIGRATIONS)
                if any("CREATE TABLE estimator_outcomes" in str(statement) for statement in step))
    for module in (sqlite_store, pg_store):
        monkeypatch.setattr(module, "MIGRATIONS", MIGRATIONS[:ring])
    old = open_store(store_spec)
    sw = swarms.spawn(old, "old", agents("any"), "mesh")  # the board as it was, without reading the ring
    with old.transaction() as conn:
        conn.execute("INSERT INTO estimator_scores (swarm_id, estimator, n, log_loss_sum, brier_sum) "
                     "VALUES (?, 'similarity', 700, 490.0, 175.0)", (sw,))
    old.close()
    monkeypatch.undo()
    store = open_store(store_spec)
    try:
        assert store.schema_version == len(MIGRATIONS)
        board = Board(store, clock=FakeClock())
        raw = {s.estimator: s for s in board.view(sw).estimators}["similarity"]
        assert (raw.outcomes, raw.log_loss, raw.kept_outcomes, raw.compared) == (700, 0.7, 0, "raw")
        _score(store, sw, 0, 24)  # similarity's sums continue the old ones; history starts from nothing
        with store.reading() as conn:
            seqs = conn.execute("SELECT seq, slot FROM estimator_outcomes WHERE estimator = 'similarity' "
                                "ORDER BY seq").fetchall()
        assert [tuple(r) for r in seqs] == [(s, s % KEPT_OUTCOMES) for s in range(701, 725)]
        rows = {s.estimator: s for s in board.view(sw).estimators}
        assert rows["similarity"].outcomes == 724 and rows["similarity"].kept_outcomes == 24
        assert rows["history"].outcomes == rows["history"].kept_outcomes == 24
        assert rows["similarity"].compared == rows["history"].compared == "recalibrated"
    finally:
        store.close()


def test_an_outcome_with_predictions_takes_one_round_trip_and_keeps_its_pairs(pg_cluster) -> None:
    store = open_store(pg_cluster.new_database())
    assert isinstance(store, PostgresStore)
    try:
        board = Board(store, clock=FakeClock())
        sw = board.spawn("rt", agents("backend", "frontend"), "mesh").swarm_id
        board.coordinate(sw, [TaskSpec(id="t0", description="Add an index to the orders table")], "history")
        agent = board.get_task(sw, "t0").task.assignee
        assert agent is not None and board.claim_next(sw, agent).claimed
        before = store.trips.value
        assert board.report(sw, "t0", agent, True, "done").state == "succeeded"
        assert store.trips.value - before == 1  # the outcome function (board/pg_functions.py) scores and keeps them server-side
        with store.reading() as conn:
            kept = conn.execute("SELECT estimator, seq, slot, success FROM estimator_outcomes ORDER BY estimator")
            assert [tuple(r) for r in kept] == [(name, 1, 1, 1) for name in ("history", "p_success", "similarity", "success_model")]
    finally:
        store.close()


def test_claim_and_report_keep_numpy_unimported(tmp_path: Path) -> None:
    db = tmp_path / "db.sqlite3"
    store = open_store(db)
    board = Board(store)
    sw = board.spawn("np", agents("backend"), "mesh").swarm_id
    board.coordinate(sw, [TaskSpec(id="t0", description="Add an index to the orders table")], "similarity")
    store.close()
    script = textwrap.dedent(f"""
        import sys
        from ansf_mcp.board.board import Board
        from ansf_mcp.store.db import open_store
        store = open_store({str(db)!r})
        board = Board(store)
        claim = board.claim_next({sw!r}, "agent-0")
        assert claim.claimed, claim
        board.report({sw!r}, "t0", "agent-0", True, "done")
        with store.reading() as conn:
            kept = conn.execute("SELECT COUNT(*) FROM estimator_outcomes").fetchone()[0]
        store.close()
        print(kept, "numpy" in sys.modules)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True)
    # similarity, history, p_success and success_model (the success model before the swarm's shift)
    assert out.stdout.split() == ["4", "False"], out.stderr


@pytest.mark.slow
@pytest.mark.anyio
async def test_swarm_status_shows_the_kept_record_after_a_sigkill_and_restart(data_dir: Path,
                                                                              tmp_path: Path) -> None:
    params = stdio_params(data_dir, tmp_path)
    async with Client(params, mode="legacy") as client:
        sw = (await call(client, "spawn_swarm", name="kept", agents=[{"role": "backend"}, {"role": "frontend"}]))[
            "swarm_id"]
        reported = 0
        for round_ in range(10):
            used = await call(client, "coordinate", swarm_id=sw, strategy="similarity", tasks=[
                {"description": f"Add an index to the orders table ({round_})"},
                {"description": f"Restyle the settings page buttons ({round_})"}])
            for a in used["assignments"]:
                claim = await call(client, "next_task", swarm_id=sw, agent_id=a["agent"])
                await call(client, "report_outcome", swarm_id=sw, task_id=claim["task"]["id"], agent_id=a["agent"],
                           success=(reported // 2) % 2 == 0)
                reported += 1
        before = (await call(client, "swarm_status", swarm_id=sw))["swarm"]
        for proc in _children_named("ansf"):
            os.kill(proc.pid, signal.SIGKILL)
    async with Client(params, mode="legacy") as client:
        after = (await call(client, "swarm_status", swarm_id=sw))["swarm"]
    assert reported == 20 and after["estimators"] == before["estimators"]
    rows = {s["estimator"]: s for s in after["estimators"]}
    for name in ("similarity", "history", "p_success"):
        assert rows[name]["outcomes"] == rows[name]["kept_outcomes"] == 20, rows[name]
        assert rows[name]["recalibrated_log_loss"] is not None and rows[name]["compared"] == "recalibrated"
    assert after["auto_uses"] == before["auto_uses"]


def test_a_read_between_outcomes_reuses_the_record_and_an_outcome_renews_it(store: Store) -> None:
    board = Board(store, clock=FakeClock())
    first, second, third = (board.spawn(name, agents("any"), "mesh").swarm_id for name in ("a", "b", "c"))
    for sw in (first, second, third):
        _score(store, sw, 0, 20)
    memo = scores.Records(swarms=2)
    with store.reading() as conn:
        before = scores.tallies(conn, first, memo)
        again = scores.tallies(conn, first, memo)
    assert again["similarity"].kept is before["similarity"].kept  # neither read nor recalibrated again
    assert again["similarity"].recalibrated is before["similarity"].recalibrated is not None
    _score(store, first, 20, 1)
    with store.reading() as conn:
        after = scores.tallies(conn, first, memo)
        assert after["similarity"].n == 21 and len(after["similarity"].kept) == 21
        _same(after, _expected(0, 20, 0))
        # The newest two swarms read are kept: reading two others lets the first go.
        scores.tallies(conn, second, memo)
        scores.tallies(conn, third, memo)
        assert scores.tallies(conn, first, memo)["similarity"].kept is not after["similarity"].kept
        assert memo.get(second, (("history", 20), ("similarity", 20))) is None


def test_reports_at_once_never_take_the_same_slot(store: Store) -> None:
    """Two writers scoring outcomes of one swarm at the same time: every pair keeps its own sequence number (on
    PostgreSQL the ring's slot is read after the count's row lock, in the same transaction)."""
    import threading

    sw = Board(store, clock=FakeClock()).spawn("both", agents("any"), "mesh").swarm_id
    start = threading.Barrier(2)

    def writer(parity: int) -> None:
        start.wait()
        for i in range(parity, 60, 2):
            _score(store, sw, i, 1)

    threads = [threading.Thread(target=writer, args=(k,)) for k in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    with store.reading() as conn:
        seqs = [tuple(r) for r in conn.execute(
            "SELECT estimator, seq FROM estimator_outcomes ORDER BY estimator, seq").fetchall()]
        record = scores.tallies(conn, sw)
    assert seqs == [(name, s) for name in ("history", "similarity") for s in range(1, 61)]
    assert record["similarity"].n == 60 and sorted(record["similarity"].kept) == sorted(
        _expected(0, 59, 0)["similarity"].kept)
