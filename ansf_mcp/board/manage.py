"""Managing tasks already on the board: read one, edit it, retry it, cancel it; and what holds for an agent that
got no task (wait, done, or blocked by a failed task).

Each write runs inside the caller's transaction on the task row it locked, and decides on that row only:
- edits (description, priority, dependencies) only while nobody holds the task and it is not finished; new
  dependencies must exist and must not close a cycle;
- retry puts a failed or cancelled task back on the board with its attempts reset;
- cancel ends a ready, blocked or failed task, and every unfinished task that depends on it, directly or through
  others, is cancelled with it (it could never run: a dependency counts only once it succeeded). To let
  dependents go on without it, edit their dependencies first.
"""

from __future__ import annotations

from ansf_mcp.board.errors import BoardError, Refused
from ansf_mcp.board.lifecycle import STATE_SQL, BoardPolicy, params, state_counts
from ansf_mcp.board.models import NextStatus, OutcomeView, TaskChange, TaskDetail, TaskEdit
from ansf_mcp.board.tasks import find_cycle, task_row, to_views
from ansf_mcp.store.base import Connection, Row

FINISHED = ("succeeded", "failed", "cancelled")
RECENT_OUTCOMES = 5
# Who can put a failed or cancelled task back. manage_task is a board tool; workers started with `--tools agent`
# do not have it, so the advice names who does instead of telling every caller to use it.
RETRY_ADVICE = ('a client with the board tools (a lead; workers started with --tools agent lack them) can put it '
                'back with manage_task(action="retry")')


def detail(conn: Connection, policy: BoardPolicy, now: float, swarm_id: str, task_id: str) -> TaskDetail:
    """One task whole: its view, the tasks that depend on it, and its last outcomes."""
    row = task_row(conn, policy, now, swarm_id, task_id)
    dependents = [r[0] for r in conn.execute(
        "SELECT d.task_id FROM task_deps d JOIN tasks t ON t.swarm_id = d.swarm_id AND t.id = d.task_id "
        "WHERE d.swarm_id = ? AND d.depends_on = ? ORDER BY t.seq", (swarm_id, task_id))]
    outcomes = [
        OutcomeView(agent=r["agent_id"], success=bool(r["success"]), summary=r["summary"] or "",
                    claim=r["claim_seq"], duration_s=r["duration_s"])
        for r in conn.execute(
            "SELECT agent_id, success, summary, claim_seq, duration_s FROM outcomes WHERE swarm_id = ? AND task_id = ? "
            "ORDER BY id DESC LIMIT ?", (swarm_id, task_id, RECENT_OUTCOMES))
    ]
    return TaskDetail(task=to_views(conn, swarm_id, [row], now)[0], dependents=dependents,
                      recent_outcomes=outcomes)


def edit(conn: Connection, policy: BoardPolicy, now: float, swarm_id: str, task_id: str, change: TaskEdit,
         lock: str = "") -> TaskChange:
    task = task_row(conn, policy, now, swarm_id, task_id, lock)
    if task["state"] == "claimed":
        raise Refused(f"task {task_id!r} is claimed by {task['lease_owner']!r}; it can be edited once it is released "
                      "or its lease runs out")
    if task["state"] in FINISHED:
        raise Refused(f"task {task_id!r} is already {task['state']}; a finished task is not edited "
                      "(retry a failed or cancelled one first)")
    changed: list[str] = []
    if change.description is not None and change.description != task["description"]:
        conn.execute("UPDATE tasks SET description = ? WHERE swarm_id = ? AND id = ?",
                     (change.description, swarm_id, task_id))
        changed.append("description")
    if change.priority is not None and change.priority != task["priority"]:
        conn.execute("UPDATE tasks SET priority = ? WHERE swarm_id = ? AND id = ?", (change.priority, swarm_id, task_id))
        changed.append("priority")
    if change.depends_on is not None:
        new = list(dict.fromkeys(change.depends_on))
        old = [r[0] for r in conn.execute("SELECT depends_on FROM task_deps WHERE swarm_id = ? AND task_id = ?",
                                          (swarm_id, task_id))]
        if set(new) != set(old):
            _check_dependencies(conn, swarm_id, task_id, new)
            conn.execute("DELETE FROM task_deps WHERE swarm_id = ? AND task_id = ?", (swarm_id, task_id))
            conn.executemany("INSERT INTO task_deps (swarm_id, task_id, depends_on) VALUES (?, ?, ?)",
                             [(swarm_id, task_id, d) for d in new])
            changed.append("depends_on")
    if changed:
        conn.execute("UPDATE tasks SET updated_at = ? WHERE swarm_id = ? AND id = ?", (now, swarm_id, task_id))
    state = task_row(conn, policy, now, swarm_id, task_id)["state"]
    return TaskChange(task_id=task_id, action="edit", state=state, attempts=task["attempts"], changed=changed,
                      note=None if changed else "nothing differed from the task as it was; nothing was written")


