"""A call repeated verbatim after its answer was lost (a dropped connection, a client's retry): what each mutating
board tool does the second time, on both engines. The first call committed; the client never heard."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest
from mcp import Client, StdioServerParameters

from ansf_mcp.board import assign
from ansf_mcp.board.board import Board
from ansf_mcp.board.errors import Conflict, NotFound, Refused
from ansf_mcp.board.models import TaskSpec
from ansf_mcp.store.base import Connection
from ansf_mcp.store.db import Store, open_store
from tests.board_helpers import FakeClock, agents
from tests.conftest import ansf_command, subprocess_env
from tests.mcp_calls import call, error

T = TypeVar("T")

PLAN = [
    TaskSpec(id="schema", description="Design the orders schema", priority=3),
    TaskSpec(id="api", description="Add the orders endpoint", depends_on=["schema"]),
    TaskSpec(id="docs", description="Document the orders endpoint", priority=0, depends_on=["api", "schema"]),
]


def written(store: Store) -> dict[str, int]:
    """Rows a coordinate call writes, per table."""
    with store.reading() as conn:
        return {table: conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
                for table in ("tasks", "task_deps", "decisions", "predictions")}


def test_a_repeated_coordinate_decides_nothing_and_answers_the_assignments_now(store: Store, board: Board) -> None:
    sw = board.spawn("s", agents("backend", "writer", capacity=2), "mesh").swarm_id
    first = board.coordinate(sw, PLAN, "history")
    assert first.repeat is None and len(first.assignments) == 3
    before = written(store)
    again = board.coordinate(sw, [s.model_copy() for s in PLAN], "history")
    assert again.repeat and "repeat of an earlier call" in again.repeat and "nothing new was written" in again.repeat
    assert again.assignments == first.assignments and again.unassigned == first.unassigned
    assert again.strategy == first.strategy and written(store) == before
    # What happened since is what the repeat says: work done stays with its agent, work given back is unassigned.
    holder = {a.task: a.agent for a in first.assignments}
    claim = board.claim_next(sw, holder["schema"])
    assert claim.task.id == "schema"
    board.report(sw, "schema", holder["schema"], True)
    claim = board.claim_next(sw, holder["api"])
    assert claim.task.id == "api"
    board.release(sw, "api", holder["api"], "wrong agent")
    before = written(store)  # the report consumed its predictions
    later = board.coordinate(sw, PLAN, "round-robin")
    assert {a.task: a.agent for a in later.assignments} == {"schema": holder["schema"], "docs": holder["docs"]}
    assert [(u.task, u.reason) for u in later.unassigned] == [("api", f"released by {holder['api']!r}: wrong agent")]
    assert later.strategy == first.strategy and written(store) == before


def test_a_repeat_of_a_call_that_left_tasks_unassigned_says_why_again(store: Store, board: Board) -> None:
    sw = board.spawn("s", agents("backend"), "mesh").swarm_id
    specs = [TaskSpec(id=f"t{k}", description=f"task {k}") for k in range(2)]  # one agent, capacity 1
    first = board.coordinate(sw, specs, "round-robin")
    assert board.coordinate(sw, specs, "round-robin").model_dump(exclude={"elapsed_ms", "repeat"}) == \
        first.model_dump(exclude={"elapsed_ms", "repeat"})
    board.manage(sw, "t1", "cancel", reason="not needed")
    again = board.coordinate(sw, specs, "round-robin")
    assert [(u.task, u.reason) for u in again.unassigned] == [("t1", "cancelled: not needed")]


@pytest.mark.parametrize(("change", "named", "says"), [
    ({"description": "Add the orders endpoint, paged"}, "api",
     "description 'Add the orders endpoint' there, 'Add the orders endpoint, paged' here"),
    ({"priority": 5}, "api", "priority 1 there, 5 here"),
    ({"depends_on": []}, "api", "depends_on ['schema'] there, [] here"),
])
def test_the_same_id_with_other_content_is_refused_whole_naming_what_differs(
        store: Store, board: Board, change: dict, named: str, says: str) -> None:
    sw = board.spawn("s", agents("backend", "writer"), "mesh").swarm_id
    board.coordinate(sw, PLAN, "round-robin")
    before = written(store)
    changed = [s.model_copy(update=change) if s.id == named else s for s in PLAN]
    with pytest.raises(Conflict) as refused:
        board.coordinate(sw, [*changed, TaskSpec(id="new", description="something new")], "round-robin")
    text = str(refused.value)
    assert f"task id {named!r} is already on this swarm's board with other content ({says})" in text
    assert "nothing of this call was written" in text and written(store) == before


def test_a_task_gone_between_the_reads_of_a_repeat_check_is_one_clear_sentence(
        store: Store, board: Board, monkeypatch: pytest.MonkeyPatch) -> None:
    """The check reads which ids are there, then their rows; on PostgreSQL the two are not one transaction, so a
    dissolve in between left the second read short and a bare KeyError reached the caller."""
    from ansf_mcp.board import tasks

    sw = board.spawn("s", agents("backend", "writer"), "mesh").swarm_id
    board.coordinate(sw, PLAN, "round-robin")
    before = written(store)
    present = tasks._present
    monkeypatch.setattr(tasks, "_present", lambda conn, swarm_id, ids: present(conn, swarm_id, ids) | {"ghost"})
    with pytest.raises(Conflict, match=r"task\(s\) \['ghost'\] left this swarm's board while this call read it; "
                                       "nothing of this call was written"):
        board.coordinate(sw, [*PLAN, TaskSpec(id="ghost", description="gone")], "round-robin")
    assert written(store) == before


def test_a_call_only_partly_on_the_board_is_no_repeat_and_writes_nothing(store: Store, board: Board) -> None:
    sw = board.spawn("s", agents("backend"), "mesh").swarm_id
    board.coordinate(sw, PLAN[:1], "round-robin")
    before = written(store)
    with pytest.raises(Conflict, match="'schema' of this call are already on this swarm's board as given, but "
                                       "'api' is not: this is not a repeat of one earlier call"):
        board.coordinate(sw, PLAN[:2], "round-robin")
    with pytest.raises(Conflict, match="but 1 task\\(s\\) without an id cannot be recognised"):
        board.coordinate(sw, [PLAN[0], TaskSpec(description="anonymous")], "round-robin")
    assert written(store) == before


def test_a_repeat_that_arrives_while_the_first_call_decides_is_answered_as_one(store: Store, board: Board,
                                                                                monkeypatch) -> None:
    """The client gave up waiting and retried while the first call was still deciding: the retry wrote first,
    so the first call finds its tasks on the board when it writes, and answers as a repeat too."""
    sw = board.spawn("s", agents("backend", "writer"), "mesh").swarm_id
    decide, inner = assign.decide, []

    def retried_meanwhile(*args, **kwargs):
        monkeypatch.setattr(assign, "decide", decide)  # the retry decides as usual
        inner.append(board.coordinate(sw, PLAN, "round-robin"))
        return decide(*args, **kwargs)

    monkeypatch.setattr(assign, "decide", retried_meanwhile)
    outer = board.coordinate(sw, PLAN, "round-robin")
    assert inner[0].repeat is None and outer.repeat and outer.assignments == inner[0].assignments
    assert written(store)["tasks"] == 3 and written(store)["decisions"] == 1


def test_two_identical_calls_writing_at_once_write_once_and_the_second_answers_as_a_repeat(
        store: Store, board: Board, monkeypatch) -> None:
    """The retry reaches its write while the first call's transaction is still open: SQLite's writers take turns;
    on PostgreSQL both planned the same ids, and the second failed on the duplicate key with a store error."""
    sw = board.spawn("s", agents("backend", "writer", capacity=2), "mesh").swarm_id
    insert, inserted, go = assign.insert_tasks, threading.Event(), threading.Event()

    def first_holds_its_transaction_open(*args, **kwargs):
        ids = insert(*args, **kwargs)
        if threading.current_thread().name == "first":
            inserted.set()
            go.wait(10)
        return ids

    monkeypatch.setattr(assign, "insert_tasks", first_holds_its_transaction_open)
    answers: dict[str, object] = {}

    def run() -> None:
        try:
            answers[threading.current_thread().name] = board.coordinate(sw, PLAN, "round-robin")
        except Exception as exc:  # the test shows what the call raised
            answers[threading.current_thread().name] = exc

    first = threading.Thread(target=run, name="first")
    first.start()
    assert inserted.wait(10)
    second = threading.Thread(target=run, name="second")
    second.start()
    time.sleep(0.5)  # the second call reaches its write and waits there
    go.set()
    first.join(10)
    second.join(10)
    assert answers["first"].repeat is None, answers["first"]
    assert not isinstance(answers["second"], Exception), answers["second"]
    assert answers["second"].repeat and answers["second"].assignments == answers["first"].assignments
    assert written(store)["decisions"] == 1


@contextlib.asynccontextmanager
async def stdio_client(data_dir: Path, cwd: Path) -> AsyncIterator[Client]:
    cmd = ansf_command()
    params = StdioServerParameters(command=cmd[0], args=[*cmd[1:], "serve"], env=subprocess_env(data_dir),
                                   cwd=str(cwd))
    async with Client(params, mode="legacy") as client:
        yield client


@pytest.mark.anyio
@pytest.mark.slow
async def test_a_coordinate_retried_over_stdio_gets_the_assignments_and_writes_nothing(data_dir: Path,
                                                                                       tmp_path: Path) -> None:
    tasks = [s.model_dump(exclude_none=True) for s in PLAN]
    async with stdio_client(data_dir, tmp_path) as client:
        sw = (await call(client, "spawn_swarm", name="t", agents=[{"role": "backend", "capacity": 2},
                                                                  {"role": "writer", "capacity": 2}]))["swarm_id"]
        first = await call(client, "coordinate", swarm_id=sw, tasks=tasks, strategy="round-robin")
        again = await call(client, "coordinate", swarm_id=sw, tasks=tasks, strategy="round-robin")
        assert first.get("repeat") is None and "repeat of an earlier call" in again["repeat"]
        assert again["assignments"] == first["assignments"] and again["unassigned"] == first["unassigned"]
        status = (await call(client, "swarm_status", swarm_id=sw))["swarm"]
        assert status["tasks_matching"] == 3
        tasks[1]["priority"] = 7
        text = await error(client, "coordinate", swarm_id=sw, tasks=tasks, strategy="round-robin")
        assert "task id 'api' is already on this swarm's board with other content (priority 1 there, 7 here)" in text
        assert (await call(client, "swarm_status", swarm_id=sw))["swarm"]["tasks_matching"] == 3


def test_a_repeated_release_answers_as_one_and_a_renewal_after_it_says_the_claim_ended(store: Store,
                                                                                        board: Board) -> None:
    sw = board.spawn("s", agents("a", "b"), "mesh").swarm_id
    board.coordinate(sw, PLAN[:1], "round-robin")
    claim = board.claim_next(sw, "agent-0")
    first = board.release(sw, "schema", "agent-0", "blocked on review", claim.claim)
    assert first.note is None and (first.state, first.attempts, first.claim) == ("ready", 0, 1)
    for named in (claim.claim, None):  # by its number, or as the agent's last claim on the task
        again = board.release(sw, "schema", "agent-0", "blocked on review", named)
        assert again.model_dump(exclude={"note"}) == first.model_dump(exclude={"note"})
        assert "a repeat: claim #1 of 'agent-0' on this task was already released" in again.note
    with pytest.raises(Refused, match="claim #1 of 'agent-0' on it ended: it was released"):
        board.renew(sw, "schema", "agent-0", 60, claim.claim)
    # Taken by another agent since: the repeat still answers for claim #1 (the task's state is as it is now) ...
    assert board.claim_next(sw, "agent-1").claim == 2
    later = board.release(sw, "schema", "agent-0", "blocked on review", 1)
    assert (later.state, later.claim) == ("claimed", 1) and later.note
    with store.reading() as conn:
        row = conn.execute("SELECT lease_owner, attempts FROM tasks WHERE id = 'schema'").fetchone()
        assert (row[0], row[1]) == ("agent-1", 1)  # the repeat wrote nothing over agent-1's claim
    # ... and a claim that was never released is refused as before.
    with pytest.raises(Refused, match="never held a claim #5"):
        board.release(sw, "schema", "agent-0", "", 5)
    board.report(sw, "schema", "agent-1", True)
    with pytest.raises(Refused, match="claim #2 of 'agent-1' on it ended: its outcome was recorded"):
        board.release(sw, "schema", "agent-1", "")


def test_a_repeated_cancel_and_retry_answer_as_one_and_write_nothing(store: Store, board: Board,
                                                                     clock: FakeClock) -> None:
    sw = board.spawn("s", agents("a"), "mesh").swarm_id
    board.coordinate(sw, PLAN, "round-robin")
    first = board.manage(sw, "schema", "cancel", reason="scope cut")
    assert first.cancelled == ["api", "docs"]
    clock.advance(5)
    again = board.manage(sw, "schema", "cancel", reason="scope cut")
    assert (again.state, again.cancelled, again.changed) == ("cancelled", ["api", "docs"], [])
    assert "a repeat: an earlier call already cancelled it for the same reason" in again.note
    with pytest.raises(Refused, match=r"task 'api' is already cancelled \(cancelled with 'schema', which it "
                                      r"depends on\); there is nothing to cancel"):
        board.manage(sw, "api", "cancel", reason="scope cut")
    with pytest.raises(Refused, match=r"already cancelled \(cancelled: scope cut\)"):
        board.manage(sw, "schema", "cancel", reason="another reason")
    retried = board.manage(sw, "schema", "retry", reason="back in scope")
    assert retried.changed == ["state", "attempts"]
    again = board.manage(sw, "schema", "retry", reason="back in scope")
    assert (again.state, again.attempts, again.changed) == ("ready", 0, [])
    assert "a repeat: an earlier retry with the same reason already put it back" in again.note
    with store.reading() as conn:
        assert conn.execute("SELECT MAX(updated_at) FROM tasks").fetchone()[0] == clock.now
    with pytest.raises(Refused, match=r"task 'schema' is ready \(its last change: retried: back in scope "):
        board.manage(sw, "schema", "retry", reason="other")
    assert board.claim_next(sw, "agent-0").task.id == "schema"
    with pytest.raises(Refused, match=r"task 'schema' is claimed \(its last change: retried: back in scope"):
        board.manage(sw, "schema", "retry", reason="back in scope")


def test_a_repeated_reassign_writes_nothing_so_the_takeover_grace_runs_on(store: Store, board: Board,
                                                                          clock: FakeClock) -> None:
    sw = board.spawn("s", agents("a", "b"), "mesh").swarm_id
    board.coordinate(sw, PLAN[:1], "round-robin")
    assert board.reassign(sw, "schema", "agent-1").note is None
    clock.advance(300)
    again = board.reassign(sw, "schema", "agent-1")
    assert (again.assignee, again.state) == ("agent-1", "ready") and "already assigned to 'agent-1'" in again.note
    clock.advance(301)  # agent-1 never showed up: 601 s since the first reassign, not 301 since the repeat
    taken = board.claim_next(sw, "agent-0")
    assert taken.claimed and taken.taken_over_from == "agent-1"
    with pytest.raises(Refused, match="it is already with 'agent-0', the agent this call names, so nothing was"):
        board.reassign(sw, "schema", "agent-0")


def test_a_repeated_dissolve_answers_what_the_first_removed(store: Store, board: Board) -> None:
    sw = board.spawn("s", agents("a", "b"), "mesh").swarm_id
    board.coordinate(sw, PLAN, "round-robin")
    board.send(sw, "agent-0", "agent-1", "hi")
    first = board.dissolve(sw)
    assert first.note is None and first.removed["tasks"] == 3
    again = board.dissolve(sw)
    assert again.removed == first.removed and "a repeat: an earlier call dissolved this swarm" in again.note
    with pytest.raises(NotFound, match="unknown swarm"):
        board.view(sw)
    with pytest.raises(NotFound, match="unknown swarm 'swarm-000000000000'"):
        board.dissolve("swarm-000000000000")


def test_a_dissolve_repeated_while_the_first_still_writes_waits_and_answers_as_a_repeat(
        store_spec: str | Path, store: Store, board: Board) -> None:
    """The first call's transaction (another connection, here) has deleted the swarm and written its receipt but not
    committed: the repeat waits for it and answers with the receipt. On PostgreSQL its unlocked check saw the swarm
    still there, and the receipt's insert failed on the key after the first committed."""
    from ansf_mcp.board.models import DissolveReceipt

    sw = board.spawn("s", agents("a"), "mesh").swarm_id
    first = DissolveReceipt(swarm_id=sw, removed={"agents": 1, "tasks": 0, "outcomes": 0, "messages": 0, "claims": 0})
    other = open_store(store_spec)
    answers: list[object] = []

    def repeat() -> None:
        try:
            answers.append(board.dissolve(sw))
        except Exception as exc:  # the test shows what the call raised
            answers.append(exc)

    try:
        with other.transaction() as conn:
            conn.execute("DELETE FROM swarms WHERE id = ?", (sw,))
            conn.execute("INSERT INTO dissolved_swarms (id, receipt, dissolved_at) VALUES (?, ?, ?)",
                         (sw, first.model_dump_json(), time.time()))
            second = threading.Thread(target=repeat)
            second.start()
            time.sleep(0.5)  # the repeat reaches its check and waits on the first call's write
        second.join(10)
    finally:
        other.close()
    assert len(answers) == 1 and not isinstance(answers[0], Exception), answers
    assert answers[0].removed == first.removed and "a repeat" in answers[0].note


