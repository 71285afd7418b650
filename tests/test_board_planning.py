"""Planning with more tasks than capacity (issue 18 item 5): on dependency chains every agent gets work it can
start now, and an unassigned task's reason never contradicts the same answer."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mcp import Client

from ansf_mcp.coordinator.episode import Episode, EpisodeAgent, EpisodeTask
from ansf_mcp.coordinator.solver import solve
from ansf_mcp.coordinator.strategies import coordinate
from tests.mcp_calls import call

ROLES = ["backend", "frontend", "tests", "docs"]


def chains(n_chains: int, length: int) -> list[EpisodeTask]:
    return [EpisodeTask(id=f"c{c}-{k}", description=f"{ROLES[(c + k) % 4]} work on part {c} step {k}",
                        depends_on=[f"c{c}-{k - 1}"] if k else [])
            for c in range(n_chains) for k in range(length)]


def agents(n: int) -> list[EpisodeAgent]:
    return [EpisodeAgent(id=f"agent-{i}", role=ROLES[i % 4], capabilities=[ROLES[i % 4]]) for i in range(n)]


@pytest.mark.parametrize("strategy", ["similarity", "history", "tags", "round-robin"])
def test_sixteen_chains_give_each_of_sixteen_agents_a_task_it_can_start(strategy: str) -> None:
    result = coordinate(Episode(id="e", agents=agents(16), tasks=chains(16, 4)), strategy, neural_allowed=False)
    assert len({a.agent for a in result.assignments}) == 16
    assert sorted(a.task for a in result.assignments) == sorted(f"c{c}-0" for c in range(16))
    assert {u.reason for u in result.unassigned} == {"capacity exhausted"}


@st.composite
def episodes(draw: st.DrawFn) -> tuple[Episode, np.ndarray]:
    n_agents = draw(st.integers(1, 6))
    n_tasks = draw(st.integers(1, 16))
    tasks = []
    for j in range(n_tasks):
        deps = draw(st.lists(st.integers(0, j - 1), max_size=3, unique=True)) if j else []
        tasks.append(EpisodeTask(id=f"t{j}", description=f"task {j}", priority=draw(st.integers(0, 2)),
                                 depends_on=[f"t{d}" for d in deps]))
    caps = draw(st.lists(st.integers(1, 2), min_size=n_agents, max_size=n_agents))
    ep = Episode(id="e", agents=[EpisodeAgent(id=f"a{i}", capacity=c) for i, c in enumerate(caps)], tasks=tasks)
    p = np.array(draw(st.lists(st.floats(0, 1), min_size=n_agents * n_tasks, max_size=n_agents * n_tasks)))
    return ep, p.reshape(n_agents, n_tasks)


@settings(max_examples=300, deadline=None)
@given(episodes())
def test_reasons_never_contradict_the_assignment(drawn: tuple[Episode, np.ndarray]) -> None:
    ep, p = drawn
    solution = solve(ep, p)
    assigned = {a.task for a in solution.assignments}
    by_id = {t.id: t for t in ep.tasks}
    assert assigned.isdisjoint(u.task for u in solution.unassigned)
    assert assigned | {u.task for u in solution.unassigned} == set(by_id)
    for u in solution.unassigned:
        if u.reason.startswith("dependency "):
            dep = u.reason.split("'")[1]
            assert dep not in assigned and dep in by_id[u.task].depends_on, u
    for a in solution.assignments:  # nothing is planned before what it depends on
        assert set(by_id[a.task].depends_on) <= assigned


@pytest.mark.anyio
async def test_coordinate_over_mcp_starts_every_agent(client: Client) -> None:
    sw = (await call(client, "spawn_swarm", name="c",
                     agents=[{"role": r, "capabilities": [r]} for r in ROLES * 2]))["swarm_id"]
    tasks = [{"id": t.id, "description": t.description, "depends_on": t.depends_on} for t in chains(8, 3)]
    result = await call(client, "coordinate", swarm_id=sw, tasks=tasks, strategy="similarity")
    assert len({a["agent"] for a in result["assignments"]}) == 8
    firsts = [(await call(client, "next_task", swarm_id=sw, agent_id=f"agent-{i}"))["task"]["id"] for i in range(8)]
    assert sorted(firsts) == sorted(f"c{c}-0" for c in range(8))
