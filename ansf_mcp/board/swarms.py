"""Swarms and their agents: create, read, dissolve."""

from __future__ import annotations

import json
import sqlite3
import time
import uuid

from ansf_mcp.board import scores
from ansf_mcp.board.errors import BoardError
from ansf_mcp.board.lookup import agent_rows, require
from ansf_mcp.board.models import (
    MAX_AGENTS_PER_SWARM,
    AgentSpec,
    AgentView,
    DissolveReceipt,
    SwarmSummary,
    SwarmView,
    Topology,
)
from ansf_mcp.board.tasks import state_counts, task_views
from ansf_mcp.coordinator.scoring import AUTO_CANDIDATES, choose
from ansf_mcp.store.db import Store


def _agent_ids(specs: list[AgentSpec]) -> list[str]:
    given = [s.id for s in specs if s.id]
    if len(set(given)) != len(given):
        dup = next(i for i in given if given.count(i) > 1)
        raise BoardError(f"duplicate agent id {dup!r}")
    taken, ids, n = set(given), [], 0
    for spec in specs:
        if spec.id:
            ids.append(spec.id)
            continue
        while f"agent-{n}" in taken:
            n += 1
        ids.append(f"agent-{n}")
        taken.add(f"agent-{n}")
    return ids


def spawn(store: Store, name: str, agents: list[AgentSpec], topology: Topology) -> SwarmView:
    if not agents:
        raise BoardError("a swarm needs at least one agent")
    if len(agents) > MAX_AGENTS_PER_SWARM:
        raise BoardError(f"{len(agents)} agents requested; a swarm holds at most {MAX_AGENTS_PER_SWARM}")
    ids = _agent_ids(agents)
    leads: list[str | None] = [None] * len(agents)
    if topology == "hierarchical":
        for i, spec in enumerate(agents):
            if i == 0:
                if spec.lead:
                    raise BoardError(f"the first agent {ids[0]!r} is the root of the hierarchy and has no lead")
                continue
            lead = spec.lead or ids[0]
            if lead not in ids[:i]:
                raise BoardError(
                    f"agent {ids[i]!r}: lead {lead!r} must be an agent listed before it (a hierarchy has no cycles)"
                )
            leads[i] = lead
    elif any(s.lead for s in agents):
        raise BoardError(f"'lead' applies to hierarchical swarms only, not {topology}")
    swarm_id = f"swarm-{uuid.uuid4().hex[:12]}"
    with store.transaction() as conn:
        conn.execute(
            "INSERT INTO swarms (id, name, topology, created_at) VALUES (?, ?, ?, ?)",
            (swarm_id, name, topology, time.time()),
        )
        conn.executemany(
            "INSERT INTO agents (swarm_id, id, position, role, capabilities, capacity, lead) VALUES (?,?,?,?,?,?,?)",
            [
                (swarm_id, ids[i], i, s.role, json.dumps(s.capabilities), s.capacity, leads[i])
                for i, s in enumerate(agents)
            ],
        )
    return view(store, swarm_id)


def _counts(conn: sqlite3.Connection, sql: str, *params: object) -> dict[str, int]:
    return {key: n for key, n in conn.execute(sql, params) if key is not None}


def view(store: Store, swarm_id: str, max_tasks: int = 200, max_attempts: int | None = None) -> SwarmView:
    """Read-only: expired leases are shown as re-offered without writing (the next claim writes it down)."""
    with store.reading() as conn:
        swarm = require(conn, swarm_id)
        active = _counts(conn, "SELECT lease_owner, COUNT(*) FROM tasks WHERE swarm_id = ? AND status = 'claimed' "
                         "AND lease_expires_at >= ? GROUP BY lease_owner", swarm_id, time.time())
        assigned = _counts(conn, "SELECT assignee, COUNT(*) FROM tasks WHERE swarm_id = ? AND status = 'open' "
                           "GROUP BY assignee", swarm_id)
        ok = _counts(conn, "SELECT agent_id, COUNT(*) FROM outcomes WHERE swarm_id = ? AND success = 1 "
                     "GROUP BY agent_id", swarm_id)
        ko = _counts(conn, "SELECT agent_id, COUNT(*) FROM outcomes WHERE swarm_id = ? AND success = 0 "
                     "GROUP BY agent_id", swarm_id)
        agents = [
            AgentView(
                id=r["id"],
                role=r["role"],
                capabilities=json.loads(r["capabilities"]),
                capacity=r["capacity"],
                lead=r["lead"],
                active_claims=active.get(r["id"], 0),
                assigned_open=assigned.get(r["id"], 0),
                successes=ok.get(r["id"], 0),
                failures=ko.get(r["id"], 0),
            )
            for r in agent_rows(conn, swarm_id)
        ]
        tasks, omitted = task_views(conn, swarm_id, limit=max_tasks, max_attempts=max_attempts)
        counts = state_counts(conn, swarm_id, max_attempts)
        auto = choose(scores.tallies(conn, swarm_id), list(AUTO_CANDIDATES))
    return SwarmView(
        swarm_id=swarm_id,
        name=swarm["name"],
        topology=swarm["topology"],
        created_at=swarm["created_at"],
        agents=agents,
        tasks_by_state=counts,
        tasks=tasks,
        tasks_omitted=omitted,
        estimators=auto.scores,
        auto_uses=f"{auto.estimator} ({auto.reason}), when the operating phase allows the network",
    )


def summaries(store: Store) -> list[SwarmSummary]:
    with store.reading() as conn:
        rows = conn.execute(
            """SELECT s.id, s.name, s.topology, (SELECT COUNT(*) FROM agents a WHERE a.swarm_id = s.id) AS n
               FROM swarms s ORDER BY s.created_at"""
        ).fetchall()
        return [
            SwarmSummary(
                swarm_id=r["id"],
                name=r["name"],
                topology=r["topology"],
                agents=r["n"],
                tasks_by_state=state_counts(conn, r["id"]),
            )
            for r in rows
        ]


def dissolve(store: Store, swarm_id: str) -> DissolveReceipt:
    with store.transaction() as conn:
        require(conn, swarm_id)
        removed = {
            table: conn.execute(f"SELECT COUNT(*) FROM {table} WHERE swarm_id = ?", (swarm_id,)).fetchone()[0]
            for table in ("agents", "tasks", "outcomes", "messages")
        }
        conn.execute("DELETE FROM swarms WHERE id = ?", (swarm_id,))
    return DissolveReceipt(swarm_id=swarm_id, removed=removed)
