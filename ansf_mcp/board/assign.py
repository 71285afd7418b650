"""Coordination on the board: build an episode from the swarm and its history, decide, then write.

The decision (the estimators, the first model load included) runs outside any transaction; the tasks, the
assignment, the estimators' predictions and the decision record are written in one short transaction after it,
so other clients' claims and reads never wait on a model.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence

from ansf_mcp.board import scores
from ansf_mcp.board.errors import Repeat
from ansf_mcp.board.lookup import agent_rows, require
from ansf_mcp.board.models import BoardDecision, TaskSpec
from ansf_mcp.board.tasks import insert_tasks, plan_tasks
from ansf_mcp.coordinator.episode import (
    Assignment,
    Episode,
    EpisodeAgent,
    EpisodeTask,
    HistoryItem,
    Unassigned,
)
from ansf_mcp.coordinator.solver import WAITS_ON_DEAD
from ansf_mcp.coordinator.strategies import Decision, decide
from ansf_mcp.store.base import Connection
from ansf_mcp.store.db import Store

# Most recent outcomes per agent that enter a decision; older ones say less about today's agent.
HISTORY_WINDOW = 200


def build_episode(
    store: Store, swarm_id: str, specs: Sequence[TaskSpec]
) -> tuple[Episode, dict[str, str], list[str], dict, dict[str, int]]:
    """The episode for tasks not yet on the board, the states of board tasks they depend on, the ids they will
    get, the swarm's realised estimator scores, and each agent's unfinished work on the board."""
    with store.reading() as conn:
        require(conn, swarm_id)
        ids = plan_tasks(conn, swarm_id, list(specs))
        agents = []
        for a in agent_rows(conn, swarm_id):
            hist = conn.execute(
                "SELECT task_text, success FROM (SELECT * FROM outcomes WHERE swarm_id = ? AND agent_id = ? "
                "ORDER BY id DESC LIMIT ?) AS recent ORDER BY id",
                (swarm_id, a["id"], HISTORY_WINDOW),
            ).fetchall()
            agents.append(
                EpisodeAgent(
                    id=a["id"],
                    role=a["role"],
                    capabilities=json.loads(a["capabilities"]),
                    capacity=a["capacity"],
                    history=[HistoryItem(task=h["task_text"], success=bool(h["success"])) for h in hist],
                )
            )
        outside = sorted({d for s in specs for d in s.depends_on} - set(ids))
        external = {
            r["id"]: r["status"]
            for r in conn.execute(
                f"SELECT id, status FROM tasks WHERE swarm_id = ? AND id IN ({','.join('?' * len(outside))})",
                (swarm_id, *outside),
            )
        } if outside else {}  # PostgreSQL refuses an empty IN ()
        for dep, (dead, status) in _dead_ancestors(
                conn, swarm_id, [d for d, state in external.items() if state in ("open", "claimed")]).items():
            external[dep] = f"{WAITS_ON_DEAD}{dead!r}, which {status}"
        tallies = scores.tallies(conn, swarm_id)
        load = {r[0]: int(r[1]) for r in conn.execute(
            "SELECT assignee, COUNT(*) FROM tasks WHERE swarm_id = ? AND assignee IS NOT NULL "
            "AND status IN ('open', 'claimed') GROUP BY assignee", (swarm_id,))}
    tasks = [
        EpisodeTask(id=i, description=s.description, priority=s.priority, depends_on=list(s.depends_on))
        for i, s in zip(ids, specs, strict=True)
    ]
    return Episode(id=swarm_id, agents=agents, tasks=tasks), external, ids, tallies, load


# The tasks the walk goes through (the given ones, then every open or claimed task up their dependencies), each once
# however many of the given tasks it lies behind, and the dependencies of each that matter: unfinished ones, which
# the walk continues through, and failed or cancelled ones, where it ends. CROSS JOIN keeps SQLite's planner from
# putting the swarm's dependencies outside the walk: it read all of them for each task walked.
_DEAD_ANCESTORS_SQL = """WITH RECURSIVE walk(id) AS (
    SELECT id FROM tasks WHERE swarm_id = ? AND id IN ({marks})
    UNION
    SELECT d.depends_on FROM walk
    CROSS JOIN task_deps d
    JOIN tasks t ON t.swarm_id = d.swarm_id AND t.id = d.depends_on AND t.status IN ('open', 'claimed')
    WHERE d.swarm_id = ? AND d.task_id = walk.id)
