"""The PostgreSQL functions that claim and report (board/pg_functions.py) answer and write exactly what the
Python path does: one seeded workload of claims, outcomes, replays, refusals, expiries, takeovers and scored
predictions, run on SQLite (the Python path) and on PostgreSQL (the functions), compared answer by answer and
row by row."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from ansf_mcp.board import pg_functions
from ansf_mcp.board.board import Board
from ansf_mcp.board.errors import BoardError
from ansf_mcp.board.models import AgentSpec, TaskSpec
from ansf_mcp.governor.phases import PhaseLimits
from ansf_mcp.store.base import ServerFunction, Store, StoreError
from ansf_mcp.store.db import open_store
from ansf_mcp.store.sqlite import SqliteStore
from tests.board_helpers import FakeClock

TABLES = {
    "tasks": "SELECT * FROM tasks ORDER BY seq",
    "claims": "SELECT * FROM claims ORDER BY task_id, claim_seq",
    "outcomes": "SELECT * FROM outcomes ORDER BY id",
    "agents": "SELECT * FROM agents ORDER BY position",
    "estimator_scores": "SELECT * FROM estimator_scores ORDER BY estimator",
    "predictions": "SELECT * FROM predictions ORDER BY task_id, agent_id, estimator",
    "estimator_outcomes": "SELECT * FROM estimator_outcomes ORDER BY estimator, seq",
}


def _workload(store: Store, seed: int) -> tuple[list[Any], dict[str, list[dict[str, Any]]]]:
    """Every answer (or refusal) of a seeded run, and every row it left, with the swarm's id written as SW."""
    rng = random.Random(seed)
    clock = FakeClock(start=1_800_000_000.25)
    limit = {"value": None}
    board = Board(store, clock=clock, limits=lambda: PhaseLimits(max_active_agents=limit["value"]))
    team = [AgentSpec(id=f"a{i}", role="dev", capacity=1 + i % 2) for i in range(3)]
    sw = board.spawn("same", team, "mesh").swarm_id
    specs = [TaskSpec(id=f"t{i}", description=f"task {i}'s text", priority=rng.randint(0, 3),
                      depends_on=[f"t{j}" for j in range(i) if rng.random() < 0.15]) for i in range(14)]
    board.coordinate(sw, specs, "round-robin")
    with store.transaction() as conn:  # predictions as a decision leaves them, so outcomes score them
        for i in range(14):
            for agent in ("a0", "a1", "a2"):
                for estimator, p in (("beta", rng.random()), ("net", rng.choice([0.0, 1.0, rng.random()]))):
                    conn.execute("INSERT INTO predictions (swarm_id, task_id, agent_id, estimator, p) "
                                 "VALUES (?, ?, ?, ?, ?)", (sw, f"t{i}", agent, estimator, p))
    answers: list[Any] = []
    held: list[tuple[str, str, int]] = []
    for step in range(200):
        roll = rng.random()
        agent = rng.choice(["a0", "a1", "a2"]) if step % 37 else "nobody"
        try:
            if roll < 0.4:
                out = board.claim_next(sw if step % 53 else "no-such-swarm", agent, lease_s=rng.choice([5.0, 30.0]))
                if out.claimed and out.task is not None:
                    held.append((out.task.id, agent, out.claim or 0))
            elif roll < 0.8 and held:
                task_id, holder, seq = held.pop(rng.randrange(len(held))) if rng.random() < 0.8 else held[0]
                claim = rng.choice([None, seq, seq, seq - 1])
                out = board.report(sw, task_id, holder if rng.random() < 0.9 else "a0", rng.random() < 0.8,
                                   rng.choice(["", "done", "it's 100% done"]), rng.choice([None, 1.5]), claim)
            elif roll < 0.85:
                limit["value"] = rng.choice([None, 1, 2])
                out = limit["value"]
            else:
                clock.advance(rng.choice([1.0, 7.5, 40.0]))
                out = clock.now
        except BoardError as exc:
            out = (type(exc).__name__, str(exc))
        dumped = out.model_dump() if hasattr(out, "model_dump") else out
        answers.append(json.loads(json.dumps(dumped).replace(sw, "SW")))
    rows: dict[str, list[dict[str, Any]]] = {}
    with store.reading() as conn:
        for table, sql in TABLES.items():
            found = []
            for r in conn.execute(sql).fetchall():
                row = {k: r[k] for k in r.keys()}
                if row.get("receipt") is not None:  # JSON text; its spacing is the engine's
                    row["receipt"] = json.loads(row["receipt"])
                found.append(json.loads(json.dumps(row).replace(sw, "SW")))
            rows[table] = found
    return answers, rows


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_functions_answer_and_write_what_the_python_path_does(tmp_path: Path, pg_cluster, seed: int) -> None:
    sqlite = open_store(tmp_path / f"{seed}.sqlite3")
    postgres = open_store(pg_cluster.new_database())
    assert isinstance(sqlite, SqliteStore) and not sqlite.server_functions and postgres.server_functions
    try:
        expected_answers, expected_rows = _workload(sqlite, seed)
        trips = postgres.trips.value  # type: ignore[attr-defined]
        answers, rows = _workload(postgres, seed)
        assert postgres.trips.value > trips  # type: ignore[attr-defined]
    finally:
        sqlite.close()
        postgres.close()
    kinds = {type(a).__name__ if not isinstance(a, dict) else ("claim" if "claimed" in a else "receipt")
             for a in expected_answers}
    assert {"claim", "receipt", "list"} <= kinds  # claims, outcomes and refusals all happened
    for i, (want, got) in enumerate(zip(expected_answers, answers, strict=True)):
        assert got == want, f"step {i}"
    for table in TABLES:
        assert rows[table] == expected_rows[table], table
    assert expected_rows["estimator_scores"] and expected_rows["estimator_outcomes"]  # predictions were scored


