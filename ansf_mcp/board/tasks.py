"""The task board: submitting tasks with dependencies, claims under leases, outcomes and retries.

Stored status is one of open / claimed / succeeded / failed; an open task is shown as "ready" when every
dependency succeeded and "blocked" otherwise.
"""

from __future__ import annotations

import sqlite3
import time
from collections import defaultdict

from ansf_mcp.board import scores
from ansf_mcp.board.errors import BoardError, Conflict, NotFound
from ansf_mcp.board.lookup import require, require_agent
from ansf_mcp.board.models import (
    MAX_TASKS_PER_CALL,
    Claim,
    OutcomeReceipt,
    TaskSpec,
    TaskState,
    TaskView,
)
from ansf_mcp.store.db import Store

READY_SQL = """t.status = 'open' AND NOT EXISTS (
    SELECT 1 FROM task_deps d JOIN tasks dep ON dep.swarm_id = d.swarm_id AND dep.id = d.depends_on
    WHERE d.swarm_id = t.swarm_id AND d.task_id = t.id AND dep.status != 'succeeded')"""


def expire_leases(store: Store, swarm_id: str, max_attempts: int, now: float | None = None) -> int:
    """Put tasks whose lease ran out back on the board (or fail them once attempts are used up)."""
    now = time.time() if now is None else now
    with store.reading() as conn:
        due = conn.execute(
            "SELECT 1 FROM tasks WHERE swarm_id = ? AND status = 'claimed' AND lease_expires_at < ? LIMIT 1",
            (swarm_id, now),
        ).fetchone()
    if due is None:
        return 0
    with store.transaction() as conn:
        rows = conn.execute(
            "SELECT id, lease_owner, attempts FROM tasks WHERE swarm_id = ? AND status = 'claimed' "
            "AND lease_expires_at < ?",
            (swarm_id, now),
        ).fetchall()
        for r in rows:
            reason = f"lease of {r['lease_owner']!r} expired"
            exhausted = r["attempts"] >= max_attempts
            conn.execute(
                "UPDATE tasks SET status = ?, lease_owner = NULL, lease_expires_at = NULL, assignee = NULL, "
                "last_error = ?, updated_at = ? WHERE swarm_id = ? AND id = ?",
                (
                    "failed" if exhausted else "open",
                    f"{reason}; gave up after {r['attempts']} attempts" if exhausted else reason,
                    now,
                    swarm_id,
                    r["id"],
                ),
            )
    return len(rows)


def _deps_of(conn: sqlite3.Connection, swarm_id: str, ids: list[str]) -> dict[str, list[tuple[str, str]]]:
    """task id -> [(dependency id, dependency status)] for the given tasks only."""
    deps: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for start in range(0, len(ids), 500):  # SQLite caps the number of bound parameters
        chunk = ids[start : start + 500]
        marks = ",".join("?" * len(chunk))
        for r in conn.execute(
            "SELECT d.task_id, d.depends_on, dep.status FROM task_deps d JOIN tasks dep "
            f"ON dep.swarm_id = d.swarm_id AND dep.id = d.depends_on WHERE d.swarm_id = ? AND d.task_id IN ({marks})",
            (swarm_id, *chunk),
        ):
            deps[r[0]].append((r[1], r[2]))
    return deps


def _display_state(status: str, blockers: list[str]) -> TaskState:
    if status == "open":
        return "blocked" if blockers else "ready"
    return status  # type: ignore[return-value]


def effective_status(row: sqlite3.Row, now: float, max_attempts: int | None) -> tuple[str, str | None]:
    """(status, note) as of `now`: a claim whose lease ran out reads as re-offered (or failed, attempts used up)
    even before the next claim writes that down, so status reads never need to write."""
    if row["status"] == "claimed" and row["lease_expires_at"] is not None and row["lease_expires_at"] < now:
        note = f"lease of {row['lease_owner']!r} expired"
        if max_attempts is not None and row["attempts"] >= max_attempts:
            return "failed", f"{note}; gave up after {row['attempts']} attempts"
        return "open", note
    return row["status"], None


