"""The board: swarms, coordination, claims under leases, renewals, releases, reassignment, outcomes, messages,
and the views of it — the one façade the tools and the dashboard use.

One object, built once by the runtime, holds the policy (attempt limit, lease length, takeover grace), the
operating phase's limits (neural model allowed, active agents per swarm) and the clock, so no caller threads them
through and tests move time instead of sleeping. Every state it reads comes from lifecycle.STATE_SQL.

The event loop never waits on storage: the server calls the board's blocking methods through `read` and `write`,
which run them in bounded thread pools of their own (reads apart, so they never queue behind writers waiting
for a lock); the store bounds every wait with its time-out.

An agent that gets no task is told what holds (wait, done, or blocked by a failed task) and may wait for the board
to change (`next`); tasks nobody holds can be edited, retried or cancelled (board/manage.py).

Rules that keep a history honest:
- an outcome is accepted only from the agent that holds a live lease on the task; anything else is refused with
  the task's state and holder, and nothing is written;
- one outcome per claim: the same report again gets the first answer back and writes no second row;
- a call repeated after its answer was lost, whose effect is already in place (the same release, cancel or retry,
  a reassignment as it stands, a dissolved swarm, a coordinate call whose tasks are on the board as given), is
  answered as a repeat and writes nothing; where a repeat cannot be told apart, the refusal says the state;
- a released claim does not count as an attempt; an expired one does;
- every claim has a number (tasks.claim_seq, the lease's fencing number); a caller that names its claim is
  refused once that claim is over, even if the same agent holds a newer one.

Several processes (SQLite) or replicas (PostgreSQL) share one board: writers decide on rows they hold — SQLite's
BEGIN IMMEDIATE serialises them, PostgreSQL locks the task (and, for claims, the agent) row, and a claim passes
over tasks another replica is claiming at that moment (`FOR UPDATE SKIP LOCKED`).
"""

from __future__ import annotations

import contextlib
import functools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import anyio

from ansf_mcp import heap, trace
from ansf_mcp.board import manage, messages, presets, scores, swarms
from ansf_mcp.board.errors import Conflict, Refused
from ansf_mcp.board.lifecycle import (
    LEASE_EXPIRED_SQL,
    LEASE_LIVE_SQL,
    STATE_SQL,
    TASK_STATES,
    BoardPolicy,
    Clock,
    params,
    state_counts,
    state_counts_by_swarm,
    system_clock,
)
from ansf_mcp.board.lookup import agent_rows, require, require_agent
from ansf_mcp.board.models import (
    AgentSpec,
    AgentView,
    BoardDecision,
    Claim,
    DissolveReceipt,
    HeldClaim,
    LeaseReceipt,
    ManageAction,
    MessageView,
    OutcomeReceipt,
    ReassignReceipt,
    ReleaseReceipt,
    SentMessage,
    SwarmSummary,
    SwarmView,
    TaskChange,
    TaskDetail,
    TaskEdit,
    TaskSpec,
    TaskView,
    Topology,
)
from ansf_mcp.board.tasks import deps_from, deps_query, one_task, task_query, task_row, task_rows, to_views
from ansf_mcp.coordinator import scoring
from ansf_mcp.coordinator.episode import ModelUnavailable
from ansf_mcp.coordinator.scoring import AUTO_CANDIDATES, AutoChoice, EstimatorScore, Tally, choose
from ansf_mcp.coordinator.warmup import ModelWarmer
from ansf_mcp.governor.phases import PhaseLimits
from ansf_mcp.store.base import Connection, Row, Store, StoreError

T = TypeVar("T")

# A waiting next_task tries again at least this often (a lease that ran out changes no row until someone writes).
RECHECK_S = 5.0
MAX_WAIT_S = 60.0


def board_news_key(swarm_id: str) -> str:
    return f"board:{swarm_id}"


# When a ready task's assignee was last seen, or when the task was put up if later (takeovers count from there).
PINNED_SINCE_SQL = "(CASE WHEN COALESCE(a.last_seen_at, 0) > t.updated_at THEN a.last_seen_at ELSE t.updated_at END)"
SEEN_SQL = "UPDATE agents SET last_seen_at = ? WHERE swarm_id = ? AND id = ?"
# Open claims only (`claims_open`, a partial index): the expiry does not grow with the board's history.
EXPIRE_CLAIMS_SQL = f"""UPDATE claims SET ended_at = :now, ended = 'expired'
WHERE claims.swarm_id = :swarm AND ended IS NULL AND EXISTS (
    SELECT 1 FROM tasks t WHERE t.swarm_id = claims.swarm_id AND t.id = claims.task_id
    AND t.claim_seq = claims.claim_seq AND t.swarm_id = :swarm AND {LEASE_EXPIRED_SQL})"""
EXPIRE_TASKS_SQL = f"""UPDATE tasks AS t SET
    status = CASE WHEN t.attempts >= :max_attempts THEN 'failed' ELSE 'open' END,
    last_error = 'lease of ''' || t.lease_owner || ''' expired' ||
        CASE WHEN t.attempts >= :max_attempts
             THEN '; gave up after ' || t.attempts || ' attempts' ELSE '' END,
    lease_owner = NULL, lease_expires_at = NULL, assignee = NULL, updated_at = :now
WHERE t.swarm_id = :swarm AND {LEASE_EXPIRED_SQL}"""
# Live claims of :agent (after the expiry above), and agents holding any in the swarm.
ACTIVE_SQL = "SELECT COUNT(*) FROM tasks WHERE swarm_id = :swarm AND status = 'claimed' AND lease_owner = :agent"
BUSY_SQL = "SELECT COUNT(DISTINCT lease_owner) FROM tasks WHERE swarm_id = :swarm AND status = 'claimed'"
# Ready work :agent may take: its own first, then unassigned work, then work pinned to an agent that cannot take
# it now — busy up to its capacity (work goes to whoever is free) or away longer than the grace. The agent's own
# capacity (and, with :max_active, the phase's limit on active agents) is checked here too, so a claim that will
# be refused locks no task. The store's `skip_locked` is appended: on PostgreSQL a task another replica is
# claiming right now is passed over, never waited for or handed out twice.
# Work pinned to another agent counts that agent's live claims only for that task (most candidates are the
# agent's own or unassigned, so the count is rarely made; counting every agent's claims first cost more).
HOLDS_SQL = """(SELECT COUNT(*) FROM tasks h WHERE h.swarm_id = t.swarm_id AND h.status = 'claimed'
    AND h.lease_owner = t.assignee AND h.lease_expires_at >= :now)"""