def race(store: Store, clock: FakeClock, call: Callable[[], T]) -> dict[str, T | Exception]:
    """`call` twice at once: "first" writes and holds its transaction open (the clock moved on meanwhile) while
    "second" starts and reaches its read; then "first" commits. Each answer, or what it raised."""
    transaction, written, go = store.transaction, threading.Event(), threading.Event()

    @contextlib.contextmanager
    def first_commits_late() -> Iterator[Connection]:
        with transaction() as conn:
            yield conn
            if threading.current_thread().name == "first":
                clock.advance(5)  # a second write would show in updated_at
                written.set()
                go.wait(10)

    answers: dict[str, T | Exception] = {}

    def run() -> None:
        try:
            answers[threading.current_thread().name] = call()
        except Exception as exc:  # the test shows what the call raised
            answers[threading.current_thread().name] = exc

    store.transaction = first_commits_late  # type: ignore[method-assign]
    try:
        first = threading.Thread(target=run, name="first")
        first.start()
        assert written.wait(10)
        second = threading.Thread(target=run, name="second")
        second.start()
        time.sleep(0.5)  # the second call reaches its locked read (PostgreSQL) or the write lock (SQLite) and waits
        go.set()
        first.join(10)
        second.join(10)
    finally:
        del store.transaction
    assert not isinstance(answers["first"], Exception), answers["first"]
    assert not isinstance(answers["second"], Exception), answers["second"]
    return answers