def test_a_function_is_created_once_per_process_and_named_by_its_text(pg_cluster) -> None:
    store = open_store(pg_cluster.new_database())
    try:
        claim = pg_functions.claim(store.for_update, store.skip_locked)
        assert claim is pg_functions.claim(store.for_update, store.skip_locked)
        assert claim.name.startswith("ansf_claim_") and claim.name != pg_functions.report(store.for_update).name
        echo = ServerFunction(name="ansf_test_echo", args=("x",), create=(
            "CREATE OR REPLACE FUNCTION ansf_test_echo(a_x text, a_channel text, a_news text, a_listener integer, "
            "a_deadline float8) "
            "RETURNS json "
            "LANGUAGE sql AS $$ SELECT json_build_object('x', a_x, 'notified', false) $$"))
        for _ in range(2):
            with store.transaction() as conn:
                assert store.call(conn, echo, {"x": "it's"}, news="n") == {"x": "it's", "notified": False}
            assert echo.name in store._created  # type: ignore[attr-defined]  # the second call only calls it
        with store.reading() as conn:
            assert conn.execute("SELECT COUNT(*) FROM pg_proc WHERE proname = 'ansf_test_echo'").fetchone()[0] == 1
    finally:
        store.close()


def test_a_call_that_reaches_postgresql_after_its_caller_gave_up_writes_nothing(pg_cluster, monkeypatch) -> None:
    """A server that hung with the claim in its socket buffer runs it when it resumes, long after the caller was
    told it failed: the function refuses to run past its deadline, so the claim is not silently held."""
    import time

    store = open_store(pg_cluster.new_database())
    try:
        board = Board(store, clock=FakeClock())
        sw = board.spawn("late", [AgentSpec(id="a", role="dev")], "mesh").swarm_id
        board.coordinate(sw, [TaskSpec(id="t0", description="only")], "round-robin")
        real = time.time
        monkeypatch.setattr(time, "time", lambda: real() - 3600)  # as if sent an hour before it ran
        with pytest.raises(StoreError, match="after its caller had stopped waiting") as late:
            board.claim_next(sw, "a")
        assert "\n" not in str(late.value)
        monkeypatch.undo()
        claim = board.claim_next(sw, "a")
        assert claim.claimed and claim.claim == 1 and claim.task is not None and claim.task.attempts == 1
    finally:
        store.close()


def test_sqlite_runs_no_server_functions(tmp_path: Path) -> None:
    store = open_store(tmp_path / "x.sqlite3")
    try:
        with pytest.raises(NotImplementedError, match="sqlite"), store.transaction() as conn:
            store.call(conn, ServerFunction(name="f", create="", args=()), {}, news="n")
    finally:
        store.close()


def _ranked_claims(store: Store) -> list[tuple[str | None, str | None]]:
    """What a0 claims, in turn, from tasks of every rank: its own, unassigned ones (by priority), one assigned to
    an agent away past the takeover grace, and one blocked by a dependency; with who had the task."""
    clock = FakeClock(start=1_800_000_000.0)
    board = Board(store, clock=clock)
    sw = board.spawn("ranks", [AgentSpec(id="a0", role="dev", capacity=9), AgentSpec(id="a1", role="dev")],
                     "mesh").swarm_id
    board.coordinate(sw, [TaskSpec(id="theirs", description="a1's", priority=9),
                          TaskSpec(id="low", description="free, low", priority=1),
                          TaskSpec(id="mine", description="a0's", priority=0),
                          TaskSpec(id="high", description="free, high", priority=5),
                          TaskSpec(id="after", description="blocked", priority=7, depends_on=["mine"])], "round-robin")
    with store.transaction() as conn:
        for task, agent in (("theirs", "a1"), ("low", None), ("mine", "a0"), ("high", None), ("after", None)):
            conn.execute("UPDATE tasks SET assignee = ? WHERE swarm_id = ? AND id = ?", (agent, sw, task))
    got = []
    for _ in range(4):
        claim = board.claim_next(sw, "a0", lease_s=1e6)
        got.append((claim.task.id if claim.task else claim.status, claim.taken_over_from))
        clock.advance(board.policy.takeover_grace_s + 1)  # a1 is never seen: its task may be taken at the end
    return got


