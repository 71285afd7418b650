"""Small builders for board tests."""

from __future__ import annotations

from ansf_mcp.board.models import AgentSpec, TaskSpec


def agents(*roles: str, capacity: int = 1) -> list[AgentSpec]:
    return [AgentSpec(role=r, capacity=capacity) for r in roles]


def tasks(*descriptions: str, **deps: list[str]) -> list[TaskSpec]:
    return [TaskSpec(id=f"t{i}", description=d, depends_on=deps.get(f"t{i}", [])) for i, d in enumerate(descriptions)]
