"""Coordination quality on SIMULATED episodes: the value ratio against the oracle (docs/COORDINATION.md)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

from ansf_mcp.coordinator.episode import CoordinationResult, Episode
from ansf_mcp.coordinator.solver import solve
from ansf_mcp.lab.family import FamilyEpisode
from ansf_mcp.lab.simulator import SimEpisode

Simulated = SimEpisode | FamilyEpisode  # anything with .episode and the hidden .p_true


def _index(episode: Episode) -> tuple[dict[str, int], dict[str, int]]:
    return {a.id: i for i, a in enumerate(episode.agents)}, {t.id: j for j, t in enumerate(episode.tasks)}


def check_valid(episode: Episode, result: CoordinationResult) -> None:
    """Raise ValueError unless every task is assigned at most once, capacities hold, and every task is placed
    when capacity allows (no dependencies in simulated episodes)."""
    agents, tasks = _index(episode)
    seen: set[str] = set()
    load: dict[str, int] = {}
    for a in result.assignments:
        if a.task not in tasks or a.agent not in agents:
            raise ValueError(f"assignment names unknown ids {a.task!r}/{a.agent!r}")
        if a.task in seen:
            raise ValueError(f"task {a.task!r} assigned twice")
        seen.add(a.task)
        load[a.agent] = load.get(a.agent, 0) + 1
    for agent in episode.agents:
        if load.get(agent.id, 0) > agent.capacity:
            raise ValueError(f"agent {agent.id!r} over capacity")
    capacity = sum(a.capacity for a in episode.agents)
    blocked = {u.task for u in result.unassigned if u.reason != "capacity exhausted"}
    expected = min(capacity, len(episode.tasks) - len(blocked))
    if len(result.assignments) < expected:
        raise ValueError(f"{len(result.assignments)} tasks assigned where capacity allowed {expected}")


def assigned_value(episode: Episode, p_true: np.ndarray, result: CoordinationResult) -> float:
    agents, tasks = _index(episode)
    return float(sum(p_true[agents[a.agent], tasks[a.task]] for a in result.assignments))


def oracle_value(episode: Episode, p_true: np.ndarray) -> float:
    """The exact matching on the true probabilities, with the same solver (priorities, capacities)."""
    sol = solve(episode, p_true)
    agents, tasks = _index(episode)
    return float(sum(p_true[agents[a.agent], tasks[a.task]] for a in sol.assignments))


def value_ratio(episode: Episode, p_true: np.ndarray, result: CoordinationResult) -> float:
    """Σ p* over the chosen assignment ÷ Σ p* over the oracle's assignment; 1.0 is optimal."""
    check_valid(episode, result)
    best = oracle_value(episode, p_true)
    if best <= 0.0:
        return 1.0
    return assigned_value(episode, p_true, result) / best


def ratio_of_estimate(episode: Episode, p_true: np.ndarray, p: np.ndarray) -> float:
    """Value ratio of solving on an estimate `p` (skips building a CoordinationResult)."""
    sol = solve(episode, p)
    agents, tasks = _index(episode)
    got = sum(p_true[agents[a.agent], tasks[a.task]] for a in sol.assignments)
    best = oracle_value(episode, p_true)
    return float(got / best) if best > 0 else 1.0


def mean_ci(values: Sequence[float]) -> tuple[float, float]:
    """Mean and the half-width of its normal-approximation 95 % confidence interval."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.size == 0:
        return float("nan"), float("nan")
    if arr.size == 1:
        return float(arr[0]), float("nan")
    return float(arr.mean()), float(1.96 * arr.std(ddof=1) / math.sqrt(arr.size))


def evaluate_estimator(sims: Sequence[Simulated], estimate: Callable[[Episode], np.ndarray]) -> list[float]:
    return [ratio_of_estimate(s.episode, s.p_true, estimate(s.episode)) for s in sims]
