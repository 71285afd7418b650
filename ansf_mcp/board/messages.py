"""Messages between agents, routed by the swarm's topology.

mesh: anyone to anyone. star: the first agent is the hub; spokes talk only to the hub, the hub to anyone.
hierarchical: an agent talks to its lead and its direct reports. ring: an agent talks to its successor.
A message without a recipient goes to every neighbour the topology allows.
"""

from __future__ import annotations

import time

from ansf_mcp.board.errors import Refused
from ansf_mcp.board.lookup import agent_rows, require, require_agent
from ansf_mcp.board.models import MessageView, SentMessage
from ansf_mcp.store.base import Row
from ansf_mcp.store.db import Store


def neighbours(topology: str, agents: list[Row], sender: str) -> tuple[list[str], str]:
    """Who `sender` may message directly, and a sentence explaining the rule."""
    ids = [a["id"] for a in agents]
    if topology == "mesh":
        return [i for i in ids if i != sender], "mesh: anyone may message anyone"
    if topology == "star":
        hub = ids[0]
        if sender == hub:
            return ids[1:], f"star: the hub {hub!r} may message every spoke"
        return [hub], f"star: spokes reach others only through the hub {hub!r}"
    if topology == "hierarchical":
        lead = {a["id"]: a["lead"] for a in agents}
        allowed = ([lead[sender]] if lead[sender] else []) + [i for i in ids if lead[i] == sender]
        up = f"its lead {lead[sender]!r}" if lead[sender] else "no lead (it is the root)"
        return allowed, f"hierarchical: {sender!r} may message {up} and its direct reports"
    if topology == "ring":
        nxt = ids[(ids.index(sender) + 1) % len(ids)]
        return ([nxt] if nxt != sender else []), f"ring: {sender!r} may message only its successor {nxt!r}"
    raise ValueError(f"unknown topology {topology!r}")


def send(store: Store, swarm_id: str, from_agent: str, to_agent: str | None, body: str) -> SentMessage:
    with store.transaction() as conn:
        swarm = require(conn, swarm_id)
        require_agent(conn, swarm_id, from_agent)
        if to_agent is not None:
            require_agent(conn, swarm_id, to_agent)
        agents = agent_rows(conn, swarm_id)
        allowed, rule = neighbours(swarm["topology"], agents, from_agent)
        if to_agent is None:
            recipients, route = allowed, f"broadcast ({rule})"
        elif to_agent == from_agent:
            raise Refused("an agent cannot message itself")
        elif to_agent in allowed:
            recipients, route = [to_agent], "direct"
        else:
            raise Refused(f"{from_agent!r} cannot message {to_agent!r}: {rule}")
        if not recipients:
            # Alone in its swarm, the topology's rule ("mesh: anyone may message anyone") would read as a
            # contradiction; the reason is that there is no one else.
            why = "it is the only agent in the swarm" if len(agents) == 1 else rule
            raise Refused(f"{from_agent!r} has nobody to message: {why}")
        cur = conn.execute(
            "INSERT INTO messages (swarm_id, from_agent, to_agent, route, body, created_at) VALUES (?,?,?,?,?,?) "
            "RETURNING id",
            (swarm_id, from_agent, to_agent, route, body, time.time()),
        )
        message_id = int(cur.fetchone()[0])
        conn.executemany(
            "INSERT INTO message_recipients (message_id, agent_id) VALUES (?, ?)",
            [(message_id, r) for r in recipients],
        )
    store.notify(news_key(swarm_id))  # wakes read_messages(wait_s=...) callers on every replica
    return SentMessage(id=message_id, delivered_to=recipients, route=route)


def news_key(swarm_id: str) -> str:
    return f"messages:{swarm_id}"


def read(store: Store, swarm_id: str, agent_id: str, since: int = 0, limit: int = 100) -> list[MessageView]:
    """Messages delivered to `agent_id` with id > since, oldest first."""
    with store.reading() as conn:
        require(conn, swarm_id)
        require_agent(conn, swarm_id, agent_id)
        rows = conn.execute(
            "SELECT m.* FROM messages m JOIN message_recipients r ON r.message_id = m.id "
            "WHERE m.swarm_id = ? AND r.agent_id = ? AND m.id > ? ORDER BY m.id LIMIT ?",
            (swarm_id, agent_id, since, limit),
        ).fetchall()
    return [
        MessageView(
            id=r["id"],
            from_agent=r["from_agent"],
            to_agent=r["to_agent"],
            route=r["route"],
            body=r["body"],
            created_at=r["created_at"],
        )
        for r in rows
    ]
