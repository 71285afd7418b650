"""Tasks on the board: adding them (dependencies, cycles) and reading them as views.

The lifecycle rules (what state a task is in, claims, leases, outcomes) live in lifecycle.py and board.py.
"""

from __future__ import annotations

import time
from collections import defaultdict

from ansf_mcp.board.errors import BoardError, Conflict, NotFound, Repeat
from ansf_mcp.board.lifecycle import STATE_SQL, BoardPolicy, params
from ansf_mcp.board.models import MAX_TASKS_PER_CALL, TaskSpec, TaskView
from ansf_mcp.store.base import Connection, Row

Deps = dict[str, list[tuple[str, str]]]


def deps_query(swarm_id: str, ids: list[str]) -> tuple[str, tuple[str, ...]]:
    """The dependencies of (at most 500) tasks with their status: rows (task id, dependency id, status)."""
    marks = ",".join("?" * len(ids))
    return ("SELECT d.task_id, d.depends_on, dep.status FROM task_deps d JOIN tasks dep "
            f"ON dep.swarm_id = d.swarm_id AND dep.id = d.depends_on WHERE d.swarm_id = ? AND d.task_id IN ({marks})",
            (swarm_id, *ids))


def deps_from(rows: list[Row], into: Deps | None = None) -> Deps:
    deps: Deps = defaultdict(list) if into is None else into
    for r in rows:
        deps[r[0]].append((r[1], r[2]))
    return deps


def _deps_of(conn: Connection, swarm_id: str, ids: list[str]) -> Deps:
    """task id -> [(dependency id, dependency status)] for the given tasks only."""
    deps: Deps = defaultdict(list)
    for start in range(0, len(ids), 500):  # SQLite caps the number of bound parameters
        deps_from(conn.execute(*deps_query(swarm_id, ids[start : start + 500])).fetchall(), deps)
    return deps


TASK_COLUMNS = f"t.*, {STATE_SQL} AS state"


def task_rows(conn: Connection, policy: BoardPolicy, now: float, swarm_id: str, where: str = "",
              extra: dict | None = None, limit: int = -1) -> list[Row]:
    """Task rows with their `state`, in board order; `where` may use `state` and the named parameters."""
    return conn.execute(
        f"SELECT * FROM (SELECT {TASK_COLUMNS} FROM tasks t WHERE t.swarm_id = :swarm) AS board "
        f"{'WHERE ' + where if where else ''} ORDER BY seq{' LIMIT :limit' if limit >= 0 else ''}",
        params(policy, now, swarm=swarm_id, limit=limit, **(extra or {})),
    ).fetchall()


def task_query(policy: BoardPolicy, now: float, swarm_id: str, task_id: str, lock: str = ""
               ) -> tuple[str, dict[str, object]]:
    """One task's row with its state; `lock` (the store's `for_update`) holds it until the transaction ends."""
    return (f"SELECT {TASK_COLUMNS} FROM tasks t WHERE t.swarm_id = :swarm AND t.id = :task{lock}",
            params(policy, now, swarm=swarm_id, task=task_id))


def one_task(rows: list[Row], swarm_id: str, task_id: str) -> Row:
    """The one row `task_query` read, or NotFound."""
    if not rows:
        raise NotFound(f"unknown task {task_id!r} in swarm {swarm_id!r}; swarm_status(swarm_id) lists its tasks")
    return rows[0]


def task_row(conn: Connection, policy: BoardPolicy, now: float, swarm_id: str, task_id: str, lock: str = "") -> Row:
    """One task's row with its state; `lock` (the store's `for_update`) holds it until the transaction ends."""
    return one_task(conn.execute(*task_query(policy, now, swarm_id, task_id, lock)).fetchall(), swarm_id, task_id)