def last_write(store: Store) -> float:
    with store.reading() as conn:
        return conn.execute("SELECT MAX(updated_at) FROM tasks").fetchone()[0]


def test_a_release_repeated_while_the_first_still_writes_answers_as_a_repeat(store: Store, board: Board,
                                                                             clock: FakeClock) -> None:
    sw = board.spawn("s", agents("a", "b"), "mesh").swarm_id
    board.coordinate(sw, PLAN[:1], "round-robin")
    claim = board.claim_next(sw, "agent-0").claim
    at = clock.now
    answers = race(store, clock, lambda: board.release(sw, "schema", "agent-0", "blocked on review", claim))
    assert answers["first"].note is None and (answers["first"].state, answers["first"].attempts) == ("ready", 0)
    assert "a repeat: claim #1 of 'agent-0' on this task was already released" in answers["second"].note
    assert answers["second"].model_dump(exclude={"note"}) == answers["first"].model_dump(exclude={"note"})
    with store.reading() as conn:
        assert [tuple(r) for r in conn.execute("SELECT ended, ended_at FROM claims")] == [("released", at)]
    assert last_write(store) == at


def test_a_reassign_repeated_while_the_first_still_writes_answers_as_a_repeat(store: Store, board: Board,
                                                                              clock: FakeClock) -> None:
    sw = board.spawn("s", agents("a", "b"), "mesh").swarm_id
    board.coordinate(sw, PLAN[:1], "round-robin")
    at = clock.now
    answers = race(store, clock, lambda: board.reassign(sw, "schema", "agent-1"))
    assert answers["first"].note is None and answers["first"].previous == "agent-0"
    assert (answers["second"].assignee, answers["second"].previous) == ("agent-1", "agent-1")
    assert "already assigned to 'agent-1'" in answers["second"].note
    assert last_write(store) == at  # the takeover grace counts from the first call