def task_views(
    conn: sqlite3.Connection,
    swarm_id: str,
    limit: int | None = None,
    ids: list[str] | None = None,
    max_attempts: int | None = None,
) -> tuple[list[TaskView], int]:
    """Views of the swarm's tasks in board order; returns (views, how many were left out by `limit`)."""
    if ids is None:
        rows = conn.execute(
            "SELECT * FROM tasks WHERE swarm_id = ? ORDER BY seq LIMIT ?", (swarm_id, -1 if limit is None else limit)
        ).fetchall()
        total = conn.execute("SELECT COUNT(*) FROM tasks WHERE swarm_id = ?", (swarm_id,)).fetchone()[0]
        omitted = max(0, total - len(rows))
    else:
        marks = ",".join("?" * len(ids))
        rows = conn.execute(
            f"SELECT * FROM tasks WHERE swarm_id = ? AND id IN ({marks}) ORDER BY seq", (swarm_id, *ids)
        ).fetchall()
        omitted = 0
    deps = _deps_of(conn, swarm_id, [r["id"] for r in rows])
    now = time.time()
    views = []
    for r in rows:
        blockers = [d for d, state in deps.get(r["id"], []) if state != "succeeded"]
        status, expired = effective_status(r, now, max_attempts)
        views.append(
            TaskView(
                id=r["id"],
                description=r["description"],
                priority=r["priority"],
                state=_display_state(status, blockers),
                depends_on=[d for d, _ in deps.get(r["id"], [])],
                assignee=r["assignee"],
                p_success=r["p_success"],
                strategy=r["strategy"],
                lease_owner=None if expired else r["lease_owner"],
                lease_expires_in_s=round(r["lease_expires_at"] - now, 3) if r["lease_expires_at"] and not expired else None,
                attempts=r["attempts"],
                blocked_by=blockers if status == "open" else [],
                last_error=expired or r["last_error"],
                result=r["result"],
            )
        )
    return views, omitted


def state_counts(conn: sqlite3.Connection, swarm_id: str, max_attempts: int | None = None) -> dict[str, int]:
    """Tasks per displayed state, with expired leases read as effective_status() reads them."""
    counts = dict.fromkeys(("blocked", "ready", "claimed", "succeeded", "failed"), 0)
    for r in conn.execute(
        """SELECT CASE WHEN t.status = 'claimed' AND t.lease_expires_at < :now
                       THEN CASE WHEN t.attempts >= :max THEN 'failed' ELSE 'open' END
                       ELSE t.status END AS status,
                  EXISTS (SELECT 1 FROM task_deps d JOIN tasks dep ON dep.swarm_id = d.swarm_id AND dep.id = d.depends_on
                          WHERE d.swarm_id = t.swarm_id AND d.task_id = t.id AND dep.status != 'succeeded') AS blocked,
                  COUNT(*) AS n
           FROM tasks t WHERE t.swarm_id = :swarm GROUP BY 1, 2""",
        {"now": time.time(), "max": max_attempts if max_attempts is not None else 1 << 62, "swarm": swarm_id},
    ):
        key = ("blocked" if r["blocked"] else "ready") if r["status"] == "open" else r["status"]
        counts[key] += r["n"]
    return counts


def plan_tasks(conn: sqlite3.Connection, swarm_id: str, specs: list[TaskSpec]) -> list[str]:
    """The ids `insert_tasks` would give these tasks now; refuses unknown dependencies and cycles. Reads only."""
    return _plan(conn, swarm_id, specs)[0]


def insert_tasks(conn: sqlite3.Connection, swarm_id: str, specs: list[TaskSpec]) -> list[str]:
    """Add tasks inside the caller's transaction; refuses unknown dependencies and cycles. Returns the ids."""
    ids, seq0 = _plan(conn, swarm_id, specs)
    new = dict(zip(ids, specs, strict=True))
    now = time.time()
    conn.executemany(
        "INSERT INTO tasks (swarm_id, id, seq, description, priority, status, created_at, updated_at) "
        "VALUES (?, ?, ?, ?, ?, 'open', ?, ?)",
        [(swarm_id, tid, seq0 + k, s.description, s.priority, now, now) for k, (tid, s) in enumerate(new.items())],
    )
    conn.executemany(
        "INSERT INTO task_deps (swarm_id, task_id, depends_on) VALUES (?, ?, ?)",
        [(swarm_id, tid, d) for tid, s in new.items() for d in dict.fromkeys(s.depends_on)],
    )
    return ids


