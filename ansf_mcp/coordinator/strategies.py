"""Choosing a strategy, running it, and shaping the result: one entry point for the CLI and the tools."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Protocol

import numpy as np

from ansf_mcp.coordinator.baselines import ESTIMATORS
from ansf_mcp.coordinator.episode import STRATEGIES, CoordinationResult, Episode, ModelUnavailable, Strategy
from ansf_mcp.coordinator.solver import solve

__all__ = ["STRATEGIES", "ModelUnavailable", "NeuralEstimator", "Strategy", "coordinate"]


class NeuralEstimator(Protocol):
    name: str

    def estimate(self, episode: Episode) -> tuple[np.ndarray, np.ndarray | None]:
        """(p, confidence-or-None), both (agents x tasks)."""
        ...


def _load_neural(model: str | None) -> NeuralEstimator:
    from ansf_mcp.coordinator import neural  # torch stays unimported unless a neural strategy is tried

    return neural.load(model)


def coordinate(
    episode: Episode,
    strategy: str = "auto",
    *,
    model: str | None = None,
    neural_allowed: bool = True,
    external_states: Mapping[str, str] | None = None,
    neural: NeuralEstimator | None = None,
) -> CoordinationResult:
    """Estimate, then solve. `auto` uses the neural model when it loads and is allowed, else the history estimate.

    `neural` passes an already-loaded estimator (the CLI loads once per file); `neural_allowed=False` is how the
    resource governor keeps torch out in the critical phase.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; choose one of {', '.join(STRATEGIES)}")
    started = time.perf_counter()
    note = None
    used = strategy
    confidence = None
    model_name = None
    if strategy in ("auto", "neural"):
        if not neural_allowed:
            if strategy == "neural":
                raise ModelUnavailable("the neural coordinator is disabled in the current operating phase")
            note, used = "neural coordinator disabled in the current operating phase; used the history estimate", "history"
        else:
            try:
                estimator = neural if neural is not None else _load_neural(model)
            except ModelUnavailable as exc:
                if strategy == "neural":
                    raise
                note, used = f"{exc}; used the history estimate", "history"
            else:
                p, confidence = estimator.estimate(episode)
                used, model_name = "neural", estimator.name
    if used != "neural":
        p = ESTIMATORS[used](episode)
        if used == "round-robin":
            confidence = np.zeros_like(p)  # no information behind the choice
    solution = solve(episode, p, confidence=confidence, external_states=external_states)
    return CoordinationResult(
        id=episode.id,
        strategy=used,
        model=model_name,
        assignments=solution.assignments,
        unassigned=solution.unassigned,
        elapsed_ms=round((time.perf_counter() - started) * 1000, 3),
        note=note,
    )
