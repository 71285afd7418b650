"""The task board's rules, exercised on the core directly (transports are tested elsewhere)."""

from __future__ import annotations

import functools
import random
import threading
from pathlib import Path

import pytest

from ansf_mcp.board import assign, messages, swarms
from ansf_mcp.board import tasks as board_tasks
from ansf_mcp.board.board import Board
from ansf_mcp.board.errors import BoardError, Conflict, NotFound, Refused
from ansf_mcp.board.lifecycle import BoardPolicy
from ansf_mcp.board.models import AgentSpec, TaskSpec
from ansf_mcp.governor.phases import PhaseLimits
from ansf_mcp.store.db import Store, StoreError, open_store
from tests.board_helpers import FakeClock, agents, tasks


def put(store: Store, swarm_id: str, specs: list[TaskSpec], now: float | None = None) -> list[str]:
    with store.transaction() as conn:
        return board_tasks.insert_tasks(conn, swarm_id, specs, now=now)


def states(board: Board, swarm_id: str) -> dict[str, str]:
    return {t.id: t.state for t in board.view(swarm_id).tasks}


def test_store_is_wal_and_versioned(store: Store) -> None:
    with store.reading() as conn:
        if store.engine == "sqlite":
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
            assert conn.execute("PRAGMA user_version").fetchone()[0] == store.schema_version >= 1
        else:
            assert conn.execute("SELECT version FROM ansf_schema").fetchone()[0] == store.schema_version >= 1
    assert store.describe().engine == store.engine and store.engine_version


def test_newer_schema_is_refused(store_spec: str | Path) -> None:
    s = open_store(store_spec)
    with s.transaction() as conn:
        if s.engine == "sqlite":
            conn.execute("PRAGMA user_version=999")
        else:
            conn.execute("UPDATE ansf_schema SET version = 999")
        conn.execute("INSERT INTO swarms (id, name, topology, created_at) VALUES ('s', 'n', 'mesh', 0)")
    s.close()
    with pytest.raises(StoreError, match="newer") as refused:
        open_store(store_spec)
    assert "\n" not in str(refused.value)


def test_dependencies_gate_readiness(store: Store, board: Board) -> None:
    sw = swarms.spawn(store, "s", agents("a"), "mesh")
    put(store, sw, tasks("build", "test", "ship", t1=["t0"], t2=["t0", "t1"]))
    assert states(board, sw) == {"t0": "ready", "t1": "blocked", "t2": "blocked"}
    claim = board.claim_next(sw, "agent-0")
    assert claim.claimed and claim.task.id == "t0" and claim.claim == 1
    receipt = board.report(sw, "t0", "agent-0", True, "built", 1.5)
    assert receipt.state == "succeeded" and receipt.unblocked == ["t1"] and receipt.claim == 1
    assert states(board, sw)["t2"] == "blocked"


@pytest.mark.parametrize(
    ("specs", "message"),
    [
        (tasks("a", "b", t0=["t1"], t1=["t0"]), "cycle"),
        (tasks("a", t0=["t0"]), "itself"),
        (tasks("a", t0=["nope"]), "unknown task 'nope'"),
    ],
)
def test_bad_dependencies_are_refused_and_nothing_is_written(store: Store, board: Board, specs, message: str) -> None:
    sw = swarms.spawn(store, "s", agents("a"), "mesh")
    with pytest.raises(BoardError, match=message):
        put(store, sw, specs)
    assert board.view(sw).tasks == []


def test_duplicate_task_id_is_a_conflict(store: Store) -> None:
    sw = swarms.spawn(store, "s", agents("a"), "mesh")
    put(store, sw, tasks("a"))
    with pytest.raises(Conflict):
        put(store, sw, tasks("again"))


