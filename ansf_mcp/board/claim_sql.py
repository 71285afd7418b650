"""The SQL of claims and outcomes, shared by both engines' Python path (board.py) and the PostgreSQL functions
built from it (pg_functions.py), so the two cannot drift apart. Named parameters are the board's (`:now`,
`:swarm`, `:agent`, ...; lifecycle.params)."""

from ansf_mcp.board.lifecycle import LEASE_EXPIRED_SQL, STATE_SQL

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
