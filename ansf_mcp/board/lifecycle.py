"""The task lifecycle, in one place: every reader (swarm_status, claims, outcomes, the all-swarms list, the
dashboard) asks for a task's state through `STATE_SQL` with the same policy.

Stored status is open / claimed / succeeded / failed / cancelled. What a task *is* also depends on the time and the policy:

- claimed, lease live             -> claimed
- claimed, lease ran out          -> failed when the attempts are used up, else ready or blocked (re-offered;
                                     the next write on the board records it)
- open, a dependency unfinished   -> blocked
- open, every dependency done     -> ready
- succeeded / failed / cancelled  -> as stored (cancelled: by manage_task, never run)
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ansf_mcp.settings import Settings
from ansf_mcp.store.base import Connection

TASK_STATES: tuple[str, ...] = ("blocked", "ready", "claimed", "succeeded", "failed", "cancelled")

# `t` is the task row; a dependency counts as met only once it succeeded.
UNMET_DEPS_SQL = """EXISTS (SELECT 1 FROM task_deps d JOIN tasks dep ON dep.swarm_id = d.swarm_id AND dep.id = d.depends_on
    WHERE d.swarm_id = t.swarm_id AND d.task_id = t.id AND dep.status != 'succeeded')"""
LEASE_LIVE_SQL = "(t.status = 'claimed' AND t.lease_expires_at >= :now)"
LEASE_EXPIRED_SQL = "(t.status = 'claimed' AND t.lease_expires_at < :now)"
STATE_SQL = f"""(CASE
    WHEN t.status IN ('succeeded', 'failed', 'cancelled') THEN t.status
    WHEN {LEASE_LIVE_SQL} THEN 'claimed'
    WHEN t.status = 'claimed' AND t.attempts >= :max_attempts THEN 'failed'
    WHEN {UNMET_DEPS_SQL} THEN 'blocked'
    ELSE 'ready' END)"""


def _default(name: str) -> Any:
    """A setting's default: the board's defaults live in Settings only."""
    return Settings.model_fields[name].default


@dataclass(frozen=True)
class BoardPolicy:
    """What the board enforces; one object, so callers cannot disagree about it."""

    max_attempts: int = _default("max_attempts")
    lease_s: float = _default("default_lease_s")
    # A ready task assigned to an agent that has not been seen (claim, heartbeat, outcome, next_task) for this
    # long may be taken by another agent (one assigned to an agent busy up to its capacity may be taken at once).
    takeover_grace_s: float = _default("takeover_grace_s")

    @classmethod
    def from_settings(cls, settings: Settings) -> BoardPolicy:
        return cls(
            max_attempts=settings.max_attempts,
            lease_s=settings.default_lease_s,
            takeover_grace_s=settings.takeover_grace_s,
        )


Clock = Callable[[], float]


def params(policy: BoardPolicy, now: float, **more: Any) -> dict[str, Any]:
    """The named parameters STATE_SQL needs."""
    return {"now": now, "max_attempts": policy.max_attempts, **more}


def state_counts(conn: Connection, policy: BoardPolicy, now: float, swarm_id: str | None = None
                 ) -> dict[str, int]:
    """Tasks per state, for one swarm or all of them."""
    counts = dict.fromkeys(TASK_STATES, 0)
    where = "WHERE t.swarm_id = :swarm" if swarm_id is not None else ""
    for state, n in conn.execute(
        f"SELECT {STATE_SQL} AS state, COUNT(*) FROM tasks t {where} GROUP BY 1",
        params(policy, now, swarm=swarm_id),
    ):
        counts[state] += n
    return counts


def state_counts_by_swarm(conn: Connection, policy: BoardPolicy, now: float) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for swarm, state, n in conn.execute(
        f"SELECT t.swarm_id, {STATE_SQL} AS state, COUNT(*) FROM tasks t GROUP BY 1, 2", params(policy, now)
    ):
        out.setdefault(swarm, dict.fromkeys(TASK_STATES, 0))[state] += n
    return out


def system_clock() -> float:
    return time.time()