def _plan(conn: sqlite3.Connection, swarm_id: str, specs: list[TaskSpec]) -> tuple[list[str], int]:
    if not specs:
        raise BoardError("no tasks given")
    if len(specs) > MAX_TASKS_PER_CALL:
        raise BoardError(f"{len(specs)} tasks in one call; at most {MAX_TASKS_PER_CALL} per call")
    existing = {r["id"]: r["status"] for r in conn.execute("SELECT id, status FROM tasks WHERE swarm_id = ?", (swarm_id,))}
    seq0 = conn.execute("SELECT COALESCE(MAX(seq), -1) + 1 FROM tasks WHERE swarm_id = ?", (swarm_id,)).fetchone()[0]
    ids: list[str] = []
    taken = set(existing)
    counter = seq0
    for spec in specs:
        if spec.id is not None:
            if spec.id in taken:
                raise Conflict(f"task id {spec.id!r} is already on this swarm's board")
            ids.append(spec.id)
            taken.add(spec.id)
            continue
        while f"task-{counter}" in taken:
            counter += 1
        ids.append(f"task-{counter}")
        taken.add(f"task-{counter}")
    new = dict(zip(ids, specs, strict=True))
    for task_id, spec in new.items():
        for dep in spec.depends_on:
            if dep == task_id:
                raise BoardError(f"task {task_id!r} depends on itself")
            if dep not in new and dep not in existing:
                raise BoardError(f"task {task_id!r} depends on unknown task {dep!r}")
    cycle = _find_cycle({t: [d for d in s.depends_on if d in new] for t, s in new.items()})
    if cycle:
        raise BoardError("dependency cycle: " + " -> ".join(cycle))
    return ids, seq0


def _find_cycle(graph: dict[str, list[str]]) -> list[str] | None:
    color: dict[str, int] = {}
    for root in graph:
        if root in color:
            continue
        stack = [(root, iter(graph[root]))]
        path = [root]
        color[root] = 1
        while stack:
            node, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                color[node] = 2
                stack.pop()
                path.pop()
            elif color.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            elif nxt not in color:
                color[nxt] = 1
                path.append(nxt)
                stack.append((nxt, iter(graph[nxt])))
    return None


def claim_next(
    store: Store,
    swarm_id: str,
    agent_id: str,
    lease_seconds: float,
    *,
    max_attempts: int,
    max_active_agents: int | None = None,
) -> Claim:
    """Give the agent its next ready task under a lease: its own assignments first, then unassigned work."""
    expire_leases(store, swarm_id, max_attempts)
    with store.transaction() as conn:
        require(conn, swarm_id)
        agent = require_agent(conn, swarm_id, agent_id)
        active = conn.execute(
            "SELECT COUNT(*) FROM tasks WHERE swarm_id = ? AND status = 'claimed' AND lease_owner = ?",
            (swarm_id, agent_id),
        ).fetchone()[0]
        if active >= agent["capacity"]:
            return Claim(
                claimed=False,
                reason=f"agent {agent_id!r} already holds {active} claim(s), its capacity; report an outcome first",
            )
        if max_active_agents is not None and active == 0:
            busy = conn.execute(
                "SELECT COUNT(DISTINCT lease_owner) FROM tasks WHERE swarm_id = ? AND status = 'claimed'",
                (swarm_id,),
            ).fetchone()[0]
            if busy >= max_active_agents:
                return Claim(
                    claimed=False,
                    reason=f"{busy} agents are already active in this swarm, the limit of the current "
                    f"operating phase ({max_active_agents}); try again when one reports",
                )
        row = conn.execute(
            f"SELECT t.id FROM tasks t WHERE t.swarm_id = ? AND {READY_SQL} "
            "AND (t.assignee = ? OR t.assignee IS NULL) "
            "ORDER BY (t.assignee = ?) DESC, t.priority DESC, t.seq ASC LIMIT 1",
            (swarm_id, agent_id, agent_id),
        ).fetchone()
        if row is None:
            waiting = conn.execute(
                f"SELECT COUNT(*) FROM tasks t WHERE t.swarm_id = ? AND {READY_SQL} AND t.assignee != ?",
                (swarm_id, agent_id),
            ).fetchone()[0]
            reason = "nothing ready for this agent"
            if waiting:
                reason += f" ({waiting} ready task(s) are assigned to other agents)"
            return Claim(claimed=False, reason=reason)
        now = time.time()
        conn.execute(
            # An estimate made for another agent says nothing about this one: it does not follow the task.
            "UPDATE tasks SET status = 'claimed', lease_owner = ?, lease_expires_at = ?, "
            "p_success = CASE WHEN assignee = ? THEN p_success END, "
            "confidence = CASE WHEN assignee = ? THEN confidence END, assignee = ?, "
            "attempts = attempts + 1, updated_at = ? WHERE swarm_id = ? AND id = ?",
            (agent_id, now + lease_seconds, agent_id, agent_id, agent_id, now, swarm_id, row["id"]),
        )
        views, _ = task_views(conn, swarm_id, ids=[row["id"]])
    return Claim(claimed=True, task=views[0], lease_expires_in_s=lease_seconds)


