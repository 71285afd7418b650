"""Choosing an estimator, running it, and shaping the result: one entry point for the CLI, the board and the tools.

Estimators (agents x tasks): `neural` (the learned network, `neural.py`), and the non-learned `similarity`,
`history`, `tags` and `round-robin` (`baselines.py`). `auto` picks among the probabilistic ones — the network
when it may be used, similarity, history — by their realised predictive scores on the swarm's reported outcomes,
starting from a prior measured on SIMULATED held-out episodes (`scoring.py`), and says which it used and why.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from ansf_mcp.coordinator import success
from ansf_mcp.coordinator.baselines import ESTIMATORS, PROBABILISTIC
from ansf_mcp.coordinator.comparisons import Comparisons
from ansf_mcp.coordinator.episode import STRATEGIES, CoordinationResult, Episode, ModelUnavailable, Strategy
from ansf_mcp.coordinator.scoring import (
    AUTO_CANDIDATES,
    REPORTED,
    SUCCESS_MODEL,
    AutoChoice,
    Tally,
    choose,
    explains,
    fold_losses,
    holdout,
)
from ansf_mcp.coordinator.solver import solve

__all__ = ["STRATEGIES", "Decision", "ModelUnavailable", "Strategy", "coordinate", "decide"]


def _load_neural(model: str | None):
    from ansf_mcp.coordinator import neural  # torch stays unimported unless a neural strategy is tried

    return neural.load(model)


@dataclass
class Decision:
    result: CoordinationResult
    # Every probabilistic estimate computed for this decision, so that the board can score each estimator on the
    # outcomes that come back (what `auto` learns from), and the reported p_success (scoring.REPORTED, the success
    # model) so that the number answers hand out is scored on the same outcomes.
    estimates: dict[str, np.ndarray] = field(default_factory=dict)
    auto: AutoChoice | None = None
    # p(the work succeeds | this agent does it) for every pair (success.py): what answers report as p_success;
    # empty for strategies that report no probability.
    success: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))


def decide(
    episode: Episode,
    strategy: str = "auto",
    *,
    model: str | None = None,
    neural_allowed: bool = True,
    external_states: Mapping[str, str] | None = None,
    open_load: Mapping[str, int] | None = None,
    neural=None,
    tallies: Mapping[str, Tally] | None = None,
) -> Decision:
    """Estimate, then solve.

    `neural` passes an already-loaded estimator (the CLI loads once per file); `neural_allowed=False` is how the
    resource governor keeps torch out in the critical phase; `tallies` are the swarm's realised scores per
    estimator (none: the simulated prior alone decides `auto`); `open_load` is each agent's unfinished work on the
    board, which breaks exact ties (solver.solve).
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; choose one of {', '.join(STRATEGIES)}")
    started = time.perf_counter()
    note = None
    net = None
    if strategy in ("auto", "neural"):
        if not neural_allowed:
            if strategy == "neural":
                raise ModelUnavailable("the neural coordinator is disabled in the current operating phase")
            note = "the neural coordinator is disabled in the current operating phase"
        else:
            try:
                net = neural if neural is not None else _load_neural(model)
            except ModelUnavailable as exc:
                if strategy == "neural":
                    raise
                note = str(exc)
    cmp = Comparisons(episode)
    estimates: dict[str, np.ndarray] = {}
    if net is not None:
        estimates["neural"] = net.estimate(episode, cmp)
    for name in ("similarity", "history"):
        estimates[name] = ESTIMATORS[name](episode, cmp)
    auto = None
    if strategy == "auto":
        candidates = [c for c in AUTO_CANDIDATES if c in estimates]
        swarm = dict(tallies or {})
        auto = choose(swarm, candidates, _fold(episode, candidates, net, choose(swarm, candidates).estimator))
        used = auto.estimator
        if note:
            note = f"{note}; auto chose among {', '.join(estimates)}"
    else:
        used = strategy
    p = estimates[used] if used in estimates else ESTIMATORS[used](episode, cmp)
    confidence = np.zeros_like(p) if used == "round-robin" else None  # no information behind the choice
    solution = solve(episode, p, confidence=confidence, external_states=external_states, open_load=open_load)
    probabilistic = used == "neural" or used in PROBABILISTIC
    # The estimator chose who (fit); p_success says whether the work will succeed if that agent does it. Strategies
    # without probabilities report none, so the success model is not run for them.
    p_work = success.shipped().estimate(episode, cmp) if probabilistic else np.zeros((0, 0))
    if probabilistic:
        # The model's own p is kept too: its record on this swarm is what the swarm's shift is fitted on.
        estimates[SUCCESS_MODEL] = p_work
        record = (tallies or {}).get(SUCCESS_MODEL, Tally())
        shift = success.swarm_shift(record.kept)
        if shift:
            p_work = success.shifted(p_work, shift)
        own = success.agent_shifts(record.kept, record.kept_agents, [a.id for a in episode.agents], shift)
        if own.any():
            p_work = success.shifted(p_work, own[:, None])
        estimates[REPORTED] = p_work
    agent_row = {a.id: i for i, a in enumerate(episode.agents)}
    task_col = {t.id: j for j, t in enumerate(episode.tasks)}
    assignments = [
        a.model_copy(update={"p_success": round(float(p_work[agent_row[a.agent], task_col[a.task]]), 4)
                             if probabilistic else None})
        for a in solution.assignments
    ]
    result = CoordinationResult(
        id=episode.id,
        strategy=used,
        model=net.name if used == "neural" and net is not None else None,
        assignments=assignments,
        unassigned=solution.unassigned,
        elapsed_ms=round((time.perf_counter() - started) * 1000, 3),
        reason=auto.reason if auto else None,
        note=note,
    )
    return Decision(result=result, estimates=estimates, auto=auto, success=p_work)


def _fold(episode: Episode, candidates: list[str], net, prefer: str) -> dict[str, np.ndarray] | None:
    """Every candidate's log-loss on past tasks held out of the decision's history (None: no fold to score). The
    network, the costly one, runs on the fold only if it is a rival or a cheap rival explains enough to overrule
    it (scoring.FOLD_GAIN); otherwise its row is left out and `choose` keeps `prefer`."""
    fold = holdout(episode)
    if fold is None:
        return None
    cmp = Comparisons(fold.episode)
    cheap = {name: ESTIMATORS[name](fold.episode, cmp) for name in candidates if name != "neural"}
    losses = fold_losses(fold, cheap)
    if "neural" in candidates and (prefer != "neural" or any(explains(losses, name) for name in cheap)):
        losses = fold_losses(fold, {**cheap, "neural": net.estimate(fold.episode, cmp)})
    return losses


def coordinate(episode: Episode, strategy: str = "auto", **options) -> CoordinationResult:
    """`decide` without the bookkeeping: the result alone."""
    return decide(episode, strategy, **options).result
