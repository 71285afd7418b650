"""A claim and an outcome as PostgreSQL functions (PL/pgSQL): one round trip each, planned once per connection.

Both are built from the SQL the Python path runs (board.py, lifecycle.py, tasks.py), with the board's named
parameters (`:now`) turned into the function's arguments (`a_now`), so the two paths cannot drift apart. Each
does the common case whole (the claim with its view, the outcome with its scores, its dependents and its receipt,
and the board's NOTIFY) and answers one JSON object; anything else (an unknown swarm or agent, a report that is
refused or replayed) it leaves to the Python path, having written nothing.

A function's name carries a hash of its text: replicas of different versions sharing one database each call
their own, and a changed body is a new function, never a replacement under a running replica.
"""

from __future__ import annotations

import functools
import hashlib
import re

from ansf_mcp.board.board import (
    ACTIVE_SQL,
    BUSY_SQL,
    CANDIDATE_SQL,
    EXPIRE_CLAIMS_SQL,
    EXPIRE_TASKS_SQL,
    SEEN_SQL,
    UNBLOCKED_SQL,
)
from ansf_mcp.board.lifecycle import LEASE_EXPIRED_SQL, STATE_SQL
from ansf_mcp.board.tasks import TASK_COLUMNS
from ansf_mcp.coordinator.scoring import EPS, KEPT_OUTCOMES
from ansf_mcp.store.base import ServerFunction
from ansf_mcp.store.postgres import NEWS_LOCK, PostgresStore, news_wanted

# A quoted literal (left alone), a cast, a positional or a named parameter.
_TOKEN = re.compile(r"'(?:[^']|'')*'|::|\?|(?<![\w:]):([A-Za-z_]\w*)")


def plpgsql(sql: str, positional: tuple[str, ...] = ()) -> str:
    """`sql` with its parameters as the function's arguments: `:now` as `a_now`, the n-th `?` as
    `a_<positional[n]>`."""
    at = iter(positional)

    def sub(m: re.Match[str]) -> str:
        token = m.group(0)
        if token[0] == "'" or token == "::":
            return token
        return "a_" + (next(at) if token == "?" else m.group(1))

    return _TOKEN.sub(sub, sql)


# A call that reaches PostgreSQL after its caller gave up (a server that hung with the call in its socket buffer,
# then resumed) must not commit what the caller was told may not have happened: `a_deadline` is when the caller
# stops waiting, on the server's clock (store.call); a stall once running is ended by statement_timeout.
_LATE = """
    IF extract(epoch FROM clock_timestamp()) > a_deadline THEN
        RAISE EXCEPTION 'this call reached PostgreSQL after its caller had stopped waiting; nothing was written'
            USING ERRCODE = 'query_canceled';
    END IF;"""


# The board's NOTIFY, sent only where another process listens (store.postgres.NEWS_LOCK says why).
_NEWS = f"""PERFORM pg_advisory_xact_lock_shared({NEWS_LOCK});
    IF {news_wanted("a_listener")} THEN
        PERFORM pg_notify(a_channel, a_news);
    END IF;"""


def _function(stem: str, args: tuple[tuple[str, str], ...], body: str) -> ServerFunction:
    # The board's news go out with the commit: the function NOTIFYs on `a_channel` what the caller names.
    signature = ", ".join(f"a_{name} {kind}" for name, kind in (
        *args, ("channel", "text"), ("news", "text"), ("listener", "integer"), ("deadline", "double precision")))
    body = body.replace("\nBEGIN\n", "\nBEGIN" + _LATE + "\n", 1)
    text = f"({signature}) RETURNS json LANGUAGE plpgsql AS $fn$\n{body}\n$fn$"
    name = f"ansf_{stem}_{hashlib.sha1(text.encode()).hexdigest()[:12]}"
    return ServerFunction(name=name, create=f"CREATE OR REPLACE FUNCTION {name}{text}",
                          args=tuple(name for name, _ in args))


# The dependencies of one task with their statuses (tasks.deps_query for one id), as JSON rows.
_DEPS_JSON = """SELECT COALESCE(json_agg(json_build_array(d.task_id, d.depends_on, dep.status)), '[]') FROM task_deps d
    JOIN tasks dep ON dep.swarm_id = d.swarm_id AND dep.id = d.depends_on
    WHERE d.swarm_id = :swarm AND d.task_id IN (:task)"""


