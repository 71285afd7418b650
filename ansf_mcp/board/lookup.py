"""Row lookups that fail with a clear NotFound; shared by every board module."""

from __future__ import annotations

from ansf_mcp.board.errors import NotFound
from ansf_mcp.store.base import Connection, Row


def require(conn: Connection, swarm_id: str, lock: str = "") -> Row:
    """The swarm's row; `lock` (a store's lock clause) holds it for the transaction."""
    row = conn.execute(f"SELECT * FROM swarms WHERE id = ?{lock}", (swarm_id,)).fetchone()
    if row is None:
        raise NotFound(f"unknown swarm {swarm_id!r}; swarm_status() lists the swarms")
    return row


def agent_rows(conn: Connection, swarm_id: str) -> list[Row]:
    return conn.execute("SELECT * FROM agents WHERE swarm_id = ? ORDER BY position", (swarm_id,)).fetchall()


def require_agent(conn: Connection, swarm_id: str, agent_id: str, lock: str = "") -> Row:
    """The agent's row; `lock` (the store's `for_update`) holds it for the transaction on PostgreSQL, so one
    agent's claims on two replicas take turns (its capacity is checked against what the other wrote)."""
    row = conn.execute(f"SELECT * FROM agents WHERE swarm_id = ? AND id = ?{lock}", (swarm_id, agent_id)).fetchone()
    if row is None:
        known = ", ".join(r["id"] for r in agent_rows(conn, swarm_id)[:20])
        raise NotFound(f"unknown agent {agent_id!r} in swarm {swarm_id!r} (agents: {known})")
    return row
