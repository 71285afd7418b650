"""Coordination quality on SIMULATED episodes: the value ratio against the oracle (docs/COORDINATION.md).

    python -m ansf_mcp.lab.evaluate [--family outcomes|broad] [--sources heldout|validation] [--episodes 300]

prints the value ratio of the default (`auto`, as `coordinate` runs it), the network with its combiner, and the
non-learned `similarity` and `history` on one simulated family, with the paired difference of the default to each
(mean ± 95 % CI over episodes). Choices are made on the validation sources; the held-out ones are for reporting.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections import Counter
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


SEED = 20_261  # the held-out family's seed in docs/MODEL.md and `ansf bench --suite coordination`


def compare(sims: Sequence[Simulated], net) -> tuple[dict[str, list[float]], Counter[str]]:
    """Per method, the value ratio of every episode: the default (`auto`), the network (when `net` is given),
    similarity, history; and how often `auto` used each estimator."""
    from ansf_mcp.coordinator.strategies import coordinate

    methods = ["default (auto)", *(["neural"] if net is not None else []), "similarity", "history"]
    out: dict[str, list[float]] = {m: [] for m in methods}
    used: Counter[str] = Counter()
    for s in sims:
        for name in out:
            strategy = "auto" if name == "default (auto)" else name
            res = coordinate(s.episode, strategy, neural=net, neural_allowed=net is not None)
            out[name].append(value_ratio(s.episode, s.p_true, res))
            if strategy == "auto":
                used[res.strategy] += 1
    return out, used


def main(argv: list[str] | None = None) -> int:
    from ansf_mcp.coordinator import neural
    from ansf_mcp.lab import family

    parser = argparse.ArgumentParser(prog="python -m ansf_mcp.lab.evaluate", description=__doc__.splitlines()[0])
    parser.add_argument("--family", choices=["outcomes", "broad"], default="outcomes",
                        help="the outcome-driven variant (skills show only in success/failure records) or the broad one")
    parser.add_argument("--sources", choices=["heldout", "validation"], default="heldout")
    parser.add_argument("--episodes", type=int, default=300)
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args(argv)
    sources = family.HELDOUT_SOURCES if args.sources == "heldout" else family.VALIDATION_SOURCES
    sims = family.generate(args.episodes, args.seed, sources=sources, n_agents=(4, 12), n_tasks=(6, 24),
                           outcome_driven=args.family == "outcomes")
    ratios, used = compare(sims, neural.load())
    default = np.array(ratios["default (auto)"])
    print(f"SIMULATED: {args.episodes} episodes of the {args.family} family, {args.sources} sources, seed "
          f"{args.seed}; value ratio mean ± 95 % CI; Δ = default − method, paired, in points")
    print("| method | value ratio | Δ default − method |\n| --- | --- | --- |")
    for name, values in ratios.items():
        m, c = mean_ci(values)
        d, dc = mean_ci(100 * (default - np.array(values)))
        print(f"| {name} | {m:.3f} ± {c:.3f} | {'–' if name.startswith('default') else f'{d:+.1f} ± {dc:.1f}'} |")
    print("auto used: " + ", ".join(f"{k} in {v}" for k, v in used.most_common()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