def to_views(conn: Connection, swarm_id: str, rows: list[Row], now: float, deps: Deps | None = None
             ) -> list[TaskView]:
    """The rows as views; `deps` when the caller already read them (deps_query)."""
    if deps is None:
        deps = _deps_of(conn, swarm_id, [r["id"] for r in rows])
    views = []
    for r in rows:
        state = r["state"]
        expired = r["status"] == "claimed" and state != "claimed"
        blockers = [d for d, status in deps.get(r["id"], []) if status != "succeeded"]
        views.append(
            TaskView.model_construct(  # straight from our own rows: nothing to validate, and it is the hot path
                id=r["id"],
                description=r["description"],
                priority=r["priority"],
                state=state,
                depends_on=[d for d, _ in deps.get(r["id"], [])],
                assignee=None if expired else r["assignee"],
                p_success=r["p_success"],
                strategy=r["strategy"],
                lease_owner=r["lease_owner"] if state == "claimed" else None,
                lease_expires_in_s=round(r["lease_expires_at"] - now, 3) if state == "claimed" else None,
                attempts=r["attempts"],
                claim=r["claim_seq"] or None,
                blocked_by=blockers if state == "blocked" else [],
                last_error=expiry_note(r) if expired else r["last_error"],
                result=r["result"],
            )
        )
    return views


def expiry_note(row: Row) -> str:
    """Why a task whose lease ran out is re-offered (or failed), as its last_error."""
    note = f"lease of {row['lease_owner']!r} expired"
    return f"{note}; gave up after {row['attempts']} attempts" if row["state"] == "failed" else note


# A cycle named whole was cut at the error cap mid-id: its length and where it closes were lost.
CYCLE_SHOWN = 12


def cycle_text(cycle: list[str]) -> str:
    """A closed path (first id repeated last) in one bounded sentence: whole when short, else its start, its
    length and the id that closes it."""
    if len(cycle) <= CYCLE_SHOWN + 1:
        return "dependency cycle: " + " -> ".join(cycle)
    return (f"dependency cycle of {len(cycle) - 1} tasks: " + " -> ".join(cycle[:CYCLE_SHOWN - 2])
            + f" -> … -> {cycle[-2]} -> {cycle[-1]}; nothing was written")


def plan_tasks(conn: Connection, swarm_id: str, specs: list[TaskSpec]) -> list[str]:
    """The ids `insert_tasks` would give these tasks now; refuses unknown dependencies and cycles. Reads only."""
    return _plan(conn, swarm_id, specs)[0]


def insert_tasks(conn: Connection, swarm_id: str, specs: list[TaskSpec], now: float | None = None) -> list[str]:
    """Add tasks inside the caller's transaction; refuses unknown dependencies and cycles. Returns the ids."""
    ids, seq0 = _plan(conn, swarm_id, specs)
    new = dict(zip(ids, specs, strict=True))
    now = time.time() if now is None else now
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


def _plan(conn: Connection, swarm_id: str, specs: list[TaskSpec]) -> tuple[list[str], int]:
    if not specs:
        raise BoardError("no tasks given")
    if len(specs) > MAX_TASKS_PER_CALL:
        raise BoardError(f"{len(specs)} tasks in one call; at most {MAX_TASKS_PER_CALL} per call")
    seq0 = conn.execute("SELECT COALESCE(MAX(seq), -1) + 1 FROM tasks WHERE swarm_id = ?", (swarm_id,)).fetchone()[0]
    # Only the ids these specs could collide with or depend on are read, not the whole board (which grows with
    # every call): the explicit ids, the dependencies, and generated ids from seq0 on, a window at a time.
    n_generated = sum(1 for s in specs if s.id is None)
    existing = _present(conn, swarm_id, {s.id for s in specs if s.id is not None}
                        | {d for s in specs for d in s.depends_on}
                        | {f"task-{c}" for c in range(seq0, seq0 + n_generated)})
    checked = seq0 + n_generated
    # Explicit ids are checked, and reserved, before any id is generated: a generated id skips an explicit one
    # that comes later in the call, and a duplicate within the call is named as such, not as one on the board.
    explicit: dict[str, int] = {}
    for k, spec in enumerate(specs):
        if spec.id is None:
            continue
        if spec.id in explicit:
            raise Conflict(f"task id {spec.id!r} appears twice in this call (tasks[{explicit[spec.id]}] and "
                           f"tasks[{k}]); each task needs its own id")
        explicit[spec.id] = k
    on_board = [spec for spec in specs if spec.id is not None and spec.id in existing]
    if on_board:
        _already_there(conn, swarm_id, specs, on_board)
    ids: list[str] = []
    taken = set(existing) | explicit.keys()
    counter = seq0
    for spec in specs:
        if spec.id is not None:
            ids.append(spec.id)
            continue
        while True:
            if counter >= checked:
                taken |= _present(conn, swarm_id, {f"task-{c}" for c in range(checked, checked + n_generated)})
                checked += n_generated
            if f"task-{counter}" not in taken:
                break
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
    cycle = find_cycle({t: [d for d in s.depends_on if d in new] for t, s in new.items()})
    if cycle:
        raise BoardError(cycle_text(cycle))
    return ids, seq0