# The candidate query (board.CANDIDATE_SQL) ranks every ready task of the swarm — the agent's own, then unassigned,
# then others' — and keeps the first: PostgreSQL computes the state of every open task and sorts them (about
# 0.4 ms at 200 open tasks, most of a claim's time in the database). The first two ranks are asked for one at a
# time, each in the order of a partial index (migration `tasks_claimable*`) so the scan stops at the first ready
# task; only when both are empty does the whole query run. The answer is the same task: the whole query's first
# row is the first row of the first rank that has one.
_CANDIDATE_ORDER = """ORDER BY CASE WHEN t.assignee = :agent THEN 0 WHEN t.assignee IS NULL THEN 1 ELSE 2 END,
         t.priority DESC, t.seq ASC LIMIT 1"""
_CANDIDATE_WHERE = "WHERE t.swarm_id = :swarm AND "


def candidate_in_rank(rank: str) -> str:
    """CANDIDATE_SQL for the tasks of one rank (`rank`, a condition on `t`), in the index's order."""
    if _CANDIDATE_ORDER not in CANDIDATE_SQL or _CANDIDATE_WHERE not in CANDIDATE_SQL:
        raise AssertionError("board.CANDIDATE_SQL changed: pg_functions.candidate_in_rank must follow it")
    return (CANDIDATE_SQL.replace(_CANDIDATE_ORDER, "ORDER BY t.priority DESC, t.seq ASC LIMIT 1")
            .replace(_CANDIDATE_WHERE, _CANDIDATE_WHERE + rank + " AND ", 1))


@functools.lru_cache(maxsize=4)
def claim(for_update: str, skip_locked: str) -> ServerFunction:
    """Board.claim_next's transaction: {"code": "claimed", "task", "deps", "candidate"}, or the reason there is
    no claim: "no_swarm" / "no_agent" (nothing written), "full" (with "active"), "limit" (with "busy"), "none".
    The expiry and the agent's last-seen time are written in every case but the first two, as in Python.

    Fewer statements than the Python path (each costs PostgreSQL an executor start): the swarm is looked up only
    when the agent is not found (an agent row implies its swarm), the expiry runs only when a lease ran out, and
    the agent's claim count and the swarm's active agents are counted only when no candidate was found (the
    candidate query checks both itself, so a candidate means neither limit holds)."""
    body = f"""
DECLARE
    v_capacity integer;
    v_active bigint;
    v_busy bigint;
    c record;
    a_task text;
    v_seq integer;
    v_out json;
    v_sort text := current_setting('enable_sort');
    v_found boolean;
BEGIN
    SELECT capacity INTO v_capacity FROM agents WHERE swarm_id = a_swarm AND id = a_agent{for_update};
    IF NOT FOUND THEN
        PERFORM 1 FROM swarms WHERE id = a_swarm;
        RETURN json_build_object('code', CASE WHEN FOUND THEN 'no_agent' ELSE 'no_swarm' END);
    END IF;
    IF EXISTS ({plpgsql(f"SELECT 1 FROM tasks t WHERE t.swarm_id = :swarm AND {LEASE_EXPIRED_SQL}")}) THEN
        {plpgsql(EXPIRE_CLAIMS_SQL)};
        {plpgsql(EXPIRE_TASKS_SQL)};
    END IF;
    {plpgsql(SEEN_SQL, ("now", "swarm", "agent"))};
    -- Sorting is what the ranked queries avoid; without statistics (a new board, before autovacuum has
    -- analyzed it) the planner would sort anyway, taking the state filter to leave one row.
    PERFORM set_config('enable_sort', 'off', true);
    {plpgsql(candidate_in_rank("t.assignee = :agent"))}{skip_locked} INTO c;
    v_found := FOUND;
    IF NOT v_found THEN
        {plpgsql(candidate_in_rank("t.assignee IS NULL"))}{skip_locked} INTO c;
        v_found := FOUND;
    END IF;
    PERFORM set_config('enable_sort', v_sort, true);  -- sets FOUND
    IF NOT v_found THEN
        {plpgsql(CANDIDATE_SQL)}{skip_locked} INTO c;
        v_found := FOUND;
    END IF;
    IF NOT v_found THEN
        v_active := ({plpgsql(ACTIVE_SQL)});
        IF v_active >= v_capacity THEN RETURN json_build_object('code', 'full', 'active', v_active); END IF;
        v_busy := ({plpgsql(BUSY_SQL)});
        IF a_max_active >= 0 AND v_active = 0 AND v_busy >= a_max_active THEN
            RETURN json_build_object('code', 'limit', 'busy', v_busy);
        END IF;
        RETURN json_build_object('code', 'none');
    END IF;
    a_task := c.id;
    v_seq := c.claim_seq + 1;
    -- An estimate made for another agent says nothing about this one: it does not follow the task.
    UPDATE tasks SET status = 'claimed', lease_owner = a_agent, lease_expires_at = a_now + a_lease_s,
        p_success = CASE WHEN assignee = a_agent THEN p_success END,
        confidence = CASE WHEN assignee = a_agent THEN confidence END, assignee = a_agent,
        attempts = attempts + 1, claim_seq = v_seq, updated_at = a_now WHERE swarm_id = a_swarm AND id = a_task;
    INSERT INTO claims (swarm_id, task_id, claim_seq, agent_id, claimed_at) VALUES (a_swarm, a_task, v_seq, a_agent, a_now);
    SELECT json_build_object('code', 'claimed', 'notified', true, 'task', row_to_json(x), 'deps', ({plpgsql(_DEPS_JSON)}),
                             'candidate', row_to_json(c))
    INTO v_out FROM ({plpgsql(f"SELECT {TASK_COLUMNS} FROM tasks t WHERE t.swarm_id = :swarm AND t.id = :task")}) x;
    {_NEWS}
    RETURN v_out;
END"""
    return _function("claim", (("swarm", "text"), ("agent", "text"), ("now", "double precision"),
                               ("lease_s", "double precision"), ("cutoff", "double precision"),
                               ("max_active", "integer"), ("max_attempts", "integer")), body)