def _check_dependencies(conn: Connection, swarm_id: str, task_id: str, new: list[str]) -> None:
    if task_id in new:
        raise BoardError(f"task {task_id!r} cannot depend on itself")
    graph: dict[str, list[str]] = {}
    for r in conn.execute("SELECT id FROM tasks WHERE swarm_id = ?", (swarm_id,)):
        graph[r[0]] = []
    unknown = [d for d in new if d not in graph]
    if unknown:
        raise BoardError(f"task {task_id!r} cannot depend on unknown task(s) {', '.join(map(repr, unknown))}")
    for r in conn.execute("SELECT task_id, depends_on FROM task_deps WHERE swarm_id = ?", (swarm_id,)):
        if r[0] != task_id:
            graph[r[0]].append(r[1])
    graph[task_id] = new
    cycle = find_cycle(graph)
    if cycle:
        raise BoardError("these dependencies would close a cycle: " + " -> ".join(cycle) + "; nothing was changed")


def retry(conn: Connection, policy: BoardPolicy, now: float, swarm_id: str, task_id: str, reason: str,
          lock: str = "") -> TaskChange:
    task = task_row(conn, policy, now, swarm_id, task_id, lock)
    if task["state"] not in ("failed", "cancelled"):
        last = task["last_error"] or ""
        # The text a retry writes, up to what it was before: the same retry again finds it on a task nobody has
        # claimed since (a claim clears the attempts' zero, a release or an outcome rewrites the text).
        if (task["state"] in ("ready", "blocked") and task["attempts"] == 0
                and last.startswith(f"{_retried(reason)} (before: ")):
            return TaskChange(task_id=task_id, action="retry", state=task["state"], attempts=0, changed=[],
                              note=f"a repeat: an earlier retry{' with the same reason' if reason else ''} already "
                                   f"put it back on the board, so nothing was written ({last})")
        since = f" (its last change: {last})" if last.startswith("retried") else ""
        raise Refused(f"task {task_id!r} is {task['state']}{since}; only a failed or cancelled task is retried")
    before = task["last_error"] or task["state"]
    conn.execute(
        "UPDATE tasks SET status = 'open', attempts = 0, assignee = NULL, lease_owner = NULL, lease_expires_at = NULL, "
        "last_error = ?, updated_at = ? WHERE swarm_id = ? AND id = ?",
        (f"{_retried(reason)} (before: {before})", now, swarm_id, task_id),
    )
    state = task_row(conn, policy, now, swarm_id, task_id)["state"]
    return TaskChange(
        task_id=task_id, action="retry", state=state, attempts=0, changed=["state", "attempts"],
        note=f"back on the board with its attempts reset from {task['attempts']} to 0 "
             f"({policy.max_attempts} more allowed); any agent may take it",
    )


def _retried(reason: str) -> str:
    return f"retried{': ' + reason if reason else ''}"


def _cancelled_with(task_id: str) -> str:
    return f"cancelled with {task_id!r}, which it depends on"