@pytest.mark.parametrize("action", ["cancel", "retry"])
def test_a_cancel_or_retry_repeated_while_the_first_still_writes_answers_as_a_repeat(
        store: Store, board: Board, clock: FakeClock, action: str) -> None:
    sw = board.spawn("s", agents("a"), "mesh").swarm_id
    board.coordinate(sw, PLAN, "round-robin")
    if action == "retry":
        board.manage(sw, "schema", "cancel", reason="scope cut")
        clock.advance(5)
    at = clock.now
    answers = race(store, clock, lambda: board.manage(sw, "schema", action, reason="back in scope"))  # type: ignore[arg-type]
    assert answers["first"].changed and "a repeat" not in answers["first"].note
    assert answers["second"].changed == [] and "a repeat: an earlier" in answers["second"].note
    assert answers["second"].cancelled == answers["first"].cancelled
    assert (answers["second"].state, answers["second"].attempts) == (answers["first"].state, answers["first"].attempts)
    assert last_write(store) == at


class RecordingWarmer:
    """Stands in for the model's warmer: records each load asked for, and refuses one when told to (a load that
    must not happen)."""

    def __init__(self) -> None:
        self.asked: list[str] = []
        self.refuse = False

    def ensure(self, model: str | None, trigger: str = "first use") -> float | None:
        if self.refuse:
            raise AssertionError("the model was loaded for a call already answered by the board")
        self.asked.append(trigger)
        return None  # as if loaded already: the decision runs without the network (below)

    def status(self) -> dict[str, str]:
        return {"state": "loaded"}