@functools.lru_cache(maxsize=4)
def report(for_update: str) -> ServerFunction:
    """Board.report's transaction for a report from the holder of the live claim (the one named, if any):
    {"code": "done", "receipt"}; anything else answers {"code": "python"} having written nothing, and the Python
    path decides (refusal, replay, unknown names).

    Fewer statements than the Python path: the outcome row is written once, with its receipt (its id drawn
    first); the predictions are scored and consumed in one statement; a finished task's state is its status
    (lifecycle.STATE_SQL), so only a re-offered one is read back."""
    body = f"""
DECLARE
    tk record;
    v_p double precision;
    v_status text;
    v_error text;
    v_id bigint;
    v_unblocked json := '[]';
    v_state text;
    v_receipt json;
    v_eps float8 := {EPS!r};
BEGIN
    {plpgsql(f"SELECT {TASK_COLUMNS} FROM tasks t WHERE t.swarm_id = :swarm AND t.id = :task")}
        AND EXISTS (SELECT 1 FROM agents WHERE swarm_id = a_swarm AND id = a_agent){for_update} INTO tk;
    IF NOT FOUND OR tk.state <> 'claimed' OR tk.lease_owner IS DISTINCT FROM a_agent
       OR COALESCE(a_claim <> tk.claim_seq, false) THEN
        RETURN json_build_object('code', 'python');
    END IF;
    IF a_success THEN
        v_status := 'succeeded';
    ELSIF tk.attempts >= a_max_attempts THEN
        v_status := 'failed';
        v_error := 'attempt ' || tk.attempts || ' failed, no attempts left (limit ' || a_max_attempts || '): '
            || COALESCE(NULLIF(a_summary, ''), 'no summary');
    ELSE
        v_status := 'open';
        v_error := 'attempt ' || tk.attempts || ' failed: ' || COALESCE(NULLIF(a_summary, ''), 'no summary');
    END IF;
    v_p := CASE WHEN tk.assignee = a_agent THEN tk.p_success END;
    UPDATE tasks SET status = v_status, lease_owner = NULL, lease_expires_at = NULL,
        assignee = CASE WHEN v_status = 'open' THEN NULL ELSE assignee END, last_error = v_error,
        result = CASE WHEN a_success THEN a_summary END, updated_at = a_now WHERE swarm_id = a_swarm AND id = a_task;
    UPDATE claims SET ended_at = a_now, ended = 'reported' WHERE swarm_id = a_swarm AND task_id = a_task
        AND claim_seq = tk.claim_seq;
    {plpgsql(SEEN_SQL, ("now", "swarm", "agent"))};
    -- The estimators' predictions for this (task, agent), scored (scoring.log_loss and brier) and consumed, each
    -- pair kept in its estimator's ring at the slot of its new count (scores.KEEP_SQL).
    WITH scored AS (DELETE FROM predictions WHERE swarm_id = a_swarm AND task_id = a_task AND agent_id = a_agent
                    RETURNING estimator, p),
    sums AS (
        INSERT INTO estimator_scores (swarm_id, estimator, n, log_loss_sum, brier_sum)
        SELECT a_swarm, estimator, 1,
               -ln(CASE WHEN a_success THEN LEAST(GREATEST(p, v_eps), 1::float8 - v_eps)
                        ELSE 1::float8 - LEAST(GREATEST(p, v_eps), 1::float8 - v_eps) END),
               (p - a_success::int) * (p - a_success::int)
        FROM scored
        ON CONFLICT (swarm_id, estimator) DO UPDATE SET n = estimator_scores.n + 1,
            log_loss_sum = estimator_scores.log_loss_sum + excluded.log_loss_sum,
            brier_sum = estimator_scores.brier_sum + excluded.brier_sum
        RETURNING estimator, n)
    INSERT INTO estimator_outcomes (swarm_id, estimator, slot, seq, p, success, agent_id)
    SELECT a_swarm, s.estimator, u.n % {KEPT_OUTCOMES}, u.n, s.p, a_success::int, a_agent
    FROM scored s JOIN sums u ON u.estimator = s.estimator
    ON CONFLICT (swarm_id, estimator, slot) DO UPDATE SET seq = excluded.seq, p = excluded.p,
        success = excluded.success, agent_id = excluded.agent_id;
    IF a_success THEN
        SELECT COALESCE(json_agg(u.id ORDER BY u.seq), '[]') INTO v_unblocked
        FROM ({plpgsql(UNBLOCKED_SQL.replace("SELECT t.id FROM", "SELECT t.id, t.seq FROM", 1))}) u;
    END IF;
    IF v_status = 'open' THEN
        v_state := ({plpgsql(f"SELECT {STATE_SQL} FROM tasks t WHERE t.swarm_id = :swarm AND t.id = :task")});
    ELSE
        v_state := v_status;
    END IF;
    v_id := nextval(pg_get_serial_sequence('outcomes', 'id'));
    v_receipt := json_build_object('task_id', a_task, 'state', v_state, 'attempts', tk.attempts,
        'claim', tk.claim_seq, 'outcome_id', v_id, 'unblocked', v_unblocked, 'note', NULL);
    INSERT INTO outcomes (id, swarm_id, task_id, agent_id, task_text, success, summary, duration_s, p_success,
        created_at, claim_seq, receipt) VALUES (v_id, a_swarm, a_task, a_agent, tk.description, a_success::int,
        a_summary, a_duration_s, v_p, a_now, tk.claim_seq, v_receipt::text);
    {_NEWS}
    RETURN json_build_object('code', 'done', 'notified', true, 'receipt', v_receipt);
END"""
    return _function("report", (("swarm", "text"), ("task", "text"), ("agent", "text"), ("success", "boolean"),
                                ("summary", "text"), ("duration_s", "double precision"), ("claim", "integer"),
                                ("now", "double precision"), ("max_attempts", "integer")), body)