def cancel(conn: Connection, policy: BoardPolicy, now: float, swarm_id: str, task_id: str, reason: str,
           lock: str = "") -> TaskChange:
    task = task_row(conn, policy, now, swarm_id, task_id, lock)
    why = f"cancelled{': ' + reason if reason else ''}"
    if task["state"] == "claimed":
        raise Refused(f"task {task_id!r} is claimed by {task['lease_owner']!r}; the holder can release_task it (or "
                      "its lease runs out), then cancel it")
    if task["state"] == "cancelled" and task["last_error"] == why:
        # Cancelled for the same reason: this call's effect is in place (a retry after a lost answer). The tasks
        # cancelled with it are those still marked so; a cancelled task changes only by a retry, which rewrites that.
        cascaded = [r[0] for r in conn.execute(
            "SELECT id FROM tasks WHERE swarm_id = ? AND status = 'cancelled' AND last_error = ? ORDER BY seq",
            (swarm_id, _cancelled_with(task_id)))]
        return TaskChange(task_id=task_id, action="cancel", state="cancelled", attempts=task["attempts"], changed=[],
                          cancelled=cascaded,
                          note=f"a repeat: an earlier call already cancelled it{' for the same reason' if reason else ''}, "
                               "so nothing was written")
    if task["state"] in ("succeeded", "cancelled"):
        how = f" ({task['last_error']})" if task["state"] == "cancelled" and task["last_error"] else ""
        raise Refused(f"task {task_id!r} is already {task['state']}{how}; there is nothing to cancel")
    dependents = _unfinished_dependents(conn, policy, now, swarm_id, task_id)
    ids = [task_id, *(r["id"] for r in dependents)]
    conn.executemany(
        "UPDATE tasks SET status = 'cancelled', assignee = NULL, last_error = ?, updated_at = ? "
        "WHERE swarm_id = ? AND id = ?",
        [(why if tid == task_id else _cancelled_with(task_id), now, swarm_id, tid) for tid in ids],
    )
    cascaded = ids[1:]
    return TaskChange(
        task_id=task_id, action="cancel", state="cancelled", attempts=task["attempts"], changed=["state"],
        cancelled=cascaded,
        note=(f"{len(cascaded)} task(s) that depend on it were cancelled too (they could never run)" if cascaded
              else "no unfinished task depended on it"),
    )


def _unfinished_dependents(conn: Connection, policy: BoardPolicy, now: float, swarm_id: str, task_id: str
                           ) -> list[Row]:
    """Every unfinished task that depends on `task_id`, directly or through others, in board order (none of them
    can be claimed: a claim needs every dependency succeeded, and a claimed task's dependencies are not edited)."""
    found: dict[str, Row] = {}
    frontier = [task_id]
    while frontier:
        marks = ", ".join(f":d{i}" for i in range(len(frontier)))
        rows = conn.execute(
            f"SELECT t.id, t.seq, {STATE_SQL} AS state FROM task_deps d JOIN tasks t "
            f"ON t.swarm_id = d.swarm_id AND t.id = d.task_id WHERE d.swarm_id = :swarm AND d.depends_on IN ({marks})",
            params(policy, now, swarm=swarm_id, **{f"d{i}": d for i, d in enumerate(frontier)}),
        ).fetchall()
        frontier = []
        for r in rows:
            if r["id"] not in found and r["state"] not in FINISHED:
                found[r["id"]] = r
                frontier.append(r["id"])
    return sorted(found.values(), key=lambda r: r["seq"])


def standing(conn: Connection, policy: BoardPolicy, now: float, swarm_id: str) -> tuple[NextStatus, list[str], str]:
    """What holds for an agent that got no task: (status, the failed or cancelled tasks that block the rest, why).
    done: nothing unfinished; blocked: unfinished work, none of it ready or running, so every blocked task waits
    (through others) on a task that failed or was cancelled; wait: anything else."""
    counts = state_counts(conn, policy, now, swarm_id)
    if counts["ready"] + counts["blocked"] + counts["claimed"] == 0:
        return "done", [], "nothing is left for this swarm: every task succeeded, failed or was cancelled"
    if counts["ready"] or counts["claimed"]:
        return "wait", [], ""
    dead = [r[0] for r in conn.execute(
        """SELECT dep.id FROM tasks dep WHERE dep.swarm_id = ? AND dep.status IN ('failed', 'cancelled')
           AND EXISTS (SELECT 1 FROM task_deps d JOIN tasks t ON t.swarm_id = d.swarm_id AND t.id = d.task_id
                       WHERE d.swarm_id = dep.swarm_id AND d.depends_on = dep.id AND t.status = 'open')
           ORDER BY dep.seq""", (swarm_id,))]
    return ("blocked", dead,
            f"the {counts['blocked']} task(s) left can never run: they wait on {', '.join(map(repr, dead))}, which "
            f"failed its last attempt (or was cancelled); {RETRY_ADVICE}, or cancel it with its dependents")