def test_generated_ids_skip_ids_already_taken_however_far_ahead(store: Store) -> None:
    """Planning reads only the ids a batch could collide with, a window of generated ids at a time; ids named
    `task-N` by hand, in and past the first window, are still skipped, and later dependencies still resolve."""
    sw = swarms.spawn(store, "s", agents("a"), "mesh")
    put(store, sw, [TaskSpec(id=f"task-{n}", description="named by hand") for n in (0, 1, 2, 3, 4, 5)])
    # seq0 is 6: the generated ids start at task-6; task-7 and task-9 are taken by this batch's own explicit ids.
    ids = put(store, sw, [TaskSpec(description="x"), TaskSpec(id="task-7", description="y"),
                          TaskSpec(description="z"), TaskSpec(id="task-9", description="w")])
    assert ids == ["task-6", "task-7", "task-8", "task-9"]
    put(store, sw, [TaskSpec(id=f"task-{n}", description="named by hand") for n in (12, 13, 14)])
    # seq0 is 13 now (seq counts rows): task-13 and task-14 exist, so two windows of one id are read.
    assert put(store, sw, [TaskSpec(description="after", depends_on=["task-0", "task-14"])]) == ["task-15"]
    with pytest.raises(BoardError, match="unknown task 'task-99'"):
        put(store, sw, [TaskSpec(description="dangling", depends_on=["task-99"])])


def test_expired_lease_puts_the_task_back(store: Store, board: Board, clock: FakeClock) -> None:
    sw = swarms.spawn(store, "s", agents("a", "b"), "mesh")
    put(store, sw, tasks("only"))
    assert board.claim_next(sw, "agent-0", 30).claimed
    assert not board.claim_next(sw, "agent-1").claimed
    clock.advance(29)
    assert not board.claim_next(sw, "agent-1").claimed, "the lease has a second left"
    clock.advance(2)
    again = board.claim_next(sw, "agent-1")
    assert again.claimed and again.task.id == "t0" and again.task.attempts == 2 and again.claim == 2
    assert "expired" in (again.task.last_error or "")


def test_status_reads_expired_leases_without_writing(store: Store, clock: FakeClock) -> None:
    sw = swarms.spawn(store, "s", agents("a", "b"), "mesh")
    put(store, sw, tasks("once", "twice"))
    strict = Board(store, BoardPolicy(max_attempts=1), clock=clock)
    lenient = Board(store, BoardPolicy(max_attempts=3), clock=clock)
    strict.claim_next(sw, "agent-0", 5)
    strict.claim_next(sw, "agent-1", 5)
    clock.advance(6)
    seen = strict.view(sw)
    assert {t.id: t.state for t in seen.tasks} == {"t0": "failed", "t1": "failed"}
    assert seen.tasks_by_state["failed"] == 2
    seen = lenient.view(sw)
    assert {t.id: t.state for t in seen.tasks} == {"t0": "ready", "t1": "ready"}
    assert seen.tasks_by_state["ready"] == 2 and seen.tasks_by_state["claimed"] == 0
    assert all(a.active_claims == 0 for a in seen.agents)
    assert all("expired" in t.last_error and t.lease_owner is None for t in seen.tasks)
    with store.reading() as conn:  # nothing was written by reading
        assert {r[0] for r in conn.execute("SELECT status FROM tasks")} == {"claimed"}


def test_every_reader_sees_the_same_state(store: Store, clock: FakeClock) -> None:
    """The all-swarms list, one swarm's view, its counts and the dashboard agree on an expired, exhausted claim."""
    from ansf_mcp.dashboard import activity

    sw = swarms.spawn(store, "s", agents("a"), "mesh")
    put(store, sw, tasks("once"))
    strict = Board(store, BoardPolicy(max_attempts=1), clock=clock)
    strict.claim_next(sw, "agent-0", 5)
    clock.advance(6)
    assert strict.view(sw).tasks[0].state == "failed"
    assert strict.view(sw).tasks_by_state["failed"] == 1
    assert strict.summaries()[0].tasks_by_state["failed"] == 1
    assert strict.counts(sw)["failed"] == strict.counts()["failed"] == 1
    with store.reading() as conn:
        assert activity.task_counts(conn, strict)["failed"] == 1