SELECT d.task_id, d.depends_on, t.status, t.seq FROM walk
CROSS JOIN task_deps d
JOIN tasks t ON t.swarm_id = d.swarm_id AND t.id = d.depends_on
WHERE d.swarm_id = ? AND d.task_id = walk.id AND t.status IN ('open', 'claimed', 'failed', 'cancelled')"""


def _dead_ancestors(conn: Connection, swarm_id: str, task_ids: list[str]) -> dict[str, tuple[str, str]]:
    """For each of `task_ids` that waits, through unfinished tasks, on a failed or cancelled task: the earliest such
    task (the lowest seq, the order they were put up in; then the id, though one swarm's seqs never repeat) and its
    status. A failed dependency is not cascaded as a cancelled one is, so a new task behind a task behind it was
    assigned as if it could start. One query reads each task behind them once, and each is answered once here, from
    its dependencies' answers (a walk per given task read a 1 000-task chain once per task in it)."""
    if not task_ids:
        return {}
    # Most boards have no failed or cancelled task: then there is nothing to find, and the walk is skipped. An
    # index read.
    if conn.execute("SELECT 1 FROM tasks WHERE swarm_id = ? AND status IN ('failed', 'cancelled') LIMIT 1",
                    (swarm_id,)).fetchone() is None:
        return {}
    deps: dict[str, list[str]] = {}
    dead: dict[str, tuple[int, str, str]] = {}  # a failed or cancelled dependency: (seq, id, status)
    sql = _DEAD_ANCESTORS_SQL.format(marks=", ".join("?" * len(task_ids)))
    for task, dep, status, seq in conn.execute(sql, (swarm_id, *task_ids, swarm_id, swarm_id)):
        deps.setdefault(task, []).append(dep)
        if status in ("failed", "cancelled"):
            dead[dep] = (seq, dep, status)
    earliest: dict[str, tuple[int, str, str] | None] = {}
    entered: set[str] = set()
    for origin in task_ids:
        # Depth first, without recursion (a chain is as deep as the board is long): a task is entered, its
        # unfinished dependencies answered, then it. The board refuses cycles; a dependency met again while still
        # being answered (only in a cycle) is passed over, so the walk ends.
        stack = [origin]
        while stack:
            task = stack[-1]
            if task in earliest:
                stack.pop()
            elif task not in entered:
                entered.add(task)
                stack.extend(d for d in deps.get(task, ()) if d not in dead and d not in entered)
            else:
                stack.pop()
                candidates = (dead[d] if d in dead else earliest.get(d) for d in deps.get(task, ()))
                earliest[task] = min((c for c in candidates if c is not None), default=None)
    return {origin: (found[1], found[2]) for origin in task_ids if (found := earliest[origin]) is not None}


def submit_and_assign(
    store: Store,
    swarm_id: str,
    specs: list[TaskSpec],
    strategy: str,
    *,
    neural_allowed: bool = True,
    neural=None,
    model: str | None = None,
    clock: Callable[[], float] = time.time,
    before_decision: Callable[[], None] | None = None,
) -> BoardDecision:
    """Add the tasks and record the chosen assignment, atomically: a failure leaves the board as it was.
    `clock` is the board's (tests move it; the takeover grace is measured from when a task was put up).
    A repeat of a call that succeeded (every task already on the board as given) is answered from the board.
    `before_decision` runs once the tasks are planned and found no repeat, outside the read: the model's load,
    which a repeat must not wait for (seconds, and a row of its own)."""
    started = time.perf_counter()
    # A repeat is found when the tasks are planned (all already there as given), or when the write finds them put
    # up meanwhile by the same call retried while this one decided; either way it is answered from the board.
    try:
        episode, external, planned, tallies, load = build_episode(store, swarm_id, specs)
        if before_decision is not None:
            before_decision()
        decision = decide(
            episode,
            strategy,
            model=model,
            neural_allowed=neural_allowed,
            neural=neural,
            external_states=external,
            open_load=load,
            tallies=tallies,
        )
        # Validated by the decision already: carried over as it is (a 1 000-task answer is not validated twice).
        result = BoardDecision.model_construct(**dict(decision.result))
        with store.transaction() as conn:
            # Coordinate's writes on one swarm take turns (SQLite's writers always do): a repeat that arrives while
            # the first call writes then finds its tasks, where on PostgreSQL it planned the same ids and failed on
            # the duplicate key. Claims and reports on the swarm are not held up: they only refer to its row.
            require(conn, swarm_id, store.for_turns)
            result = _write(conn, swarm_id, specs, planned, episode, decision, result, clock)
    except Repeat as repeat:
        return repeated(swarm_id, repeat, strategy, started)
    return result


def _write(conn: Connection, swarm_id: str, specs: list[TaskSpec], planned: list[str], episode: Episode,
           decision: Decision, result: BoardDecision, clock: Callable[[], float]) -> BoardDecision:
    """The tasks, the assignment, the estimators' predictions and the decision record, in the caller's
    transaction; the result with the ids the tasks got."""
    ids = insert_tasks(conn, swarm_id, specs, now=clock())
    # Another client may have added tasks since the plan: the same specs in the same order get the new ids.
    rename = dict(zip(planned, ids, strict=True))
    if ids != planned:
        result = result.model_copy(
            update={
                "assignments": [a.model_copy(update={"task": rename[a.task]}) for a in result.assignments],
                "unassigned": [u.model_copy(update={"task": rename[u.task]}) for u in result.unassigned],
            }
        )
    conn.executemany(
        "UPDATE tasks SET assignee = ?, p_success = ?, confidence = ?, strategy = ? WHERE swarm_id = ? AND id = ?",
        [(a.agent, a.p_success, a.confidence, result.strategy, swarm_id, a.task) for a in result.assignments],
    )
    scores.record_predictions(
        conn, swarm_id, episode, decision.result.assignments, decision.estimates, task_ids=rename
    )
    conn.execute(
        "INSERT INTO decisions (swarm_id, strategy, model, agents, tasks, assigned, elapsed_ms, created_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            swarm_id,
            result.strategy,
            result.model,
            len(episode.agents),
            len(episode.tasks),
            len(result.assignments),
            result.elapsed_ms,
            clock(),
        ),
    )
    conn.executemany(
        "UPDATE tasks SET strategy = ?, last_error = ? WHERE swarm_id = ? AND id = ?",
        [(result.strategy, f"{UNASSIGNED}{u.reason}", swarm_id, u.task) for u in result.unassigned],
    )
    return result


