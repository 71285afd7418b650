"""How `auto` learns which estimator to trust: realised predictive scores on reported outcomes.

For every probabilistic estimator, a swarm keeps the log-loss and Brier score of its predictions on the outcomes
reported to that swarm. `auto` uses the estimator with the lowest log-loss, where each estimator starts from a
prior: its expected log-loss and Brier on SIMULATED held-out episodes (our generators' held-out sources, scored
against their true probabilities; `checkpoints/auto_prior.json`, written by `python -m ansf_mcp.lab.prior`),
counted as PRIOR_WEIGHT outcomes. Real data cannot give this prior: replayed git history says who did a task,
not whether someone else would have succeeded. With no outcomes the prior decides; after a few
dozen outcomes the swarm's own record does.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from pydantic import BaseModel, Field

# What `auto` chooses among; the order breaks ties: the network first, then the strongest non-learned estimator.
AUTO_CANDIDATES = ("neural", "similarity", "history")
PRIOR_FILE = Path(__file__).resolve().parent / "checkpoints" / "auto_prior.json"
# How many outcomes the simulated prior is worth.
PRIOR_WEIGHT = 10.0
# Predictions are clipped before the log so one confident miss costs a lot, not infinity.
EPS = 1e-3


def log_loss(p: float, success: bool) -> float:
    p = min(max(p, EPS), 1.0 - EPS)
    return -math.log(p if success else 1.0 - p)


def brier(p: float, success: bool) -> float:
    return (p - (1.0 if success else 0.0)) ** 2


@dataclass
class Tally:
    """An estimator's record on one swarm."""

    n: int = 0
    log_loss_sum: float = 0.0
    brier_sum: float = 0.0

    def add(self, p: float, success: bool) -> None:
        self.n += 1
        self.log_loss_sum += log_loss(p, success)
        self.brier_sum += brier(p, success)


class EstimatorScore(BaseModel):
    estimator: str
    outcomes: int = Field(description="reported outcomes this estimator had a prediction for, in this swarm")
    log_loss: float | None = Field(description="mean log-loss on those outcomes (lower is better); null before any")
    brier: float | None = Field(description="mean Brier score on those outcomes (lower is better); null before any")
    prior_log_loss: float | None = Field(
        description="expected log-loss on SIMULATED held-out episodes, the starting belief"
    )
    blended_log_loss: float | None = Field(description="what auto compares: prior and outcomes, weighted by count")


class AutoChoice(BaseModel):
    estimator: str
    reason: str
    scores: list[EstimatorScore]


@lru_cache(maxsize=1)
def prior() -> dict[str, dict]:
    """{estimator: {"log_loss": x, "brier": y, ...}} on simulated held-out episodes; empty when the file is missing."""
    try:
        data = json.loads(PRIOR_FILE.read_text())
    except (OSError, ValueError):
        return {}
    return data.get("estimators", {}) if isinstance(data, dict) else {}


def scores(tallies: dict[str, Tally], candidates: list[str]) -> list[EstimatorScore]:
    out = []
    pri = prior()
    for name in candidates:
        t = tallies.get(name, Tally())
        p_ll = pri.get(name, {}).get("log_loss")
        blended = None
        if p_ll is not None or t.n:
            weight = PRIOR_WEIGHT if p_ll is not None else 0.0
            blended = ((p_ll or 0.0) * weight + t.log_loss_sum) / (weight + t.n)
        out.append(
            EstimatorScore(
                estimator=name,
                outcomes=t.n,
                log_loss=round(t.log_loss_sum / t.n, 4) if t.n else None,
                brier=round(t.brier_sum / t.n, 4) if t.n else None,
                prior_log_loss=round(p_ll, 4) if p_ll is not None else None,
                blended_log_loss=round(blended, 4) if blended is not None else None,
            )
        )
    return out


def choose(tallies: dict[str, Tally], candidates: list[str]) -> AutoChoice:
    """The candidate with the lowest blended log-loss; ties and unknowns keep the candidates' order."""
    table = scores(tallies, candidates)
    known = [s for s in table if s.blended_log_loss is not None]
    if not known:
        return AutoChoice(
            estimator=candidates[0],
            reason=f"no simulated prior and no reported outcomes yet; used {candidates[0]}",
            scores=table,
        )
    best = min(known, key=lambda s: s.blended_log_loss)  # type: ignore[arg-type, return-value]
    others = ", ".join(f"{s.estimator} {s.blended_log_loss:.3f}" for s in known if s is not best)
    basis = (
        f"over {best.outcomes} reported outcome(s) and the prior from simulated episodes"
        if best.outcomes
        else "on simulated held-out episodes, its prior (no outcomes reported to this swarm yet)"
    )
    return AutoChoice(
        estimator=best.estimator,
        reason=f"{best.estimator} predicts best: log-loss {best.blended_log_loss:.3f} {basis}"
        + (f"; {others}" if others else ""),
        scores=table,
    )