CANDIDATE_SQL = f"""SELECT t.id, t.seq, t.priority, t.assignee, t.claim_seq, {PINNED_SINCE_SQL} AS pinned_since,
       CASE WHEN t.assignee != :agent THEN {HOLDS_SQL} END AS assignee_holds, a.capacity AS assignee_capacity
FROM tasks t LEFT JOIN agents a ON a.swarm_id = t.swarm_id AND a.id = t.assignee
WHERE t.swarm_id = :swarm AND t.status IN ('open', 'claimed') AND {STATE_SQL} = 'ready'
  AND (t.assignee IS NULL OR t.assignee = :agent OR a.id IS NULL OR {PINNED_SINCE_SQL} <= :cutoff
       OR {HOLDS_SQL} >= a.capacity)
  AND ({ACTIVE_SQL}) < (SELECT capacity FROM agents WHERE swarm_id = :swarm AND id = :agent)
  AND (:max_active < 0 OR ({ACTIVE_SQL}) > 0 OR ({BUSY_SQL}) < :max_active)
ORDER BY CASE WHEN t.assignee = :agent THEN 0 WHEN t.assignee IS NULL THEN 1 ELSE 2 END,
         t.priority DESC, t.seq ASC LIMIT 1"""

# Dependents a success made ready: found through the index on task_deps first, so only their states are computed
# (a join from task_deps: PostgreSQL, without statistics yet, scanned every task of the swarm for the IN form).
UNBLOCKED_SQL = f"""SELECT t.id FROM task_deps d JOIN tasks t ON t.swarm_id = d.swarm_id AND t.id = d.task_id
WHERE d.swarm_id = :swarm AND d.depends_on = :task AND {STATE_SQL} = 'ready' ORDER BY t.seq"""


HELD_SQL = ("SELECT id, claim_seq, lease_expires_at FROM tasks WHERE swarm_id = ? AND status = 'claimed' "
            "AND lease_owner = ? ORDER BY seq LIMIT 5")


def _full(conn: Connection, swarm_id: str, agent_id: str, active: int, now: float) -> Claim:
    # Named, with their numbers: an agent whose claim's answer was lost (a relay restarted mid-call, a client
    # that crashed) can report or release it; "holds 1 claim" alone left it, and the swarm, stuck for a lease.
    held = [HeldClaim(task=r[0], claim=r[1], lease_expires_in_s=round(max(0.0, r[2] - now), 1))
            for r in conn.execute(HELD_SQL, (swarm_id, agent_id))]
    shown = ", ".join(f"{h.task!r} (claim #{h.claim})" for h in held) + (", ..." if active > len(held) else "")
    return Claim(claimed=False, status="wait", held=held,
                 reason=f"agent {agent_id!r} already holds {active} claim(s), its capacity: {shown}; report_outcome "
                 "or release_task naming the claim first (get_task shows a task)")


def _at_limit(busy: int, max_active_agents: int) -> Claim:
    return Claim(claimed=False, status="wait",
                 reason=f"{busy} agents are already active in this swarm, the limit of the current operating phase "
                 f"({max_active_agents}); try again when one reports")


@dataclass
class TaskFilter:
    states: tuple[str, ...] = ()
    agent: str | None = None  # assigned to it or claimed by it
    after_seq: int | None = None  # the cursor: board order after this task

    def sql(self) -> tuple[str, dict[str, object]]:
        parts, values = [], {}
        if self.states:
            marks = ", ".join(f":state{i}" for i in range(len(self.states)))
            parts.append(f"state IN ({marks})")
            values.update({f"state{i}": s for i, s in enumerate(self.states)})
        if self.agent is not None:
            parts.append("(assignee = :agent OR (state = 'claimed' AND lease_owner = :agent))")
            values["agent"] = self.agent
        return " AND ".join(parts), values


