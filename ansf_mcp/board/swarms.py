"""Swarms and their agents: create, read, dissolve."""

from __future__ import annotations

import json
import time
import uuid

from ansf_mcp.board.errors import BoardError
from ansf_mcp.board.lookup import require
from ansf_mcp.board.models import (
    MAX_AGENTS_PER_SWARM,
    AgentSpec,
    DissolveReceipt,
    Topology,
)
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


def spawn(store: Store, name: str, agents: list[AgentSpec], topology: Topology) -> str:
    """Create the swarm and its agents; its id."""
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
    return swarm_id


def dissolve(store: Store, swarm_id: str) -> DissolveReceipt:
    """Delete the swarm and all it holds; the same call again answers what the first removed, with a note."""
    with store.transaction() as conn:
        # Locked: a repeat arriving while the first call writes waits for it, then finds the receipt (on PostgreSQL it
        # saw the swarm still there and failed on the receipt's key).
        if conn.execute(f"SELECT 1 FROM swarms WHERE id = ?{store.for_update}", (swarm_id,)).fetchone() is None:
            gone = conn.execute("SELECT receipt, dissolved_at FROM dissolved_swarms WHERE id = ?",
                                (swarm_id,)).fetchone()
            if gone is None:
                require(conn, swarm_id)  # never existed: NotFound
            first = DissolveReceipt.model_validate_json(gone["receipt"])
            return first.model_copy(update={"note": (
                f"a repeat: an earlier call dissolved this swarm {max(0.0, time.time() - gone['dissolved_at']):.0f} s "
                "ago and removed what is listed; nothing was written now")})
        removed = {
            table: conn.execute(f"SELECT COUNT(*) FROM {table} WHERE swarm_id = ?", (swarm_id,)).fetchone()[0]
            for table in ("agents", "tasks", "outcomes", "messages", "claims")
        }
        receipt = DissolveReceipt(swarm_id=swarm_id, removed=removed)
        conn.execute("DELETE FROM swarms WHERE id = ?", (swarm_id,))
        conn.execute("INSERT INTO dissolved_swarms (id, receipt, dissolved_at) VALUES (?, ?, ?)",
                     (swarm_id, receipt.model_dump_json(), time.time()))
    return receipt