# How much of a differing text an error quotes: enough to recognise it, not a whole description.
QUOTED = 60


def _quote(value: object) -> str:
    text = repr(value)
    return text if len(text) <= QUOTED else text[: QUOTED - 1] + "…"


def _already_there(conn: Connection, swarm_id: str, specs: list[TaskSpec], on_board: list[TaskSpec]) -> None:
    """Some ids of the call are on the board (read only on this path: the new tasks' ids were read anyway).
    Raises Repeat when every task of the call is there exactly as given (a client retrying a call whose answer
    it lost); otherwise a Conflict that names what differs. Either way nothing of the call is written."""
    ids = [s.id for s in on_board]
    rows: dict[str, Row] = {}
    for start in range(0, len(ids), 500):  # SQLite caps the number of bound parameters
        chunk = ids[start : start + 500]
        rows.update((r["id"], r) for r in conn.execute(
            # With what the answer to a repeat says (assign.repeated), so the repeat is answered from this read.
            "SELECT id, description, priority, status, assignee, p_success, confidence, strategy, last_error "
            f"FROM tasks WHERE swarm_id = ? AND id IN ({','.join('?' * len(chunk))})", (swarm_id, *chunk)))
    gone = [i for i in ids if i not in rows]
    if gone:  # the board changed between the two reads (a dissolve, on PostgreSQL, whose plan is no one transaction)
        raise Conflict(f"task(s) {gone!r} left this swarm's board while this call read it; nothing of this call was "
                       "written: check swarm_status, then call again")
    deps = _deps_of(conn, swarm_id, ids)
    for spec in on_board:
        row = rows[spec.id]
        there = sorted({dep for dep, _ in deps.get(spec.id, [])})
        differs = []
        if row["description"] != spec.description:
            differs.append(f"description {_quote(row['description'])} there, {_quote(spec.description)} here")
        if row["priority"] != spec.priority:
            differs.append(f"priority {row['priority']} there, {spec.priority} here")
        if there != sorted(set(spec.depends_on)):
            differs.append(f"depends_on {there} there, {sorted(set(spec.depends_on))} here")
        if differs:
            raise Conflict(f"task id {spec.id!r} is already on this swarm's board with other content ("
                           + "; ".join(differs) + "); a task id names one task, so nothing of this call was "
                           "written: give the new task another id, or manage_task(action='edit') the one there")
    if len(on_board) == len(specs):
        raise Repeat(f"all {len(ids)} task(s) of this call are already on this swarm's board as given", ids, rows)
    new = [s.id for s in specs if s.id is not None and s.id not in rows]
    anonymous = sum(1 for s in specs if s.id is None)
    rest = []
    if new:
        rest.append(f"{', '.join(map(repr, new[:5]))}{', ...' if len(new) > 5 else ''} "
                    f"{'is' if len(new) == 1 else 'are'} not")
    if anonymous:
        rest.append(f"{anonymous} task(s) without an id cannot be recognised")
    raise Conflict(f"task(s) {', '.join(map(repr, ids[:5]))}{', ...' if len(ids) > 5 else ''} of this call are "
                   f"already on this swarm's board as given, but {' and '.join(rest)}: this is not a repeat of one earlier call, "
                   "so nothing of it was written; send only the tasks that are not on the board yet")


def _present(conn: Connection, swarm_id: str, ids: set[str]) -> set[str]:
    """Which of these task ids are on the swarm's board."""
    wanted = sorted(ids)
    found: set[str] = set()
    for start in range(0, len(wanted), 500):  # SQLite caps the number of bound parameters
        chunk = wanted[start : start + 500]
        found.update(r[0] for r in conn.execute(
            f"SELECT id FROM tasks WHERE swarm_id = ? AND id IN ({','.join('?' * len(chunk))})", (swarm_id, *chunk)))
    return found


def find_cycle(graph: dict[str, list[str]]) -> list[str] | None:
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