def test_a_repeated_coordinate_is_recognised_before_any_model_load_or_decision(store: Store, board: Board,
                                                                               monkeypatch) -> None:
    """A client re-sending coordinate(auto) after a lost answer, to a server whose model is not loaded yet: the
    repeat is answered from the board without loading the network (seconds, and a model_loads row written)."""
    from ansf_mcp.coordinator import strategies
    from ansf_mcp.coordinator.episode import ModelUnavailable

    def no_network(model):
        raise ModelUnavailable("no network in this test")

    monkeypatch.setattr(strategies, "_load_neural", no_network)  # auto falls back to the other estimators
    warmer = RecordingWarmer()
    board.warmer = warmer  # type: ignore[assignment]
    sw = board.spawn("s", agents("backend", "writer", capacity=2), "mesh").swarm_id
    first = board.coordinate(sw, PLAN, "auto")
    assert first.repeat is None and warmer.asked == ["first use"]
    warmer.refuse = True

    def no_decision(*args, **kwargs):
        raise AssertionError("a repeat was decided again")

    monkeypatch.setattr(assign, "decide", no_decision)
    before = written(store)
    again = board.coordinate(sw, PLAN, "auto")
    assert again.repeat and again.assignments == first.assignments and again.unassigned == first.unassigned
    assert written(store) == before
