"""Small builders for board tests."""

from __future__ import annotations

from ansf_mcp.board.models import AgentSpec, TaskSpec


def agents(*roles: str, capacity: int = 1) -> list[AgentSpec]:
    return [AgentSpec(role=r, capacity=capacity) for r in roles]


def tasks(*descriptions: str, **deps: list[str]) -> list[TaskSpec]:
    return [TaskSpec(id=f"t{i}", description=d, depends_on=deps.get(f"t{i}", [])) for i, d in enumerate(descriptions)]


class FakeClock:
    """The board's clock under test control: time moves only when a test says so."""

    def __init__(self, start: float | None = None):
        import time

        self.now = time.time() if start is None else start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