def test_failures_retry_then_fail_with_reason(store: Store, board: Board) -> None:
    sw = swarms.spawn(store, "s", agents("a"), "mesh")
    put(store, sw, tasks("flaky"))
    for attempt in (1, 2):
        assert board.claim_next(sw, "agent-0").claimed
        receipt = board.report(sw, "t0", "agent-0", False, f"boom {attempt}")
        assert receipt.state == "ready"
    assert board.claim_next(sw, "agent-0").claimed
    receipt = board.report(sw, "t0", "agent-0", False, "boom 3")
    assert receipt.state == "failed"
    task = board.view(sw).tasks[0]
    assert task.attempts == 3 and "boom 3" in task.last_error
    with pytest.raises(Conflict, match=r"already reported as a failure \(the task is failed now\)"):
        board.report(sw, "t0", "agent-0", True)


def test_capacity_limits_concurrent_claims(store: Store, board: Board) -> None:
    sw = swarms.spawn(store, "s", agents("a", capacity=2), "mesh")
    put(store, sw, tasks("x", "y", "z"))
    assert board.claim_next(sw, "agent-0").claimed
    assert board.claim_next(sw, "agent-0").claimed
    third = board.claim_next(sw, "agent-0")
    assert not third.claimed and "capacity" in third.reason


def test_phase_limit_on_active_agents(store: Store, board: Board) -> None:
    sw = swarms.spawn(store, "s", agents("a", "b", "c"), "mesh")
    put(store, sw, tasks("x", "y", "z"))
    board.limits = lambda: PhaseLimits(max_active_agents=2, phase="1 critical")
    for agent in ("agent-0", "agent-1"):
        assert board.claim_next(sw, agent).claimed
    refused = board.claim_next(sw, "agent-2")
    assert not refused.claimed and "operating phase" in refused.reason


def test_higher_priority_wins(store: Store, board: Board) -> None:
    """Among ready tasks nobody is assigned, a claim takes the highest priority first (board order breaks ties),
    whatever order they were put up in."""
    sw = swarms.spawn(store, "s", agents("a", capacity=5), "mesh")
    put(store, sw, [TaskSpec(id=tid, description=tid, priority=p)
                    for tid, p in (("low", 1), ("high", 9), ("mid", 5), ("mid-later", 5), ("zero", 0))])
    claimed = [board.claim_next(sw, "agent-0").task.id for _ in range(5)]  # type: ignore[union-attr]
    assert claimed == ["high", "mid", "mid-later", "low", "zero"]


def test_claim_prefers_own_assignment_and_reports_others(store: Store, board: Board) -> None:
    sw = swarms.spawn(store, "s", agents("backend", "frontend"), "mesh")
    result = assign.submit_and_assign(store, sw, tasks("one", "two"), "round-robin")
    mine = {a.agent: a.task for a in result.assignments}
    claim = board.claim_next(sw, "agent-1")
    assert claim.task.id == mine["agent-1"]
    board.report(sw, claim.task.id, "agent-1", True)
    nothing = board.claim_next(sw, "agent-1")
    assert not nothing.claimed and "assigned to other agents" in nothing.reason and "reassign_task" in nothing.reason