# The functions this module creates, as PostgreSQL names them: a stem and 12 hex digits of the text's hash.
_OURS = r"^ansf_(claim|report)_[0-9a-f]{12}$"


def current_names(store: PostgresStore) -> set[str]:
    """The functions this version calls on `store` (created on first use)."""
    return {claim(store.for_update, store.skip_locked).name, report(store.for_update).name}


def stale(store: PostgresStore) -> list[str]:
    """Claim and outcome functions in the store's schema that this version does not call: left by earlier
    versions (each change to a function's text is a new name), as `name(argument types)`."""
    with store.reading() as conn:
        rows = conn.execute(
            "SELECT p.proname, p.oid::regprocedure::text FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
            "WHERE n.nspname = current_schema() AND p.proname ~ ? ORDER BY 2", (_OURS,)).fetchall()
    keep = current_names(store)
    return [signature for name, signature in rows if name not in keep]


def prune(store: PostgresStore) -> list[str]:
    """Drop the stale functions (a replica of an earlier version still running would fail its claims: run this
    once every replica runs this version); the ones dropped."""
    gone = stale(store)
    with store.transaction() as conn:
        for signature in gone:
            conn.execute(f"DROP FUNCTION IF EXISTS {signature}")  # from pg_proc's own rendering, not user input
    return gone
