"""Board activity: tasks per state, claims and outcomes, read from the store."""

from __future__ import annotations

import sqlite3
from typing import Any

from ansf_mcp.board.lifecycle import state_counts


def task_counts(conn: sqlite3.Connection, board: Any, now: float | None = None) -> dict[str, int]:
    """Tasks of every swarm per state, as the board reads them (its policy, lifecycle.STATE_SQL)."""
    return state_counts(conn, board.policy, board.clock() if now is None else now)


def claims_counter(conn: sqlite3.Connection) -> int:
    """Σ tasks.claim_seq: every claim (next_task) adds one and nothing takes one away, so its increase between
    readings counts claims."""
    return int(conn.execute("SELECT COALESCE(SUM(claim_seq), 0) FROM tasks").fetchone()[0])


def outcome_totals(conn: sqlite3.Connection) -> dict[str, int]:
    """Reported outcomes on the board, by result: counters for Prometheus (they fall only when a swarm is deleted,
    which Prometheus reads as a counter reset)."""
    rows = conn.execute("SELECT success, COUNT(*) FROM outcomes GROUP BY success").fetchall()
    totals = {"success": 0, "failure": 0}
    for success, n in rows:
        totals["success" if success else "failure"] += int(n)
    return totals


def outcomes_since(conn: sqlite3.Connection, since: float) -> int:
    return int(conn.execute("SELECT COUNT(*) FROM outcomes WHERE created_at >= ?", (since,)).fetchone()[0])