@dataclass
class Board:
    store: Store
    policy: BoardPolicy = field(default_factory=BoardPolicy)
    clock: Clock = system_clock
    # What the operating phase allows right now (the runtime's governor); no limits by default.
    limits: Callable[[], PhaseLimits] = PhaseLimits
    # Loads the neural model before a decision that wants it, so the decision is timed alone.
    warmer: ModelWarmer | None = None
    workers: int = 8
    # A read-only answer (`answer_read`) waits at most this long for the store.
    read_deadline_s: float | None = None
    _pools: dict[str, anyio.CapacityLimiter] = field(default_factory=dict, repr=False)
    # The swarms' estimator records read lately (scores.Records): a status read between outcomes reuses them.
    records: scores.Records = field(default_factory=scores.Records, repr=False)

    # -- off the event loop -------------------------------------------------------------------------------------

    async def read(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """Run a blocking read of the board in the read pool."""
        return await self._off_loop("read", fn, args, kwargs)

    async def write(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """Run a blocking write to the board in the write pool (it may wait for a lock, up to the store's
        time-out)."""
        return await self._off_loop("write", fn, args, kwargs)

    async def answer_read(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """A read that a read-only tool answers with: within `read_deadline_s`, or a one-sentence StoreError (its
        thread is left to finish under the store's own time-out)."""
        if self.read_deadline_s is None:
            return await self.read(fn, *args, **kwargs)
        with anyio.move_on_after(self.read_deadline_s):
            return await self._off_loop("read", fn, args, kwargs, abandon=True)
        raise StoreError(f"the store did not answer within {self.read_deadline_s:g} s (ANSF_READ_DEADLINE_S), "
                         "so nothing was read; the board is unchanged, try again")

    async def read_within(self, deadline_s: float, fn: Callable[..., T], /, *args: Any) -> T | None:
        """A read for an answer that must not wait (status): None when it takes longer than `deadline_s` (its
        thread is left to finish on its own)."""
        with anyio.move_on_after(deadline_s):
            return await self._off_loop("read", fn, args, {}, abandon=True)
        return None

    async def _off_loop(self, pool: str, fn: Callable[..., T], args: tuple[Any, ...], kwargs: dict[str, Any],
                        abandon: bool = False) -> T:
        limiter = self._pools.get(pool)
        if limiter is None:
            limiter = self._pools[pool] = anyio.CapacityLimiter(self.workers)
        return await anyio.to_thread.run_sync(functools.partial(fn, *args, **kwargs), limiter=limiter,
                                              abandon_on_cancel=abandon)

    # -- swarms, coordination, messages ----------------------------------------------------------------------

    def spawn(self, name: str, agents: list[AgentSpec], topology: Topology) -> SwarmView:
        return self.view(swarms.spawn(self.store, name, agents, topology))

    def spawn_preset(self, preset: str) -> list[SwarmView]:
        limits = self.limits()
        if limits.max_active_agents is not None:
            raise Refused(f"multi-swarm presets need phase 3 optimal; now {limits.phase}: {limits.reason}")
        return [self.view(swarm_id) for swarm_id in presets.spawn_preset(self.store, preset)]

    def dissolve(self, swarm_id: str) -> DissolveReceipt:
        receipt = swarms.dissolve(self.store, swarm_id)
        if receipt.note is None:  # a repeat changed nothing
            self._changed(swarm_id)
        return receipt

    def coordinate(self, swarm_id: str, specs: list[TaskSpec], strategy: str) -> BoardDecision:
        """Put tasks on the board and assign them with `strategy` (the neural one only where the phase allows);
        a repeat of a call that succeeded is answered with the tasks' assignments now, and writes nothing."""
        from ansf_mcp.board import assign  # numpy and scipy cost ~60 MB that an idle server should not carry

        neural_allowed = self.limits().neural_allowed
        warmer = self.warmer if strategy in ("auto", "neural") and neural_allowed else None
        loaded: list[float] = []

        def load_model(warmer: ModelWarmer) -> None:
            # A model not loaded yet loads here, timed as a model load, not inside the decision; after the plan,
            # so a repeat (answered from the board) loads nothing.
            with contextlib.suppress(ModelUnavailable):  # auto falls back; neural says why in the decision
                if (loaded_ms := warmer.ensure(None)) is not None:
                    loaded.append(loaded_ms)

        result = assign.submit_and_assign(
            self.store, swarm_id, specs, strategy, neural_allowed=neural_allowed, clock=self.clock,
            before_decision=functools.partial(load_model, warmer) if warmer is not None else None)
        if result.repeat is None:  # a repeat changed nothing: nobody waiting on the board is woken for it
            self._changed(swarm_id)
        if loaded:  # this call loaded the model (no warm-up): keep it out of later full collections
            heap.settle_soon("the model's load")  # after this answer has gone
        return result

    def send(self, swarm_id: str, from_agent: str, to_agent: str | None, body: str) -> SentMessage:
        return messages.send(self.store, swarm_id, from_agent, to_agent, body)

    async def inbox(self, swarm_id: str, agent_id: str, since: int, limit: int, wait_s: float) -> list[MessageView]:
        """Messages for the agent newer than `since`; when there are none, wait up to `wait_s` for the next."""
        key = messages.news_key(swarm_id)
        deadline = anyio.current_time() + wait_s
        while True:
            seen = self.store.news_version(key)  # before reading: a message sent after the read wakes the wait
            found = await self.read(messages.read, self.store, swarm_id, agent_id, since, limit)
            left = deadline - anyio.current_time()
            if found or left <= 0 or self.store.waits_ended:
                return found
            # In slices (the store caps each: 0.25 s polls on SQLite, 5 s on PostgreSQL where NOTIFY wakes it),
            # so a cancelled call stops waiting soon. Waiting holds no board worker.
            await anyio.to_thread.run_sync(self.store.wait_news, key, seen, min(left, 5.0))

    # -- status ---------------------------------------------------------------------------------------------

    def estimator_scores(self) -> list[EstimatorScore]:
        """Each probabilistic estimator's realised scores over every swarm's outcomes."""
        with self.store.reading() as conn:
            return scoring.scores(scores.overall(conn), list(scoring.AUTO_CANDIDATES))

    # -- reading ------------------------------------------------------------------------------------------------

    def counts(self, swarm_id: str | None = None) -> dict[str, int]:
        with self.store.reading() as conn:
            return state_counts(conn, self.policy, self.clock(), swarm_id)

    def summaries(self) -> list[SwarmSummary]:
        with self.store.reading() as conn:
            rows = conn.execute(
                """SELECT s.id, s.name, s.topology, (SELECT COUNT(*) FROM agents a WHERE a.swarm_id = s.id) AS n
                   FROM swarms s ORDER BY s.created_at"""
            ).fetchall()
            counts = state_counts_by_swarm(conn, self.policy, self.clock())
        return [
            SwarmSummary(swarm_id=r["id"], name=r["name"], topology=r["topology"], agents=r["n"],
                         tasks_by_state=counts.get(r["id"], dict.fromkeys(TASK_STATES, 0)))
            for r in rows
        ]

    def view(self, swarm_id: str, limit: int = 200, filters: TaskFilter | None = None) -> SwarmView:
        """The swarm's agents, its counts per state, and one page of its tasks (board order, filtered)."""
        filters = filters or TaskFilter()
        now = self.clock()
        where, values = filters.sql()
        with self.store.reading() as conn:
            swarm = require(conn, swarm_id)
            if filters.agent is not None:
                require_agent(conn, swarm_id, filters.agent)
            agents = self._agents(conn, swarm_id, now)
            counts = state_counts(conn, self.policy, now, swarm_id)
            if where:
                matching = conn.execute(
                    f"SELECT COUNT(*) FROM (SELECT {STATE_SQL} AS state, t.assignee, t.lease_owner FROM tasks t "
                    f"WHERE t.swarm_id = :swarm) AS board WHERE {where}",
                    params(self.policy, now, swarm=swarm_id, **values),
                ).fetchone()[0]
            else:
                matching = sum(counts.values())
            page_where = " AND ".join(p for p in (where, "seq > :after" if filters.after_seq is not None else "") if p)
            rows = task_rows(conn, self.policy, now, swarm_id, page_where,
                             {**values, "after": filters.after_seq}, limit=limit + 1)
            more = len(rows) > limit
            rows = rows[:limit]
            tasks = to_views(conn, swarm_id, rows, now)
            tallies = scores.tallies(conn, swarm_id, self.records)
            auto = choose(tallies, list(AUTO_CANDIDATES))
            before = 0
            if filters.after_seq is not None:
                before = conn.execute(
                    f"SELECT COUNT(*) FROM (SELECT {STATE_SQL} AS state, t.seq, t.assignee, t.lease_owner "
                    f"FROM tasks t WHERE t.swarm_id = :swarm) AS board WHERE seq <= :after{' AND ' + where if where else ''}",
                    params(self.policy, now, swarm=swarm_id, after=filters.after_seq, **values),
                ).fetchone()[0]
        page = SwarmView(
            swarm_id=swarm_id,
            name=swarm["name"],
            topology=swarm["topology"],
            created_at=swarm["created_at"],
            agents=agents,
            tasks_by_state=counts,
            tasks=tasks,
            tasks_matching=matching,
            tasks_omitted=matching - before - len(tasks),
            next_cursor=str(rows[-1]["seq"]) if more and rows else None,
            estimators=auto.scores,
            auto_uses=self._auto_uses(auto, tallies),
        )
        page._task_seqs = [r["seq"] for r in rows]
        page._after_seq = filters.after_seq
        return page

    def _auto_uses(self, auto: AutoChoice, tallies: dict[str, Tally]) -> str:
        """What `auto` would use now. In a phase without the network, or when the network failed to load, that is
        the best of the others, not the network the record ranks first: a status that said "neural" there was not
        what the next call did."""
        limits = self.limits()
        load = self.warmer.status() if self.warmer is not None else {}
        if not limits.neural_allowed:
            why = f"the current operating phase ({limits.phase}) disables the network"
        elif load.get("state") == "failed":  # the last load failed; the next coordinate tries again
            why = f"the network could not be loaded ({load.get('reason', 'see the server log')})"
        else:
            return f"{auto.estimator} ({auto.reason}), when the operating phase allows the network"
        if auto.estimator != "neural":
            return f"{auto.estimator} ({auto.reason}); {why}"
        now = choose(tallies, [c for c in AUTO_CANDIDATES if c != "neural"])
        return f"{now.estimator} ({now.reason}), as {why}; with the network, neural"

    def _agents(self, conn: Connection, swarm_id: str, now: float) -> list[AgentView]:
        load: dict[str, list[int]] = {}
        for r in conn.execute(
            f"""SELECT who, SUM(active), SUM(assigned) FROM (
                    SELECT t.lease_owner AS who, 1 AS active, 0 AS assigned FROM tasks t
                    WHERE t.swarm_id = :swarm AND {LEASE_LIVE_SQL}
                    UNION ALL
                    SELECT t.assignee, 0, 1 FROM tasks t WHERE t.swarm_id = :swarm AND t.status = 'open') AS load
                GROUP BY who""",
            {"swarm": swarm_id, "now": now},
        ):
            load[r[0]] = [r[1], r[2]]
        outcomes: dict[str, list[int]] = {}
        for r in conn.execute(
            "SELECT agent_id, SUM(success), COUNT(*) - SUM(success) FROM outcomes WHERE swarm_id = ? GROUP BY agent_id",
            (swarm_id,),
        ):
            outcomes[r[0]] = [r[1], r[2]]
        return [
            AgentView.model_construct(  # straight from our own rows, on the hot path of swarm_status
                id=r["id"],
                role=r["role"],
                capabilities=json.loads(r["capabilities"]),
                capacity=r["capacity"],
                lead=r["lead"],
                active_claims=load.get(r["id"], [0, 0])[0],
                assigned_open=load.get(r["id"], [0, 0])[1],
                successes=outcomes.get(r["id"], [0, 0])[0],
                failures=outcomes.get(r["id"], [0, 0])[1],
            )
            for r in agent_rows(conn, swarm_id)
        ]

    def _task(self, conn: Connection, swarm_id: str, task_id: str, now: float, *,
              lock: bool = False) -> Row:
        """The task row with its state; `lock`: held until the transaction ends (a writer decides on what it
        read: a late report cannot overwrite a claim another replica made meanwhile)."""
        return task_row(conn, self.policy, now, swarm_id, task_id, self.store.for_update if lock else "")

    def _view(self, conn: Connection, swarm_id: str, task_id: str, now: float) -> TaskView:
        return to_views(conn, swarm_id, [self._task(conn, swarm_id, task_id, now)], now)[0]

    # -- writing ------------------------------------------------------------------------------------------------

    def _expire(self, conn: Connection, swarm_id: str, now: float) -> None:
        """Write down what reading already shows: leases that ran out put their task back (or fail it)."""
        for sql, values in self._expiring(swarm_id, now):
            conn.execute(sql, values)

    def _expiring(self, swarm_id: str, now: float) -> list[tuple[str, dict[str, Any]]]:
        p = params(self.policy, now, swarm=swarm_id)
        return [(EXPIRE_CLAIMS_SQL, p), (EXPIRE_TASKS_SQL, p)]

    def _seen(self, conn: Connection, swarm_id: str, agent_id: str, now: float) -> None:
        conn.execute(SEEN_SQL, (now, swarm_id, agent_id))

    def claim_next(self, swarm_id: str, agent_id: str, lease_s: float | None = None) -> Claim:
        """Give the agent its next ready task under a lease: its own assignments first, then unassigned work,
        then work assigned to an agent that cannot take it now (it holds as many claims as its capacity, or has
        been away longer than the takeover grace); never more active agents in the swarm than the operating
        phase allows. Without a task, the answer says whether to wait, or that the swarm is done or blocked."""
        lease_s = lease_s or self.policy.lease_s
        max_active_agents = self.limits().max_active_agents
        grace = self.policy.takeover_grace_s
        if self.store.server_functions:
            return self._claim_server_side(swarm_id, agent_id, lease_s, max_active_agents)
        with self.store.transaction() as conn:
            now = self.clock()
            p = params(self.policy, now, swarm=swarm_id, agent=agent_id, cutoff=now - grace,
                       max_active=-1 if max_active_agents is None else max_active_agents)
            # Two batches (a round trip each on PostgreSQL): everything the decision needs, then the claim with
            # its view and the commit. The agent row is locked first, so one agent's claims on two replicas take
            # turns (its capacity is checked against what the other wrote).
            swarm, agent, _, _, _, active, busy, row = self.store.batch(conn, [
                ("SELECT * FROM swarms WHERE id = :swarm", p),
                (f"SELECT * FROM agents WHERE swarm_id = :swarm AND id = :agent{self.store.for_update}", p),
                *self._expiring(swarm_id, now),
                (SEEN_SQL, (now, swarm_id, agent_id)),
                (ACTIVE_SQL, p),
                (BUSY_SQL, p),
                (CANDIDATE_SQL + self.store.skip_locked, p),
            ])
            if not swarm:
                require(conn, swarm_id)
            if not agent:
                require_agent(conn, swarm_id, agent_id)
            active_n, capacity = active[0][0], agent[0]["capacity"]
            if active_n >= capacity:
                return _full(conn, swarm_id, agent_id, active_n, now)
            if max_active_agents is not None and active_n == 0 and busy[0][0] >= max_active_agents:
                return _at_limit(busy[0][0], max_active_agents)
            if not row:
                return self._nothing_for(conn, swarm_id, agent_id, now, p)
            row = row[0]
            seq = row["claim_seq"] + 1  # the row is ours (locked, or the only writer on SQLite)
            _, _, task, deps = self.store.batch(conn, [
                # An estimate made for another agent says nothing about this one: it does not follow the task.
                ("UPDATE tasks SET status = 'claimed', lease_owner = ?, lease_expires_at = ?, "
                 "p_success = CASE WHEN assignee = ? THEN p_success END, "
                 "confidence = CASE WHEN assignee = ? THEN confidence END, assignee = ?, "
                 "attempts = attempts + 1, claim_seq = ?, updated_at = ? WHERE swarm_id = ? AND id = ?",
                 (agent_id, now + lease_s, agent_id, agent_id, agent_id, seq, now, swarm_id, row["id"])),
                ("INSERT INTO claims (swarm_id, task_id, claim_seq, agent_id, claimed_at) VALUES (?, ?, ?, ?, ?)",
                 (swarm_id, row["id"], seq, agent_id, now)),
                task_query(self.policy, now, swarm_id, row["id"]),
                deps_query(swarm_id, [row["id"]]),
            ], commit=True, notify=board_news_key(swarm_id))  # watchers (the dashboard) show claims too
            view = to_views(conn, swarm_id, task, now, deps_from(deps))[0]
        self._changed(swarm_id)
        return self._claimed(row, agent_id, view, seq, lease_s, now)

    def _claimed(self, row: Row | dict[str, Any], agent_id: str, view: TaskView, seq: int, lease_s: float,
                 now: float) -> Claim:
        """The answer to a claim of the candidate `row` (CANDIDATE_SQL), and whose work it took over."""
        taken_from = row["assignee"] if row["assignee"] not in (None, agent_id) else None
        note = None
        if taken_from and row["assignee_holds"] >= (row["assignee_capacity"] or 0):
            note = (f"task {row['id']!r} was assigned to {taken_from!r}, who holds {row['assignee_holds']} claim(s), "
                    "its capacity; it is yours now (work goes to whoever is free)")
        elif taken_from:
            note = (f"task {row['id']!r} was assigned to {taken_from!r}, who has not been seen for "
                    f"{now - row['pinned_since']:.0f} s (takeover grace {self.policy.takeover_grace_s:g} s); "
                    "it is yours now")
        return Claim(claimed=True, status="assigned", task=view, claim=seq, lease_expires_in_s=lease_s,
                     taken_over_from=taken_from, note=note)

    def _claim_server_side(self, swarm_id: str, agent_id: str, lease_s: float,
                           max_active_agents: int | None) -> Claim:
        """claim_next as one call of a PostgreSQL function (pg_functions.claim): one round trip, the same
        answers; the reasons for no claim are read after its commit, as the Python path reads them."""
        news = board_news_key(swarm_id)
        with self.store.transaction() as conn:
            now = self.clock()
            from ansf_mcp.board import pg_functions  # imports this module

            function = pg_functions.claim(self.store.for_update, self.store.skip_locked)
            out = self.store.call(conn, function, params(
                self.policy, now, swarm=swarm_id, agent=agent_id, lease_s=lease_s,
                cutoff=now - self.policy.takeover_grace_s,
                max_active=-1 if max_active_agents is None else max_active_agents), news=news)
            code = out["code"]
            if code == "no_swarm":
                require(conn, swarm_id)
            if code == "no_agent":
                require_agent(conn, swarm_id, agent_id)
            if code == "full":
                return _full(conn, swarm_id, agent_id, out["active"], now)
            if code == "limit":
                assert max_active_agents is not None
                return _at_limit(out["busy"], max_active_agents)
            if code != "claimed":
                return self._nothing_for(conn, swarm_id, agent_id, now, params(self.policy, now, swarm=swarm_id,
                                                                                agent=agent_id))
            row, task = out["candidate"], out["task"]
            view = to_views(conn, swarm_id, [task], now, deps_from(out["deps"]))[0]
        self._changed(swarm_id)
        return self._claimed(row, agent_id, view, task["claim_seq"], lease_s, now)

    def _nothing_for(self, conn: Connection, swarm_id: str, agent_id: str, now: float,
                     p: dict[str, Any]) -> Claim:
        """No task for the agent: done, blocked by a failed task, or wait — and why."""
        status, dead, why = manage.standing(conn, self.policy, now, swarm_id)
        if status != "wait":
            return Claim(claimed=False, status=status, blocked_by=dead, reason=why)
        counts = state_counts(conn, self.policy, now, swarm_id)
        parts = []
        if counts["claimed"]:
            holders = [r[0] for r in conn.execute(
                "SELECT DISTINCT lease_owner FROM tasks WHERE swarm_id = ? AND status = 'claimed' ORDER BY 1 LIMIT 4",
                (swarm_id,))]
            parts.append(f"{counts['claimed']} task(s) running (by {', '.join(map(repr, holders))}"
                         f"{', ...' if counts['claimed'] > len(holders) else ''})")
        if counts["blocked"]:
            parts.append(f"{counts['blocked']} task(s) wait on dependencies not yet done")
        waiting = conn.execute(
            f"""SELECT COUNT(*), MIN({PINNED_SINCE_SQL}) FROM tasks t
                LEFT JOIN agents a ON a.swarm_id = t.swarm_id AND a.id = t.assignee
                WHERE t.swarm_id = :swarm AND t.status IN ('open', 'claimed') AND {STATE_SQL} = 'ready'
                  AND t.assignee != :agent""", p
        ).fetchone()
        if waiting[0]:
            parts.append(
                f"{waiting[0]} ready task(s) are assigned to other agents with free capacity; another agent may "
                f"take one once its assignee has been away {self.policy.takeover_grace_s:g} s, the first in "
                f"{max(0.0, waiting[1] + self.policy.takeover_grace_s - now):.0f} s, or move it now with "
                "reassign_task"
            )
        return Claim(claimed=False, status="wait",
                     reason="nothing ready for this agent yet: " + "; ".join(parts) + "; call again or pass wait_s")

    def _held(self, conn: Connection, swarm_id: str, task_id: str, agent_id: str, now: float,
              doing: str, claim: int | None = None) -> Row:
        """The task row (locked) if `agent_id` holds a live lease on it — claim number `claim` when given —
        else a Refused that says who does and what it is."""
        require(conn, swarm_id)
        require_agent(conn, swarm_id, agent_id)
        task = self._task(conn, swarm_id, task_id, now, lock=True)
        if task["state"] == "claimed" and task["lease_owner"] == agent_id:
            self._fence(task, agent_id, claim, doing)
            return task
        raise Refused(f"cannot {doing}: {self._describe(conn, swarm_id, task, agent_id, now, claim)}; "
                      "nothing was recorded")

    @staticmethod
    def _fence(task: Row, agent_id: str, claim: int | None, doing: str) -> None:
        """The fencing number: a caller that names its claim is refused once that claim is over, even when the
        same agent holds a newer claim on the task (a late message from a lease that expired)."""
        if claim is not None and claim != task["claim_seq"]:
            raise Refused(f"cannot {doing}: claim #{claim} of {agent_id!r} on task {task['id']!r} is over; "
                          f"the live claim is #{task['claim_seq']}; nothing was recorded")

    def _describe(self, conn: Connection, swarm_id: str, task: Row, agent_id: str,
                  now: float, claim: int | None = None) -> str:
        """Why `agent_id` does not hold `task`: its state and holder, and this agent's claim on it: the one the
        caller named, else its last one (a caller naming an old claim is answered about that claim)."""
        tid, state = task["id"], task["state"]
        mine = conn.execute(
            "SELECT claim_seq, ended, ended_at FROM claims WHERE swarm_id = ? AND task_id = ? AND agent_id = ? "
            + ("AND claim_seq = ? " if claim is not None else "") + "ORDER BY claim_seq DESC LIMIT 1",
            (swarm_id, tid, agent_id, *(() if claim is None else (claim,))),
        ).fetchone()
        if state == "claimed":
            where = (f"task {tid!r} is claimed by {task['lease_owner']!r} (lease {task['lease_expires_at'] - now:.0f} s "
                     f"left), not by {agent_id!r}")
        elif state == "blocked":
            deps = [r[0] for r in conn.execute(
                "SELECT d.depends_on FROM task_deps d JOIN tasks dep ON dep.swarm_id = d.swarm_id AND "
                "dep.id = d.depends_on WHERE d.swarm_id = ? AND d.task_id = ? AND dep.status != 'succeeded' "
                "ORDER BY dep.seq",
                (swarm_id, tid))]
            where = f"task {tid!r} is blocked (waiting for {', '.join(map(repr, deps))}) and held by nobody"
        elif state == "ready":
            where = f"task {tid!r} is ready and held by nobody (next_task claims it)"
        else:
            last = conn.execute(
                "SELECT agent_id FROM outcomes WHERE swarm_id = ? AND task_id = ? ORDER BY id DESC LIMIT 1",
                (swarm_id, tid),
            ).fetchone()
            where = f"task {tid!r} is already {state}" + (f" (last reported by {last[0]!r})" if last else "")
        if mine is not None:
            if mine["ended"] is None and task["claim_seq"] == mine["claim_seq"] and task["status"] == "claimed":
                ended = f"its lease expired {now - task['lease_expires_at']:.0f} s ago"
            else:
                ended = {"expired": "its lease expired", "released": "it was released",
                         "reported": "its outcome was recorded"}.get(mine["ended"] or "", "it ended")
            where += f"; claim #{mine['claim_seq']} of {agent_id!r} on it ended: {ended}"
        elif claim is not None:
            where += f"; {agent_id!r} never held a claim #{claim} on it"
        if state in ("failed", "cancelled"):
            where += f"; {manage.RETRY_ADVICE}"
        return where

    def renew(self, swarm_id: str, task_id: str, agent_id: str, lease_s: float | None = None,
              claim: int | None = None) -> LeaseReceipt:
        """Heartbeat: the holder of a live lease extends it to `lease_s` from now."""
        lease_s = lease_s or self.policy.lease_s
        with self.store.transaction() as conn:
            now = self.clock()
            task = self._held(conn, swarm_id, task_id, agent_id, now, "renew the lease", claim)
            conn.execute("UPDATE tasks SET lease_expires_at = ?, updated_at = ? WHERE swarm_id = ? AND id = ?",
                         (now + lease_s, now, swarm_id, task_id))
            self._seen(conn, swarm_id, agent_id, now)
        return LeaseReceipt(task_id=task_id, claim=task["claim_seq"], lease_expires_in_s=lease_s)

    def release(self, swarm_id: str, task_id: str, agent_id: str, reason: str = "",
                claim: int | None = None) -> ReleaseReceipt:
        """The holder gives the task back without an outcome: anyone may take it, and the attempt is not counted."""
        with self.store.transaction() as conn:
            now = self.clock()
            try:
                task = self._held(conn, swarm_id, task_id, agent_id, now, "release the task", claim)
            except Refused:
                # Not this claim's holder (any more): an earlier call may have released it already.
                repeat = self._released_before(conn, swarm_id, task_id, agent_id, claim, now)
                if repeat is None:
                    raise
                return repeat
            conn.execute(
                "UPDATE tasks SET status = 'open', lease_owner = NULL, lease_expires_at = NULL, assignee = NULL, "
                "attempts = CASE WHEN attempts > 0 THEN attempts - 1 ELSE 0 END, last_error = ?, updated_at = ? "
                "WHERE swarm_id = ? AND id = ?",
                (f"released by {agent_id!r}" + (f": {reason}" if reason else ""), now, swarm_id, task_id),
            )
            conn.execute(
                "UPDATE claims SET ended_at = ?, ended = 'released' WHERE swarm_id = ? AND task_id = ? AND claim_seq = ?",
                (now, swarm_id, task_id, task["claim_seq"]),
            )
            self._seen(conn, swarm_id, agent_id, now)
            view = self._view(conn, swarm_id, task_id, now)
        self._changed(swarm_id)
        return ReleaseReceipt(task_id=task_id, state=view.state, attempts=view.attempts, claim=task["claim_seq"])

    def _released_before(self, conn: Connection, swarm_id: str, task_id: str, agent_id: str, claim: int | None,
                         now: float) -> ReleaseReceipt | None:
        """A release repeated: the claim it names (else the agent's last on the task) was already released by
        this agent. Answered with the task as it is now; None when that is not so (the caller is told why)."""
        mine = conn.execute(
            "SELECT claim_seq, ended FROM claims WHERE swarm_id = ? AND task_id = ? AND agent_id = ? "
            + ("AND claim_seq = ? " if claim is not None else "") + "ORDER BY claim_seq DESC LIMIT 1",
            (swarm_id, task_id, agent_id, *(() if claim is None else (claim,))),
        ).fetchone()
        if mine is None or mine["ended"] != "released":
            return None
        task = self._task(conn, swarm_id, task_id, now)  # locked already, by the read in _held
        return ReleaseReceipt(
            task_id=task_id, state=task["state"], attempts=task["attempts"], claim=mine["claim_seq"],
            note=f"a repeat: claim #{mine['claim_seq']} of {agent_id!r} on this task was already released (an "
                 "earlier call did it), so nothing was written; the state and attempts are the task's now")

    def reassign(self, swarm_id: str, task_id: str, to_agent: str | None) -> ReassignReceipt:
        """Move a task that nobody holds to another agent (or to nobody: any agent may then take it)."""
        with self.store.transaction() as conn:
            now = self.clock()
            require(conn, swarm_id)
            if to_agent is not None:
                require_agent(conn, swarm_id, to_agent)
            self._expire(conn, swarm_id, now)
            task = self._task(conn, swarm_id, task_id, now, lock=True)
            if task["state"] == "claimed":
                mine = (f"; it is already with {to_agent!r}, the agent this call names, so nothing was changed"
                        if task["lease_owner"] == to_agent else "")
                raise Refused(
                    f"task {task_id!r} is claimed by {task['lease_owner']!r} (lease "
                    f"{task['lease_expires_at'] - now:.0f} s left){mine}; the holder can release_task it, or it "
                    "returns to the board when the lease runs out"
                )
            if task["state"] in manage.FINISHED:
                raise Refused(f"task {task_id!r} is already {task['state']}; there is nothing left to assign")
            if task["assignee"] == to_agent:
                # Rewriting it would restart the takeover grace of its agent (counted from updated_at): a repeat
                # after a lost answer would delay the takeover of work pinned to an agent that is gone.
                return ReassignReceipt(
                    task_id=task_id, state=task["state"], assignee=to_agent, previous=to_agent,
                    note=f"already {'assigned to ' + repr(to_agent) if to_agent else 'unassigned'} (a repeat, or "
                         "it was so before), so nothing was written")
            conn.execute("UPDATE tasks SET assignee = ?, updated_at = ? WHERE swarm_id = ? AND id = ?",
                         (to_agent, now, swarm_id, task_id))
        self._changed(swarm_id)
        return ReassignReceipt(task_id=task_id, state=task["state"], assignee=to_agent, previous=task["assignee"])

    # -- managing tasks ---------------------------------------------------------------------------------------

    def get_task(self, swarm_id: str, task_id: str) -> TaskDetail:
        """One task whole: its state, dependencies, dependents and last outcomes."""
        with self.store.reading() as conn:
            require(conn, swarm_id)
            return manage.detail(conn, self.policy, self.clock(), swarm_id, task_id)

    def manage(self, swarm_id: str, task_id: str, action: ManageAction, change: TaskEdit | None = None,
               reason: str = "") -> TaskChange:
        """Edit, retry or cancel a task nobody holds (see board/manage.py for the rules)."""
        with self.store.transaction() as conn:
            now = self.clock()
            require(conn, swarm_id)
            self._expire(conn, swarm_id, now)
            lock = self.store.for_update
            if action == "edit":
                done = manage.edit(conn, self.policy, now, swarm_id, task_id, change or TaskEdit(), lock)
            elif action == "retry":
                done = manage.retry(conn, self.policy, now, swarm_id, task_id, reason, lock)
            else:
                done = manage.cancel(conn, self.policy, now, swarm_id, task_id, reason, lock)
        self._changed(swarm_id)
        return done

    # -- waiting for work -------------------------------------------------------------------------------------

    def _changed(self, swarm_id: str) -> None:
        """Wake the agents waiting in next_task(wait_s) for this swarm (every replica, as the engine allows)."""
        self.store.notify(board_news_key(swarm_id))

    def _fingerprint(self, swarm_id: str) -> tuple[Any, ...]:
        """Changes whenever a task is added, claimed, reported, released, moved or managed — by any process
        (a waiter in another server process on the same SQLite file sees the change here)."""
        with self.store.reading() as conn:
            return tuple(conn.execute(
                "SELECT COUNT(*), COALESCE(SUM(claim_seq), 0), COALESCE(MAX(updated_at), 0), "
                "COALESCE(SUM(CASE WHEN status = 'open' THEN 1 ELSE 0 END), 0), "
                "COALESCE(SUM(CASE WHEN status = 'succeeded' THEN 1 ELSE 0 END), 0) FROM tasks WHERE swarm_id = ?",
                (swarm_id,),
            ).fetchone())

    async def next(self, swarm_id: str, agent_id: str, lease_s: float | None = None, wait_s: float = 0.0) -> Claim:
        """claim_next; while the answer is *wait*, wait up to `wait_s` for the board to change and try again.
        Waiting holds no board worker and no connection: it sleeps on the store's news (woken at once by a change
        in this process, by NOTIFY on PostgreSQL) and re-reads a cheap fingerprint of the swarm's tasks each
        `news_poll_s` (other processes on one SQLite file); leases that run out are noticed within RECHECK_S."""
        key = board_news_key(swarm_id)
        started = anyio.current_time()
        deadline = started + wait_s
        while True:
            seen = self.store.news_version(key)
            # Taken before the claim: a change made between the claim and the wait still wakes it.
            mark = await self.read(self._fingerprint, swarm_id) if wait_s else None
            step = trace.span("claim", agent=agent_id)
            if step is not None:
                step.mark("call")
            claim = await self.write(trace.working_for(step, self.claim_next), swarm_id, agent_id, lease_s)
            if step is not None:
                step.mark("back")
                step.done()
            if claim.status != "wait" or anyio.current_time() >= deadline or self.store.waits_ended:
                break
            if claim.held:
                # At its capacity: only the agent's own report or release can change this answer, and it cannot
                # send one while this call waits (an agent that lost a claim's answer calls again to find it).
                break
            recheck = min(deadline, anyio.current_time() + RECHECK_S)
            while (left := recheck - anyio.current_time()) > 0 and not self.store.waits_ended:
                if await anyio.to_thread.run_sync(self.store.wait_news, key, seen, left) != seen:
                    break
                if await self.read(self._fingerprint, swarm_id) != mark:
                    break
        if wait_s:
            claim.waited_s = round(anyio.current_time() - started, 3)
        return claim

    def report(self, swarm_id: str, task_id: str, agent_id: str, success: bool, summary: str = "",
               duration_s: float | None = None, claim: int | None = None) -> OutcomeReceipt:
        """Record the outcome of the agent's live claim: success closes the task, failure re-offers it until the
        attempts run out. The same report again (this agent's last claim already reported the same way) gets the
        first answer back and writes nothing."""
        if self.store.server_functions:
            from ansf_mcp.board import pg_functions  # imports this module

            # The holder's report in one round trip (pg_functions.report); anything else it leaves to the
            # Python path below, having written nothing.
            with self.store.transaction() as conn:
                out = self.store.call(conn, pg_functions.report(self.store.for_update), params(
                    self.policy, self.clock(), swarm=swarm_id, task=task_id, agent=agent_id, success=success,
                    summary=summary, duration_s=duration_s, claim=claim), news=board_news_key(swarm_id))
            if out["code"] == "done":
                self._changed(swarm_id)
                return OutcomeReceipt.model_validate(out["receipt"])
        with self.store.transaction() as conn:
            now = self.clock()
            # Three batches (a round trip each on PostgreSQL): what the decision needs, the outcome's writes and
            # what the receipt says, then the receipt with the commit and the news.
            # The task is locked: a replica that found the lease expired and re-claims the task waits for this
            # report, or this report sees the new claim (and is refused); never both.
            swarm, agent, task, predictions = self.store.batch(conn, [
                ("SELECT * FROM swarms WHERE id = ?", (swarm_id,)),
                ("SELECT * FROM agents WHERE swarm_id = ? AND id = ?", (swarm_id, agent_id)),
                task_query(self.policy, now, swarm_id, task_id, self.store.for_update),
                (scores.PREDICTIONS_SQL, (swarm_id, task_id, agent_id)),
            ])
            if not swarm:
                require(conn, swarm_id)
            if not agent:
                require_agent(conn, swarm_id, agent_id)
            task = one_task(task, swarm_id, task_id)
            if not (task["state"] == "claimed" and task["lease_owner"] == agent_id):
                replay = self._replay(conn, swarm_id, task, agent_id, success, claim)
                if replay is not None:
                    return replay
                raise Refused(f"{self._describe(conn, swarm_id, task, agent_id, now, claim)}; outcomes are "
                              "accepted only from the agent holding a live lease, so nothing was recorded")
            self._fence(task, agent_id, claim, "record the outcome")
            seq, attempts = task["claim_seq"], task["attempts"]
            if success:
                new_status, error = "succeeded", None
            elif attempts >= self.policy.max_attempts:
                # Said as "attempt N", not "failed N times": an expired lease uses an attempt too (pg_functions.report
                # writes the same words).
                new_status, error = "failed", (f"attempt {attempts} failed, no attempts left (limit "
                                               f"{self.policy.max_attempts}): {summary or 'no summary'}")
            else:
                new_status, error = "open", f"attempt {attempts} failed: {summary or 'no summary'}"
            p = task["p_success"] if task["assignee"] == agent_id else None
            written = self.store.batch(conn, [
                ("UPDATE tasks SET status = ?, lease_owner = NULL, lease_expires_at = NULL, "
                 "assignee = CASE WHEN ? = 'open' THEN NULL ELSE assignee END, last_error = ?, result = ?, "
                 "updated_at = ? WHERE swarm_id = ? AND id = ?",
                 (new_status, new_status, error, summary if success else None, now, swarm_id, task_id)),
                ("UPDATE claims SET ended_at = ?, ended = 'reported' WHERE swarm_id = ? AND task_id = ? "
                 "AND claim_seq = ?", (now, swarm_id, task_id, seq)),
                (SEEN_SQL, (now, swarm_id, agent_id)),
                ("INSERT INTO outcomes (swarm_id, task_id, agent_id, task_text, success, summary, duration_s, "
                 "p_success, created_at, claim_seq) VALUES (?,?,?,?,?,?,?,?,?,?) RETURNING id",
                 (swarm_id, task_id, agent_id, task["description"], int(success), summary, duration_s, p, now, seq)),
                # The estimators' predictions for this (task, agent) are scored in the same transaction.
                *scores.outcome_statements(swarm_id, task_id, agent_id, success, predictions),
                # Dependents this success made ready.
                *([(UNBLOCKED_SQL, params(self.policy, now, swarm=swarm_id, task=task_id))] if success else []),
                task_query(self.policy, now, swarm_id, task_id),
            ])
            outcome_id = int(written[3][0][0])
            unblocked = [r[0] for r in written[-2]] if success else []
            state = written[-1][0]["state"]
            receipt = OutcomeReceipt(task_id=task_id, state=state, attempts=attempts, claim=seq,
                                     outcome_id=outcome_id, unblocked=unblocked)
            self.store.batch(conn, [("UPDATE outcomes SET receipt = ? WHERE id = ?",
                                     (receipt.model_dump_json(), outcome_id))],
                             commit=True, notify=board_news_key(swarm_id))
        self._changed(swarm_id)
        return receipt

    def _replay(self, conn: Connection, swarm_id: str, task: Row, agent_id: str,
                success: bool, claim: int | None = None) -> OutcomeReceipt | None:
        """The stored answer when this agent's last claim on the task (the one named, if any) was already
        reported the same way; None when that is not the case and the caller is to be told why."""
        task_id = task["id"]
        row = conn.execute(
            """SELECT o.success, o.receipt FROM claims c JOIN outcomes o ON o.swarm_id = c.swarm_id
                   AND o.task_id = c.task_id AND o.claim_seq = c.claim_seq
               WHERE c.swarm_id = ? AND c.task_id = ? AND c.agent_id = ?
               ORDER BY c.claim_seq DESC LIMIT 1""",
            (swarm_id, task_id, agent_id),
        ).fetchone()
        last = conn.execute(
            "SELECT MAX(claim_seq) FROM claims WHERE swarm_id = ? AND task_id = ? AND agent_id = ?",
            (swarm_id, task_id, agent_id),
        ).fetchone()[0]
        if row is None or row["receipt"] is None:
            return None
        receipt = OutcomeReceipt.model_validate_json(row["receipt"])
        if receipt.claim != last:
            return None  # reported an earlier claim; the latest one ended without an outcome
        if claim is not None and claim != receipt.claim:
            return None  # the caller names another claim: _describe answers about that one
        if bool(row["success"]) != success:
            raise Conflict(
                f"claim #{receipt.claim} of {agent_id!r} on task {task_id!r} was already reported as "
                f"{'a success' if row['success'] else 'a failure'} (the task is {task['state']} now); one outcome "
                f"per claim, so nothing was recorded; {_next_step(task)}"
            )
        return receipt



def _next_step(task: Row) -> str:
    """What an agent whose claim on `task` is over can do next, by the task's state now."""
    state = task["state"]
    if state == "ready":
        return "claim it again with next_task to try again"
    if state == "blocked":
        return "next_task hands it out again once its dependencies succeed"
    if state == "claimed":
        return f"{task['lease_owner']!r} holds it now"
    if state == "succeeded":
        return "nothing is left to do on it"
    return manage.RETRY_ADVICE