def test_sixteen_agents_claiming_at_once_never_share_a_task(store: Store, board: Board) -> None:
    sw = swarms.spawn(store, "s", agents(*[f"r{i}" for i in range(16)]), "mesh")
    put(store, sw, [TaskSpec(description=f"task {i}") for i in range(12)])
    barrier = threading.Barrier(16)
    got: dict[str, str | None] = {}

    def claim(agent: str) -> None:
        barrier.wait()
        c = board.claim_next(sw, agent)
        got[agent] = c.task.id if c.claimed else None

    threads = [threading.Thread(target=claim, args=(f"agent-{i}",)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    claimed = [t for t in got.values() if t]
    assert len(claimed) == 12 and len(set(claimed)) == 12


def test_two_processes_worth_of_connections_never_share_a_task(store_spec: str | Path) -> None:
    """Separate Store objects = separate connections, as two server processes (or replicas) would have."""
    first = open_store(store_spec)
    sw = swarms.spawn(first, "s", agents(*[f"r{i}" for i in range(16)]), "mesh")
    put(first, sw, [TaskSpec(description=f"task {i}") for i in range(16)])
    boards = [Board(open_store(store_spec)) for _ in range(16)]
    barrier = threading.Barrier(16)
    got: list[str] = []

    def claim(i: int) -> None:
        barrier.wait()
        c = boards[i].claim_next(sw, f"agent-{i}")
        got.append(c.task.id)

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(got) == sorted(set(got)) and len(got) == 16
    for b in [*boards, Board(first)]:
        b.store.close()


# -- outcomes only from the live lease holder, once per claim (issue 11 item 1, issue 10 item 6) --------------


def test_outcomes_need_a_live_lease_and_nothing_is_written_otherwise(store: Store, board: Board,
                                                                     clock: FakeClock) -> None:
    sw = swarms.spawn(store, "s", agents("ui", "qa", "e2e"), "mesh")
    put(store, sw, tasks("ui", "tests", "e2e", t2=["t0", "t1"]))
    assert board.claim_next(sw, "agent-0").task.id == "t0"
    cases = [
        ("t2", "agent-2", True, "blocked (waiting for 't0', 't1')"),  # a blocked task nobody claimed
        ("t1", "agent-1", True, "ready and held by nobody"),  # never claimed
        ("t1", "agent-1", False, "ready and held by nobody"),  # failures too: no attempts used, no history
        ("t0", "agent-1", True, "claimed by 'agent-0'"),  # someone else's claim
    ]
    for task, agent, success, fragment in cases:
        with pytest.raises(Refused, match="nothing was recorded") as refused:
            board.report(sw, task, agent, success)
        assert fragment in str(refused.value)
    clock.advance(61)  # agent-0's own lease ran out
    with pytest.raises(Refused, match="claim #1 of 'agent-0' on it ended: its lease expired 1 s ago"):
        board.report(sw, "t0", "agent-0", True)
    with store.reading() as conn:
        assert conn.execute("SELECT COUNT(*) FROM outcomes").fetchone()[0] == 0
        assert [tuple(r) for r in conn.execute("SELECT id, attempts FROM tasks ORDER BY seq")] == [
            ("t0", 1), ("t1", 0), ("t2", 0)]
    assert states(board, sw) == {"t0": "ready", "t1": "ready", "t2": "blocked"}


def test_a_success_right_after_a_failure_needs_a_new_claim(store: Store, board: Board) -> None:
    sw = swarms.spawn(store, "s", agents("a"), "mesh")
    put(store, sw, tasks("flaky"))
    board.claim_next(sw, "agent-0")
    assert board.report(sw, "t0", "agent-0", False, "boom").state == "ready"
    with pytest.raises(Conflict, match="already reported as a failure"):
        board.report(sw, "t0", "agent-0", True)
    board.claim_next(sw, "agent-0")
    assert board.report(sw, "t0", "agent-0", True).claim == 2


def test_the_same_report_twice_gives_the_same_answer_and_one_row(store: Store, board: Board) -> None:
    sw = swarms.spawn(store, "s", agents("a", "b"), "mesh")
    put(store, sw, tasks("flaky", "other"))
    board.claim_next(sw, "agent-0")
    first = board.report(sw, "t0", "agent-0", False, "boom", 3.0)
    assert board.report(sw, "t0", "agent-0", False, "boom", 3.0) == first
    # also after another agent has picked the task up again
    assert board.claim_next(sw, "agent-1").task.id == "t0"
    assert board.report(sw, "t0", "agent-0", False, "boom", 3.0) == first
    with store.reading() as conn:
        assert conn.execute("SELECT COUNT(*) FROM outcomes").fetchone()[0] == 1
        assert conn.execute("SELECT attempts FROM tasks WHERE id = 't0'").fetchone()[0] == 2
    second = board.report(sw, "t0", "agent-1", True)
    assert board.report(sw, "t0", "agent-1", True) == second and second.outcome_id != first.outcome_id


def test_heartbeat_keeps_long_work(store: Store, board: Board, clock: FakeClock) -> None:
    sw = swarms.spawn(store, "s", agents("a", "b"), "mesh")
    put(store, sw, tasks("long"))
    board.claim_next(sw, "agent-0", 60)
    for _ in range(5):  # five minutes of work on a one-minute lease
        clock.advance(50)
        assert board.renew(sw, "t0", "agent-0", 60).lease_expires_in_s == 60
        assert not board.claim_next(sw, "agent-1").claimed
    with pytest.raises(Refused, match="claimed by 'agent-0'"):
        board.renew(sw, "t0", "agent-1")
    assert board.report(sw, "t0", "agent-0", True).state == "succeeded"
    with pytest.raises(Refused, match="already succeeded"):
        board.renew(sw, "t0", "agent-0")


def test_an_expired_lease_cannot_be_renewed(store: Store, board: Board, clock: FakeClock) -> None:
    sw = swarms.spawn(store, "s", agents("a"), "mesh")
    put(store, sw, tasks("late"))
    board.claim_next(sw, "agent-0", 10)
    clock.advance(11)
    with pytest.raises(Refused, match="lease expired"):
        board.renew(sw, "t0", "agent-0")


def test_release_gives_the_task_back_without_using_an_attempt(store: Store, board: Board) -> None:
    sw = swarms.spawn(store, "s", agents("a", "b"), "mesh")
    result = assign.submit_and_assign(store, sw, tasks("x"), "round-robin")
    assert result.assignments[0].agent == "agent-0"
    board.claim_next(sw, "agent-0")
    receipt = board.release(sw, "t0", "agent-0", "out of my depth")
    assert receipt.state == "ready" and receipt.attempts == 0 and receipt.claim == 1
    assert board.release(sw, "t0", "agent-0").note.startswith("a repeat")  # the claim was released already
    with pytest.raises(Refused, match="claim #1 of 'agent-0' on it ended: it was released"):
        board.report(sw, "t0", "agent-0", True)
    taken = board.claim_next(sw, "agent-1")  # unassigned now: anyone may take it
    assert taken.claimed and taken.claim == 2 and taken.task.attempts == 1


def test_reassign_moves_ready_work_and_refuses_claimed_work(store: Store, board: Board) -> None:
    sw = swarms.spawn(store, "s", agents("a", "b"), "mesh")
    assign.submit_and_assign(store, sw, tasks("x", "y"), "round-robin")  # t0 -> agent-0, t1 -> agent-1
    moved = board.reassign(sw, "t0", "agent-1")
    assert moved.previous == "agent-0" and moved.assignee == "agent-1"
    assert not board.claim_next(sw, "agent-0").claimed
    assert board.claim_next(sw, "agent-1").task.id == "t0"
    with pytest.raises(Refused, match="claimed by 'agent-1'"):
        board.reassign(sw, "t0", "agent-0")
    assert board.reassign(sw, "t1", None).assignee is None
    assert board.claim_next(sw, "agent-0").task.id == "t1"
    with pytest.raises(NotFound, match="unknown agent"):
        board.reassign(sw, "t1", "ghost")


def test_work_pinned_to_an_absent_agent_is_taken_over_after_the_grace(store: Store, board: Board,
                                                                      clock: FakeClock) -> None:
    sw = swarms.spawn(store, "s", agents("a", "b"), "mesh")
    assign.submit_and_assign(store, sw, tasks("x", "y"), "round-robin")
    # submit_and_assign stamps real time; the test clock starts there too
    assert board.claim_next(sw, "agent-1").task.id == "t1"
    board.report(sw, "t1", "agent-1", True)
    waiting = board.claim_next(sw, "agent-1")
    assert not waiting.claimed and "the first in 600 s" in waiting.reason
    clock.advance(599)
    assert not board.claim_next(sw, "agent-1").claimed
    clock.advance(2)
    taken = board.claim_next(sw, "agent-1")
    assert taken.claimed and taken.task.id == "t0" and taken.taken_over_from == "agent-0"
    assert "has not been seen for 601 s" in taken.note


def test_an_agent_that_shows_up_keeps_its_work(store: Store, board: Board, clock: FakeClock) -> None:
    sw = swarms.spawn(store, "s", agents("a", "b", capacity=2), "mesh")
    result = assign.submit_and_assign(store, sw, tasks("x", "y", "z"), "round-robin")
    assert {a.task: a.agent for a in result.assignments} == {"t0": "agent-0", "t1": "agent-1", "t2": "agent-0"}
    board.claim_next(sw, "agent-0", 3600)  # seen now, holding t0
    clock.advance(500)
    board.renew(sw, "t0", "agent-0", 3600)  # still here
    clock.advance(500)
    assert board.claim_next(sw, "agent-1").task.id == "t1"
    board.report(sw, "t1", "agent-1", True)
    assert not board.claim_next(sw, "agent-1").claimed, "agent-0 was seen 500 s ago: t2 stays its"


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
    sw = swarms.spawn(store, "s", specs, topology)
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
    sw = swarms.spawn(store, "s", agents("hub", "a", "b"), "star")
    assert messages.send(store, sw, "agent-1", None, "up").delivered_to == ["agent-0"]
    assert messages.send(store, sw, "agent-0", None, "down").delivered_to == ["agent-1", "agent-2"]


def test_dissolve_says_what_it_removed(store: Store, board: Board) -> None:
    sw = swarms.spawn(store, "s", agents("a", "b"), "mesh")
    put(store, sw, tasks("x"))
    board.claim_next(sw, "agent-0")
    messages.send(store, sw, "agent-0", "agent-1", "hi")
    receipt = swarms.dissolve(store, sw)
    assert receipt.removed == {"agents": 2, "tasks": 1, "outcomes": 0, "messages": 1, "claims": 1}
    with pytest.raises(NotFound):
        board.view(sw)


def test_hierarchy_leads_must_exist_before(store: Store) -> None:
    with pytest.raises(BoardError, match="lead"):
        swarms.spawn(store, "s", [AgentSpec(role="a"), AgentSpec(role="b", lead="agent-7")], "hierarchical")


def test_outcomes_score_every_estimator_once(store: Store, board: Board) -> None:
    from ansf_mcp.board import scores

    sw = swarms.spawn(store, "s", agents("a", "b"), "mesh")
    result = assign.submit_and_assign(store, sw, tasks("write the parser", "draw the logo"), "history")
    for a in result.assignments:
        assert board.claim_next(sw, a.agent).claimed
        board.report(sw, a.task, a.agent, a.task == "t0")
    with store.reading() as conn:
        tallies = scores.tallies(conn, sw)
        left = conn.execute("SELECT COUNT(*) FROM predictions WHERE swarm_id = ?", (sw,)).fetchone()[0]
    # history and similarity predicted every assigned pair, and the reported p_success (the success model) is kept
    # beside them as its own row; each outcome scored each of them once, then consumed.
    # as scored, and the success model's own p before the swarm's shift (what the shift is fitted on)
    assert {k: v.n for k, v in tallies.items()} == {"history": 2, "similarity": 2, "p_success": 2,
                                                    "success_model": 2} and left == 0
    view = board.view(sw)
    assert {s.estimator for s in view.estimators} == {"neural", "similarity", "history", "p_success"}
    assert next(s for s in view.estimators if s.estimator == "history").outcomes == 2
    assert view.auto_uses


def test_estimate_does_not_follow_a_task_to_another_agent(store: Store, board: Board) -> None:
    sw = swarms.spawn(store, "s", agents("a", "b"), "mesh")
    result = assign.submit_and_assign(store, sw, tasks("only task"), "history")
    first = result.assignments[0].agent
    other = "agent-1" if first == "agent-0" else "agent-0"
    assert board.claim_next(sw, first).claimed
    board.report(sw, "t0", first, False, "no")
    claim = board.claim_next(sw, other)
    assert claim.claimed and claim.task.assignee == other
    board.report(sw, "t0", other, True)
    with store.reading() as conn:
        rows = conn.execute("SELECT agent_id, p_success FROM outcomes WHERE swarm_id = ? ORDER BY id", (sw,)).fetchall()
    assert rows[0]["p_success"] is not None and rows[1]["p_success"] is None


DEAD = ("failed", "cancelled")


def dead_ancestors_by_hand(deps: dict[str, list[str]], status: dict[str, str], seq: dict[str, int],
                           origin: str) -> tuple[str, str] | None:
    """The rule, walked naively from one origin: every failed or cancelled task reached through open or claimed
    ones only, the earliest put up (lowest seq) chosen."""
    seen, stack, dead = set(), list(deps.get(origin, [])), []
    while stack:
        task = stack.pop()
        if task in seen:
            continue
        seen.add(task)
        if status[task] in DEAD:
            dead.append(task)
        elif status[task] in ("open", "claimed"):
            stack.extend(deps.get(task, []))
    return min(((t, status[t]) for t in dead), key=lambda d: seq[d[0]], default=None)


def board_graph(store: Store, sw: str, specs: list[TaskSpec], status: dict[str, str]) -> None:
    put(store, sw, specs)
    with store.transaction() as conn:
        for task, state in status.items():
            conn.execute("UPDATE tasks SET status = ? WHERE swarm_id = ? AND id = ?", (state, sw, task))


def test_the_failed_ancestor_of_each_dependency_is_the_earliest_one_behind_unfinished_tasks(store: Store) -> None:
    """coordinate's walk from the new tasks' dependencies to the failed or cancelled tasks they wait on: several dead
    tasks, diamonds, a claimed task on the way, a finished task that hides one, and long chains sharing ancestors."""
    sw = swarms.spawn(store, "s", agents("a"), "mesh")
    spec = functools.partial(TaskSpec, description="work")
    specs = [spec(id="f-early"), spec(id="c-mid"), spec(id="f-late"), spec(id="f-hidden"),
             spec(id="done", depends_on=["f-hidden"]),
             # A diamond under f-late, whose right side also waits on c-mid (put up earlier than f-late).
             spec(id="top", depends_on=["f-late"]), spec(id="left", depends_on=["top"]),
             spec(id="right", depends_on=["top", "c-mid"]), spec(id="bottom", depends_on=["left", "right"]),
             spec(id="left-only", depends_on=["left"]),
             spec(id="direct", depends_on=["f-late", "f-early"]), spec(id="behind-done", depends_on=["done"]),
             spec(id="k0", depends_on=["f-late"]),
             *(spec(id=f"k{i}", depends_on=[f"k{i - 1}", "f-early"] if i == 150 else [f"k{i - 1}"])
               for i in range(1, 300)),
             spec(id="q0", depends_on=["done"]), *(spec(id=f"q{i}", depends_on=[f"q{i - 1}"]) for i in range(1, 200)),
             spec(id="both", depends_on=["k299", "bottom"])]
    board_graph(store, sw, specs, {"f-early": "failed", "c-mid": "cancelled", "f-late": "failed",
                                   "f-hidden": "failed", "done": "done", "right": "claimed", "k10": "claimed"})
    origins = ["bottom", "left-only", "right", "direct", "behind-done", "k0", "k100", "k149", "k150", "k299",
               "q199", "both", "top"]
    with store.reading() as conn:
        found = assign._dead_ancestors(conn, sw, origins)
    assert found == {
        "bottom": ("c-mid", "cancelled"), "left-only": ("f-late", "failed"), "right": ("c-mid", "cancelled"),
        "direct": ("f-early", "failed"), "k0": ("f-late", "failed"), "k100": ("f-late", "failed"),
        "k149": ("f-late", "failed"), "k150": ("f-early", "failed"), "k299": ("f-early", "failed"),
        "both": ("f-early", "failed"), "top": ("f-late", "failed"),
    }


def test_the_failed_ancestor_walk_agrees_with_a_naive_walk_on_a_random_board(store: Store) -> None:
    rng = random.Random(12)
    sw = swarms.spawn(store, "s", agents("a"), "mesh")
    ids = [f"t{i}" for i in range(400)]
    deps = {t: sorted({ids[rng.randrange(i)] for _ in range(rng.choice((0, 1, 1, 2, 3)))}) if i else []
            for i, t in enumerate(ids)}
    status = {t: rng.choices(["open", "claimed", "done", "failed", "cancelled"], [60, 10, 15, 10, 5])[0] for t in ids}
    board_graph(store, sw, [TaskSpec(id=t, description="work", depends_on=deps[t]) for t in ids], status)
    origins = [t for t in ids if status[t] in ("open", "claimed")]
    with store.reading() as conn:
        found = assign._dead_ancestors(conn, sw, origins)
    seq = {t: i for i, t in enumerate(ids)}
    expected = {o: d for o in origins if (d := dead_ancestors_by_hand(deps, status, seq, o)) is not None}
    assert found == expected and len(expected) > 50
