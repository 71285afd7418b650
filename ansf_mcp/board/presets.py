"""Multi-swarm presets: the six specialised swarms of the original design (32 agents in all)."""

from __future__ import annotations

from ansf_mcp.board import swarms
from ansf_mcp.board.models import AgentSpec, Topology
from ansf_mcp.store.db import Store

# (swarm name, topology, [(role, capabilities)]); 5 + 6 + 6 + 5 + 5 + 5 = 32 agents.
SIX_SWARMS: list[tuple[str, Topology, list[tuple[str, list[str]]]]] = [
    ("research", "mesh", [("researcher", ["literature", "analysis"])] * 3 + [("analyst", ["data", "statistics"])] * 2),
    ("backend", "hierarchical", [("backend lead", ["architecture", "python"])]
     + [("backend", ["python", "api", "database"])] * 5),
    ("frontend", "star", [("frontend lead", ["design", "react"])] + [("frontend", ["typescript", "css", "ui"])] * 5),
    ("testing", "ring", [("tester", ["pytest", "integration", "qa"])] * 5),
    ("devops", "star", [("devops lead", ["ci", "kubernetes"])] + [("devops", ["deploy", "docker", "monitoring"])] * 4),
    ("security", "mesh", [("security", ["audit", "threat model", "auth"])] * 5),
]
PRESETS = {"six-swarms": SIX_SWARMS}


def spawn_preset(store: Store, preset: str) -> list[str]:
    """The preset's swarms, created; their ids."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; available: {', '.join(PRESETS)}")
    return [
        swarms.spawn(store, name, [AgentSpec(role=r, capabilities=c) for r, c in members], topology)
        for name, topology, members in PRESETS[preset]
    ]