def report(
    store: Store,
    swarm_id: str,
    task_id: str,
    agent_id: str,
    success: bool,
    summary: str,
    duration_s: float | None,
    *,
    max_attempts: int,
) -> OutcomeReceipt:
    """Record an outcome; success closes the task, failure re-offers it until attempts run out."""
    with store.transaction() as conn:
        require(conn, swarm_id)
        require_agent(conn, swarm_id, agent_id)
        task = conn.execute("SELECT * FROM tasks WHERE swarm_id = ? AND id = ?", (swarm_id, task_id)).fetchone()
        if task is None:
            raise NotFound(f"unknown task {task_id!r} in swarm {swarm_id!r}")
        if task["status"] in ("succeeded", "failed"):
            raise Conflict(f"task {task_id!r} is already {task['status']}; its outcome was recorded")
        if task["status"] == "claimed" and task["lease_owner"] != agent_id:
            raise Conflict(f"task {task_id!r} is claimed by {task['lease_owner']!r}, not {agent_id!r}")
        note = None
        if task["status"] == "open":
            note = "reported without a live claim (lease expired or never claimed); recorded anyway"
        attempts = max(task["attempts"], 1)
        now = time.time()
        if success:
            new_status, error = "succeeded", None
        elif attempts >= max_attempts:
            new_status, error = "failed", f"failed {attempts} time(s), the limit; last: {summary or 'no summary'}"
        else:
            new_status, error = "open", f"attempt {attempts} failed: {summary or 'no summary'}"
        conn.execute(
            "UPDATE tasks SET status = ?, lease_owner = NULL, lease_expires_at = NULL, attempts = ?, "
            "assignee = CASE WHEN ? = 'open' THEN NULL ELSE assignee END, last_error = ?, result = ?, "
            "updated_at = ? WHERE swarm_id = ? AND id = ?",
            (new_status, attempts, new_status, error, summary if success else None, now, swarm_id, task_id),
        )
        p = task["p_success"] if task["assignee"] == agent_id else None
        cur = conn.execute(
            "INSERT INTO outcomes (swarm_id, task_id, agent_id, task_text, success, summary, duration_s, "
            "p_success, created_at) VALUES (?,?,?,?,?,?,?,?,?)",
            (swarm_id, task_id, agent_id, task["description"], int(success), summary, duration_s, p, now),
        )
        scores.record_outcome(conn, swarm_id, task_id, agent_id, success)
        unblocked: list[str] = []
        if success:
            unblocked = [
                r["id"]
                for r in conn.execute(
                    f"SELECT t.id FROM tasks t JOIN task_deps d ON d.swarm_id = t.swarm_id AND d.task_id = t.id "
                    f"WHERE t.swarm_id = ? AND d.depends_on = ? AND {READY_SQL} ORDER BY t.seq",
                    (swarm_id, task_id),
                )
            ]
        views, _ = task_views(conn, swarm_id, ids=[task_id])
    return OutcomeReceipt(
        task_id=task_id,
        state=views[0].state,
        attempts=attempts,
        outcome_id=cur.lastrowid or 0,
        unblocked=unblocked,
        note=note,
    )