UNASSIGNED = "unassigned: "


def repeated(swarm_id: str, repeat: Repeat, strategy: str, started: float) -> BoardDecision:
    """The answer to a repeat: the tasks' assignments as the check that recognised it read them (nothing is decided
    or written). A task without an assignee is listed unassigned with what the board says about it: the decision's
    reason, or what happened since (released, failed, cancelled)."""
    rows = repeat.rows
    assignments, unassigned = [], []
    for task_id in repeat.ids:
        r = rows[task_id]
        if r["assignee"] is not None:
            # confidence is kept only for the agent the decision chose; a task another agent took has none.
            assignments.append(Assignment(task=task_id, agent=r["assignee"], p_success=r["p_success"],
                                          confidence=r["confidence"] if r["confidence"] is not None else 0.0))
        else:
            why = r["last_error"] or f"not assigned ({r['status']})"
            unassigned.append(Unassigned(task=task_id, reason=why.removeprefix(UNASSIGNED)))
    used = next((r["strategy"] for r in rows.values() if r["strategy"]), strategy)
    return BoardDecision(
        id=swarm_id, strategy=used, assignments=assignments, unassigned=unassigned,
        elapsed_ms=round((time.perf_counter() - started) * 1000, 3),
        repeat=f"a repeat of an earlier call: {repeat}, so nothing new was written and nothing was decided again; "
               "these are the tasks' assignments now (swarm_status shows their states)")