def test_the_claim_ranks_own_then_unassigned_then_others_work_as_the_python_path_does(tmp_path: Path,
                                                                                        pg_cluster) -> None:
    """The function asks rank by rank (pg_functions.candidate_in_rank) where the Python path ranks all at
    once: the same tasks come out in the same order."""
    expected = [("mine", None), ("high", None), ("low", None), ("theirs", "a1")]
    sqlite, pg = SqliteStore(tmp_path / "db.sqlite3"), open_store(pg_cluster.new_database())
    try:
        assert _ranked_claims(sqlite) == expected
        assert _ranked_claims(pg) == expected
    finally:
        sqlite.close()
        pg.close()


def test_the_ranked_claim_follows_the_candidate_query_or_says_it_does_not(monkeypatch) -> None:
    monkeypatch.setattr(pg_functions, "CANDIDATE_SQL", "SELECT 1")
    with pytest.raises(AssertionError, match="CANDIDATE_SQL changed"):
        pg_functions.candidate_in_rank("t.assignee IS NULL")


def test_the_claim_indexes_are_made_on_postgresql_only(tmp_path: Path, pg_cluster) -> None:
    from ansf_mcp.store.migrations import MIGRATIONS

    sqlite, pg = SqliteStore(tmp_path / "db.sqlite3"), open_store(pg_cluster.new_database())
    try:
        assert sqlite.schema_version == pg.schema_version == len(MIGRATIONS)
        with pg.reading() as conn:
            made = {r[0] for r in conn.execute("SELECT indexname FROM pg_indexes WHERE tablename = 'tasks'")}
        assert {"tasks_claimable", "tasks_claimable_free"} <= made
        with sqlite.reading() as conn:
            made = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
        assert not {"tasks_claimable", "tasks_claimable_free"} & made
    finally:
        sqlite.close()
        pg.close()


def test_prune_functions_lists_then_drops_only_what_earlier_versions_left(pg_cluster, tmp_path) -> None:
    """`ansf prune-functions`: the claim and outcome functions this version does not call are listed, and dropped
    only with --yes; this version's own, and anything not ours, stay."""
    import subprocess

    from tests.conftest import ansf_command, subprocess_env

    url = pg_cluster.new_database()
    store = open_store(url)
    try:
        board = Board(store, clock=FakeClock())
        sw = board.spawn("prune", [AgentSpec(id="a", role="dev")], "mesh").swarm_id
        board.coordinate(sw, [TaskSpec(id="t0", description="only")], "round-robin")
        board.claim_next(sw, "a")
        board.report(sw, "t0", "a", True, "done")  # this version's two functions now exist
        with store.transaction() as conn:
            for name in ("ansf_claim_000000000000", "ansf_report_0123456789ab", "ansf_claim_keepme"):
                conn.execute(f"CREATE FUNCTION {name}(a_x text) RETURNS int LANGUAGE sql AS $$ SELECT 1 $$")
    finally:
        store.close()

    def run(*extra: str) -> subprocess.CompletedProcess:
        return subprocess.run([*ansf_command(), "prune-functions", "--store", url, *extra], capture_output=True,
                              text=True, timeout=60, env=subprocess_env(tmp_path / "data"))

    listed = run()
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.split("\n")[:-1] == ["ansf_claim_000000000000(text)", "ansf_report_0123456789ab(text)"]
    assert "--yes" in listed.stderr
    dropped = run("--yes")
    assert dropped.returncode == 0 and dropped.stdout == listed.stdout, dropped.stderr
    assert run().stdout == ""
    store = open_store(url)
    try:
        with store.reading() as conn:
            left = {r[0] for r in conn.execute("SELECT proname FROM pg_proc WHERE proname LIKE 'ansf%'").fetchall()}
        assert left == {*pg_functions.current_names(store), "ansf_claim_keepme"}
    finally:
        store.close()
    sqlite = subprocess.run([*ansf_command(), "prune-functions", "--store", str(tmp_path / "b.sqlite3")],
                            capture_output=True, text=True, timeout=60, env=subprocess_env(tmp_path / "data"))
    assert sqlite.returncode == 2 and "SQLite" in sqlite.stderr
