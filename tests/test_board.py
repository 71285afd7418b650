"""The task board's rules, exercised on the core directly (transports are tested elsewhere)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from ansf_mcp.board import assign, messages, swarms
from ansf_mcp.board import tasks as board
from ansf_mcp.board.errors import BoardError, Conflict, NotFound, Refused
from ansf_mcp.board.models import AgentSpec, TaskSpec
from ansf_mcp.store.db import Store, StoreError
from tests.board_helpers import agents, tasks


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "db.sqlite3")


def put(store: Store, swarm_id: str, specs: list[TaskSpec]) -> list[str]:
    with store.transaction() as conn:
        return board.insert_tasks(conn, swarm_id, specs)


def states(store: Store, swarm_id: str) -> dict[str, str]:
    return {t.id: t.state for t in swarms.view(store, swarm_id).tasks}


def test_store_is_wal_and_versioned(store: Store) -> None:
    with store.reading() as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA user_version").fetchone()[0] == store.schema_version >= 1


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    s = Store(tmp_path / "db.sqlite3")
    with s.transaction() as conn:
        conn.execute("PRAGMA user_version=999")
    s.close()
    with pytest.raises(StoreError, match="newer"):
        Store(tmp_path / "db.sqlite3")


def test_dependencies_gate_readiness(store: Store) -> None:
    sw = swarms.spawn(store, "s", agents("a"), "mesh").swarm_id
    put(store, sw, tasks("build", "test", "ship", t1=["t0"], t2=["t0", "t1"]))
    assert states(store, sw) == {"t0": "ready", "t1": "blocked", "t2": "blocked"}
    claim = board.claim_next(store, sw, "agent-0", 60, max_attempts=3)
    assert claim.claimed and claim.task.id == "t0"
    receipt = board.report(store, sw, "t0", "agent-0", True, "built", 1.5, max_attempts=3)
    assert receipt.state == "succeeded" and receipt.unblocked == ["t1"]
    assert states(store, sw)["t2"] == "blocked"


@pytest.mark.parametrize(
    ("specs", "message"),
    [
        (tasks("a", "b", t0=["t1"], t1=["t0"]), "cycle"),
        (tasks("a", t0=["t0"]), "itself"),
        (tasks("a", t0=["nope"]), "unknown task 'nope'"),
    ],
)
def test_bad_dependencies_are_refused_and_nothing_is_written(store: Store, specs, message: str) -> None:
    sw = swarms.spawn(store, "s", agents("a"), "mesh").swarm_id
    with pytest.raises(BoardError, match=message):
        put(store, sw, specs)
    assert swarms.view(store, sw).tasks == []


def test_duplicate_task_id_is_a_conflict(store: Store) -> None:
    sw = swarms.spawn(store, "s", agents("a"), "mesh").swarm_id
    put(store, sw, tasks("a"))
    with pytest.raises(Conflict):
        put(store, sw, tasks("again"))


def test_expired_lease_puts_the_task_back(store: Store) -> None:
    sw = swarms.spawn(store, "s", agents("a", "b"), "mesh").swarm_id
    put(store, sw, tasks("only"))
    assert board.claim_next(store, sw, "agent-0", 0.05, max_attempts=3).claimed
    assert not board.claim_next(store, sw, "agent-1", 60, max_attempts=3).claimed
    time.sleep(0.1)
    again = board.claim_next(store, sw, "agent-1", 60, max_attempts=3)
    assert again.claimed and again.task.id == "t0" and again.task.attempts == 2
    assert "expired" in (again.task.last_error or "")


def test_status_reads_expired_leases_without_writing(store: Store) -> None:
    sw = swarms.spawn(store, "s", agents("a", "b"), "mesh").swarm_id
    put(store, sw, tasks("once", "twice"))
    board.claim_next(store, sw, "agent-0", 0.05, max_attempts=1)
    board.claim_next(store, sw, "agent-1", 0.05, max_attempts=3)
    time.sleep(0.1)
    seen = swarms.view(store, sw, max_attempts=1)
    assert {t.id: t.state for t in seen.tasks} == {"t0": "failed", "t1": "failed"}
    seen = swarms.view(store, sw, max_attempts=3)
    assert {t.id: t.state for t in seen.tasks} == {"t0": "ready", "t1": "ready"}
    assert seen.tasks_by_state["ready"] == 2 and seen.tasks_by_state["claimed"] == 0
    assert all(a.active_claims == 0 for a in seen.agents)
    assert all("expired" in t.last_error and t.lease_owner is None for t in seen.tasks)
    with store.reading() as conn:  # nothing was written by reading
        assert {r[0] for r in conn.execute("SELECT status FROM tasks")} == {"claimed"}


def test_failures_retry_then_fail_with_reason(store: Store) -> None:
    sw = swarms.spawn(store, "s", agents("a"), "mesh").swarm_id
    put(store, sw, tasks("flaky"))
    for attempt in (1, 2):
        assert board.claim_next(store, sw, "agent-0", 60, max_attempts=3).claimed
        receipt = board.report(store, sw, "t0", "agent-0", False, f"boom {attempt}", None, max_attempts=3)
        assert receipt.state == "ready"
    assert board.claim_next(store, sw, "agent-0", 60, max_attempts=3).claimed
    receipt = board.report(store, sw, "t0", "agent-0", False, "boom 3", None, max_attempts=3)
    assert receipt.state == "failed"
    task = swarms.view(store, sw).tasks[0]
    assert task.attempts == 3 and "boom 3" in task.last_error
    with pytest.raises(Conflict, match="already failed"):
        board.report(store, sw, "t0", "agent-0", True, "", None, max_attempts=3)


def test_capacity_limits_concurrent_claims(store: Store) -> None:
    sw = swarms.spawn(store, "s", agents("a", capacity=2), "mesh").swarm_id
    put(store, sw, tasks("x", "y", "z"))
    assert board.claim_next(store, sw, "agent-0", 60, max_attempts=3).claimed
    assert board.claim_next(store, sw, "agent-0", 60, max_attempts=3).claimed
    third = board.claim_next(store, sw, "agent-0", 60, max_attempts=3)
    assert not third.claimed and "capacity" in third.reason


def test_phase_limit_on_active_agents(store: Store) -> None:
    sw = swarms.spawn(store, "s", agents("a", "b", "c"), "mesh").swarm_id
    put(store, sw, tasks("x", "y", "z"))
    for agent in ("agent-0", "agent-1"):
        assert board.claim_next(store, sw, agent, 60, max_attempts=3, max_active_agents=2).claimed
    refused = board.claim_next(store, sw, "agent-2", 60, max_attempts=3, max_active_agents=2)
    assert not refused.claimed and "operating phase" in refused.reason


def test_claim_prefers_own_assignment_and_reports_others(store: Store) -> None:
    sw = swarms.spawn(store, "s", agents("backend", "frontend"), "mesh").swarm_id
    result = assign.submit_and_assign(store, sw, tasks("one", "two"), "round-robin")
    mine = {a.agent: a.task for a in result.assignments}
    claim = board.claim_next(store, sw, "agent-1", 60, max_attempts=3)
    assert claim.task.id == mine["agent-1"]
    board.report(store, sw, claim.task.id, "agent-1", True, "", None, max_attempts=3)
    nothing = board.claim_next(store, sw, "agent-1", 60, max_attempts=3)
    assert not nothing.claimed and "assigned to other agents" in nothing.reason


def test_sixteen_agents_claiming_at_once_never_share_a_task(store: Store) -> None:
    sw = swarms.spawn(store, "s", agents(*[f"r{i}" for i in range(16)]), "mesh").swarm_id
    put(store, sw, [TaskSpec(description=f"task {i}") for i in range(12)])
    barrier = threading.Barrier(16)
    got: dict[str, str | None] = {}

    def claim(agent: str) -> None:
        barrier.wait()
        c = board.claim_next(store, sw, agent, 60, max_attempts=3)
        got[agent] = c.task.id if c.claimed else None

    threads = [threading.Thread(target=claim, args=(f"agent-{i}",)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    claimed = [t for t in got.values() if t]
    assert len(claimed) == 12 and len(set(claimed)) == 12


def test_two_processes_worth_of_connections_never_share_a_task(tmp_path: Path) -> None:
    """Separate Store objects = separate SQLite connections, as two server processes would have."""
    first = Store(tmp_path / "db.sqlite3")
    sw = swarms.spawn(first, "s", agents(*[f"r{i}" for i in range(16)]), "mesh").swarm_id
    put(first, sw, [TaskSpec(description=f"task {i}") for i in range(16)])
    stores = [Store(tmp_path / "db.sqlite3") for _ in range(16)]
    barrier = threading.Barrier(16)
    got: list[str] = []

    def claim(i: int) -> None:
        barrier.wait()
        c = board.claim_next(stores[i], sw, f"agent-{i}", 60, max_attempts=3)
        got.append(c.task.id)

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(got) == sorted(set(got)) and len(got) == 16


@pytest.mark.parametrize(
    ("topology", "sender", "recipient", "allowed"),
    [
        ("mesh", "agent-1", "agent-2", True),
        ("star", "agent-1", "agent-2", False),
        ("star", "agent-1", "agent-0", True),
        ("star", "agent-0", "agent-2", True),
        ("ring", "agent-0", "agent-1", True),
        ("ring", "agent-0", "agent-2", False),
        ("ring", "agent-2", "agent-0", True),
        ("hierarchical", "agent-2", "agent-1", True),
        ("hierarchical", "agent-2", "agent-0", False),
        ("hierarchical", "agent-1", "agent-0", True),
    ],
)
def test_topology_routes_messages(store: Store, topology, sender, recipient, allowed) -> None:
    specs = [AgentSpec(role="lead"), AgentSpec(role="mid"), AgentSpec(role="leaf")]
    if topology == "hierarchical":
        specs[2] = AgentSpec(role="leaf", lead="agent-1")
    sw = swarms.spawn(store, "s", specs, topology).swarm_id
    if allowed:
        sent = messages.send(store, sw, sender, recipient, "hello")
        inbox = messages.read(store, sw, recipient)
        assert sent.delivered_to == [recipient] and inbox[-1].body == "hello"
        assert messages.read(store, sw, recipient, since=inbox[-1].id) == []
    else:
        with pytest.raises(Refused, match=topology):
            messages.send(store, sw, sender, recipient, "hello")
        assert messages.read(store, sw, recipient) == []


def test_broadcast_follows_the_topology(store: Store) -> None:
    sw = swarms.spawn(store, "s", agents("hub", "a", "b"), "star").swarm_id
    assert messages.send(store, sw, "agent-1", None, "up").delivered_to == ["agent-0"]
    assert messages.send(store, sw, "agent-0", None, "down").delivered_to == ["agent-1", "agent-2"]


def test_dissolve_says_what_it_removed(store: Store) -> None:
    sw = swarms.spawn(store, "s", agents("a", "b"), "mesh").swarm_id
    put(store, sw, tasks("x"))
    messages.send(store, sw, "agent-0", "agent-1", "hi")
    receipt = swarms.dissolve(store, sw)
    assert receipt.removed == {"agents": 2, "tasks": 1, "outcomes": 0, "messages": 1}
    with pytest.raises(NotFound):
        swarms.view(store, sw)


def test_hierarchy_leads_must_exist_before(store: Store) -> None:
    with pytest.raises(BoardError, match="lead"):
        swarms.spawn(store, "s", [AgentSpec(role="a"), AgentSpec(role="b", lead="agent-7")], "hierarchical")


def test_outcomes_score_every_estimator_once(store: Store) -> None:
    from ansf_mcp.board import scores

    sw = swarms.spawn(store, "s", agents("a", "b"), "mesh").swarm_id
    result = assign.submit_and_assign(store, sw, tasks("write the parser", "draw the logo"), "history")
    for a in result.assignments:
        assert board.claim_next(store, sw, a.agent, 60, max_attempts=3).claimed
        board.report(store, sw, a.task, a.agent, a.task == "t0", "", None, max_attempts=3)
    with store.reading() as conn:
        tallies = scores.tallies(conn, sw)
        left = conn.execute("SELECT COUNT(*) FROM predictions WHERE swarm_id = ?", (sw,)).fetchone()[0]
    # history and similarity predicted every assigned pair; each outcome scored each of them once, then consumed.
    assert {k: v.n for k, v in tallies.items()} == {"history": 2, "similarity": 2} and left == 0
    view = swarms.view(store, sw)
    assert {s.estimator for s in view.estimators} == {"neural", "similarity", "history"}
    assert next(s for s in view.estimators if s.estimator == "history").outcomes == 2
    assert view.auto_uses


def test_estimate_does_not_follow_a_task_to_another_agent(store: Store) -> None:
    sw = swarms.spawn(store, "s", agents("a", "b"), "mesh").swarm_id
    result = assign.submit_and_assign(store, sw, tasks("only task"), "history")
    first = result.assignments[0].agent
    other = "agent-1" if first == "agent-0" else "agent-0"
    assert board.claim_next(store, sw, first, 60, max_attempts=3).claimed
    board.report(store, sw, "t0", first, False, "no", None, max_attempts=3)
    claim = board.claim_next(store, sw, other, 60, max_attempts=3)
    assert claim.claimed and claim.task.assignee == other
    board.report(store, sw, "t0", other, True, "", None, max_attempts=3)
    with store.reading() as conn:
        rows = conn.execute("SELECT agent_id, p_success FROM outcomes WHERE swarm_id = ? ORDER BY id", (sw,)).fetchall()
    assert rows[0]["p_success"] is not None and rows[1]["p_success"] is None
