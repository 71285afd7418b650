"""How `auto` learns which estimator to trust: realised predictive scores on reported outcomes.

For every probabilistic estimator, a swarm keeps the raw log-loss and Brier sums of its predictions on the
outcomes reported to that swarm (its p as given: calibration) and the newest KEPT_OUTCOMES (p, outcome) pairs.
`auto` compares what the decision's fold compares: the pairs' log-loss after the fold's monotone recalibration,
fitted out of sample (2-fold cross-fitting, `cross_fitted`), so that how well an estimator orders successes above
failures counts, not its scale (the network's p says who would take a task, not a calibrated success
probability); with too few pairs, or not both successes and failures, every candidate is compared raw. `auto`
uses the estimator with the lowest log-loss, where each estimator starts from a prior: its expected log-loss and
Brier on SIMULATED held-out episodes (our generators' held-out sources, scored against their true probabilities;
`checkpoints/auto_prior.json`, written by `python -m ansf_mcp.lab.prior`), counted as PRIOR_WEIGHT outcomes (the
prior is a raw figure: p as given, on those episodes). Real data cannot give this prior: replayed git history says
who did a task, not whether someone else would have succeeded. With no outcomes the prior decides; after a few
dozen outcomes the swarm's own record does.

One decision can already notice a swarm its estimators misread: its agents' own histories are outcomes too.
`holdout` sets aside a fold of the newest past tasks (FOLD_RECORDS at most, from FOLD_AGENTS agents), every
candidate predicts them from the FOLD_HISTORY newest past tasks before them, and `choose` leaves the choice
above for another candidate only when that one explains FOLD_GAIN beyond the base rate of the held-out outcomes
and predicts them better by a paired margin of FOLD_Z standard errors — after a monotone recalibration of each candidate on the fold, so that what is compared
is how well it orders what succeeded above what failed (what the solver uses), not its scale. A lower
bar flips on noise: on the outcome-driven simulated family (validation sources, 200 episodes), holding out every
past task in turn and following the raw log-loss at z >= 1 or 2 lost 0.9 +- 0.9 and 0.7 +- 0.7 points of value
ratio against never overruling; the shipped fold changes it by -0.0 +- 0.1 (1 overrule), and overrules none of
128 replayed validation windows, with or without SZZ failures in their histories. What the fold is for is a swarm
its estimators misread (tests/coordinator/test_auto_fold.py).
The fold is scored only when it holds a success and a failure: on a record of successes alone, log-loss says
which estimator is more optimistic, not which one understands the work.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, Field

from ansf_mcp.coordinator.episode import Episode, EpisodeTask

if TYPE_CHECKING:  # numpy stays unimported on the claim/report path, which reads the tallies
    import numpy as np

# What `auto` chooses among; the order breaks ties: the network first, then the strongest non-learned estimator.
AUTO_CANDIDATES = ("neural", "similarity", "history")
# What answers report as p_success (the success model, success.py) is scored on the same outcomes under this
# name: auto chooses which estimator's fit the solver ranks by, and the number it hands out keeps its own record.
REPORTED = "p_success"
SUCCESS_MODEL = "success_model"  # the success model's p before the swarm's shift (success.swarm_shift)
PRIOR_FILE = Path(__file__).resolve().parent / "checkpoints" / "auto_prior.json"
# How many outcomes the simulated prior is worth.
PRIOR_WEIGHT = 10.0
# Predictions are clipped before the log so one confident miss costs a lot, not infinity.
EPS = 1e-3
# The decision's own fold: how many past tasks are held out, from how many agents (the ones with the longest
# histories), how many of each agent's newest remaining past tasks predict them, and the paired evidence
# (standard errors) a candidate needs to overrule the prior and the tallies. The fold costs one more estimate on a
# small episode (about 0.3 of the network's estimate on a 16 x 64 decision), so it is kept small.
FOLD_RECORDS = 16
FOLD_AGENTS = 4
FOLD_HISTORY = 12
FOLD_Z = 3.0
# ... and how much it must explain of the held-out outcomes beyond their base rate (nats per task): two fitted
# numbers on 16 tasks explain about 0.03 by chance. A decision on which no cheap candidate explains this much
# never runs the network on its fold (the network cannot be overruled there), which keeps its cost off most
# decisions.
FOLD_GAIN = 0.1
# The fold's row for the base rate of the held-out outcomes (a constant p; not a candidate).
BASE_RATE = "base rate"
# A swarm's record: the newest scored (p, success) pairs kept per estimator (board/scores.py keeps them in a ring
# of this size) and the fewest that are recalibrated (2-fold cross-fitting: 8 to fit each half's recalibration).
KEPT_OUTCOMES = 512
RECALIBRATE_MIN = 16


def log_loss(p: float, success: bool) -> float:
    p = min(max(p, EPS), 1.0 - EPS)
    return -math.log(p if success else 1.0 - p)


def brier(p: float, success: bool) -> float:
    return (p - (1.0 if success else 0.0)) ** 2


@dataclass(frozen=True)
class Record:
    """Sums of per-outcome scores (divide by n)."""

    n: int
    log_loss_sum: float
    brier_sum: float


@dataclass
class Tally:
    """An estimator's record on one swarm: raw sums over every outcome scored (its p as given: calibration), and
    the newest KEPT_OUTCOMES (p, success) pairs, oldest first, from which `recalibrated` scores its ordering."""

    n: int = 0
    log_loss_sum: float = 0.0
    brier_sum: float = 0.0
    kept: list[tuple[float, bool]] = field(default_factory=list)
    # The agent each kept pair's outcome came from, aligned with `kept` (None: not known, as for pairs scored
    # before the board kept it); success.agent_shifts reads it only when the two are aligned.
    kept_agents: list[str | None] = field(default_factory=list)

    def add(self, p: float, success: bool, agent: str | None = None) -> None:
        self.n += 1
        self.log_loss_sum += log_loss(p, success)
        self.brier_sum += brier(p, success)
        self.kept.append((p, success))
        del self.kept[:-KEPT_OUTCOMES]
        self.kept_agents.append(agent)
        del self.kept_agents[:-KEPT_OUTCOMES]
        self.__dict__.pop("recalibrated", None)

    @cached_property
    def recalibrated(self) -> Record | None:
        """The kept pairs scored out of sample after the fold's recalibration (cross_fitted); None when too few."""
        return cross_fitted(self.kept)


def cross_fitted(pairs: list[tuple[float, bool]]) -> Record | None:
    """Log-loss and Brier sums of the pairs (p, success) after the fold's monotone recalibration, out of sample:
    2-fold cross-fitting on interleaved halves (so both span the same time; an odd count leaves the oldest pair
    out), each half scored by the recalibration fitted on the other. What counts is how well p orders successes
    above failures, as in the fold and as the solver uses it, not p's scale. None (the caller scores raw) with
    fewer than RECALIBRATE_MIN pairs or a half without both a success and a failure: no ordering to fit."""
    return cross_fitted_all([pairs])[0]


def cross_fitted_all(kept: list[list[tuple[float, bool]]]) -> list[Record | None]:
    """`cross_fitted` of each list of pairs; lists of one length are fitted at once (a swarm's estimators have
    mostly been scored on the same outcomes), so reading a swarm's record costs one fit, not one per estimator."""
    out: list[Record | None] = [None] * len(kept)
    by_size: dict[int, list[int]] = {}
    for i, pairs in enumerate(kept):
        if len(pairs) >= RECALIBRATE_MIN:
            by_size.setdefault(len(pairs) - len(pairs) % 2, []).append(i)
    if not by_size:
        return out
    import numpy as np

    for size, members in by_size.items():
        # Rows 2k and 2k+1: member k's even and odd positions.
        p = np.array([[q for q, _ in kept[i][len(kept[i]) - size:]] for i in members], dtype=np.float64)
        y = np.array([[s for _, s in kept[i][len(kept[i]) - size:]] for i in members], dtype=np.float64)
        z = _logits(p).reshape(len(members), -1, 2).transpose(0, 2, 1).reshape(2 * len(members), -1)
        y = y.reshape(len(members), -1, 2).transpose(0, 2, 1).reshape(2 * len(members), -1)
        one_sided = (y.all(axis=1) | ~y.any(axis=1)).reshape(-1, 2).any(axis=1)  # a half without both outcomes
        fits = ~one_sided
        rows = np.repeat(fits, 2)
        if not fits.any():
            continue
        z, y = z[rows], y[rows]
        other = np.arange(len(z)) ^ 1  # each half scored by the other's fit
        r = np.clip(_recalibrate(tuple(part[other] for part in _recalibration(z, y)), z), EPS, 1.0 - EPS)
        losses = (-np.where(y > 0.5, np.log(r), np.log1p(-r))).reshape(-1, 2 * z.shape[1]).sum(axis=1)
        squares = ((r - y) ** 2).reshape(-1, 2 * z.shape[1]).sum(axis=1)
        for k, i in enumerate(np.asarray(members)[fits]):
            out[int(i)] = Record(n=size, log_loss_sum=float(losses[k]), brier_sum=float(squares[k]))
    return out


class EstimatorScore(BaseModel):
    estimator: str
    outcomes: int = Field(description="reported outcomes this estimator had a prediction for, in this swarm")
    log_loss: float | None = Field(
        description="RAW mean log-loss of its p as given on those outcomes (calibration; lower is better); null "
                    "before any")
    brier: float | None = Field(
        description="RAW mean Brier score of its p as given on those outcomes (calibration; lower is better); null "
                    "before any")
    # The recalibrated record's fields are left out of answers while empty (a swarm without kept outcomes), so
    # that a status answer stays as small as it was.
    kept_outcomes: int = Field(
        default=0, exclude_if=lambda v: v == 0,
        description=f"the newest of those outcomes (at most {KEPT_OUTCOMES}) whose p is kept to recalibrate; "
                    "absent when none")
    recalibrated_log_loss: float | None = Field(
        default=None, exclude_if=lambda v: v is None,
        description="mean log-loss on the kept outcomes after a monotone recalibration fitted out of sample "
                    "(2-fold cross-fitting): how well it orders successes above failures, not its scale (lower is "
                    f"better); absent with fewer than {RECALIBRATE_MIN} or without both successes and failures")
    recalibrated_brier: float | None = Field(default=None, exclude_if=lambda v: v is None,
                                             description="the same outcomes' Brier score after that recalibration")
    prior_log_loss: float | None = Field(
        description="log-loss on SIMULATED held-out episodes, the starting belief, on the yardstick compared "
                    "(raw: expected against the true probabilities; recalibrated: on drawn outcomes, cross-fitted)"
    )
    blended_log_loss: float | None = Field(
        description="what auto compares: the prior and the swarm's record (recalibrated when every candidate's can "
                    "be, else raw; see `compared`), weighted by count")
    compared: Literal["recalibrated", "raw"] | None = Field(
        default=None, exclude_if=lambda v: v is None,
        description="which record of the outcomes blended_log_loss holds; absent when only the prior")


class FoldScore(BaseModel):
    estimator: str
    log_loss: float = Field(description="mean log-loss on the decision's held-out past tasks (lower is better)")
    paired_z: float | None = Field(
        description="its paired advantage over the estimator chosen without the fold, in standard errors"
    )


class AutoChoice(BaseModel):
    estimator: str
    reason: str
    scores: list[EstimatorScore]
    fold: list[FoldScore] = Field(default_factory=list,
                                  description="each candidate on past tasks held out of this decision's history")


@dataclass(frozen=True)
class Fold:
    """Past tasks held out of a decision: `episode` has the rest of the histories and the held-out tasks as its
    tasks (same order as `owner` and `success`)."""

    episode: Episode
    owner: np.ndarray  # (records,) row of the agent that did each held-out task, in `episode.agents`
    success: np.ndarray  # (records,) bool


def holdout(episode: Episode, records: int = FOLD_RECORDS, agents: int = FOLD_AGENTS,
            keep: int = FOLD_HISTORY) -> Fold | None:
    """The newest past tasks of the agents with the longest histories, in turn (each keeps at least one), to be
    predicted from the `keep` newest past tasks before them; None when they are not both successes and failures
    (nothing to tell estimators apart by)."""
    import numpy as np

    ranked = sorted(range(len(episode.agents)), key=lambda i: -len(episode.agents[i].history))
    chosen = [i for i in ranked if len(episode.agents[i].history) >= 2][:agents]
    if not chosen:
        return None
    take = {i: 0 for i in chosen}
    left = records
    while left > 0:
        moved = False
        for i in chosen:
            if left and take[i] < len(episode.agents[i].history) - 1:
                take[i] += 1
                left -= 1
                moved = True
        if not moved:
            break
    held = [(row, episode.agents[i].history[-k]) for row, i in enumerate(chosen) for k in range(1, take[i] + 1)]
    outcomes = np.array([h.success for _, h in held], dtype=bool)
    if outcomes.all() or not outcomes.any():
        return None
    sub = Episode(
        id=f"{episode.id}/fold",
        agents=[episode.agents[i].model_copy(update={"history": episode.agents[i].history[: -take[i]][-keep:]})
                for i in chosen],
        # A past task may have no text (the format allows it); a task to predict needs some.
        tasks=[EpisodeTask(id=f"held-{n}", description=h.task or "-") for n, (_, h) in enumerate(held)],
    )
    return Fold(sub, np.array([row for row, _ in held], dtype=np.int64), outcomes)


def _recalibration(z: np.ndarray, y: np.ndarray, steps: int = 25) -> tuple[np.ndarray, ...]:
    """Rows of logits z (candidates, tasks) -> (mean, spread, a, b) per row, so that p = sigmoid(a + b z') with
    z' = (z - mean) / spread (a row without spread: z' = 0), fitted to the outcomes y (tasks,), or one row of
    outcomes per row of z, by Newton's method
    with b >= 0 (a fit that orders the tasks backwards explains nothing), lightly penalised so that separable
    outcomes stay finite. All rows at once: this runs inside a decision."""
    import numpy as np

    mean = z.mean(axis=1, keepdims=True)
    spread = z.std(axis=1, keepdims=True)
    z = _standardised(z, mean, spread)
    a = np.zeros(len(z))
    b = np.zeros(len(z))
    base = np.broadcast_to(np.log((y.sum(axis=-1) + 0.5) / (y.shape[-1] - y.sum(axis=-1) + 0.5)), a.shape)
    for _ in range(steps):
        q = 1.0 / (1.0 + np.exp(-(a[:, None] + b[:, None] * z)))
        w = q * (1.0 - q)
        g0 = (q - y).sum(axis=1) + 1e-3 * a
        g1 = ((q - y) * z).sum(axis=1) + 1e-1 * b
        h00 = w.sum(axis=1) + 1e-3
        h01 = (w * z).sum(axis=1)
        h11 = (w * z * z).sum(axis=1) + 1e-1
        det = h00 * h11 - h01 * h01
        new_a = a - (h11 * g0 - h01 * g1) / det
        new_b = b - (h00 * g1 - h01 * g0) / det
        backwards = new_b < 0.0
        new_a[backwards], new_b[backwards] = base[backwards], 0.0
        moved = float(max(np.abs(new_a - a).max(), np.abs(new_b - b).max()))
        a, b = new_a, new_b
        if moved < 1e-6:
            break
    return mean, spread, a, b


def _standardised(z: np.ndarray, mean: np.ndarray, spread: np.ndarray) -> np.ndarray:
    import numpy as np

    return np.where(spread > 1e-9, (z - mean) / np.maximum(spread, 1e-9), 0.0)


def _recalibrate(fit: tuple[np.ndarray, ...], z: np.ndarray) -> np.ndarray:
    """A fit of `_recalibration` applied to rows of logits z (the same rows, any tasks)."""
    import numpy as np

    mean, spread, a, b = fit
    return 1.0 / (1.0 + np.exp(-(a[:, None] + b[:, None] * _standardised(z, mean, spread))))


def _recalibrated(z: np.ndarray, y: np.ndarray, steps: int = 25) -> np.ndarray:
    """Rows of logits z recalibrated on the outcomes y in sample (the fold's): p = sigmoid(a + b z')."""
    return _recalibrate(_recalibration(z, y, steps), z)


def _logits(p: np.ndarray) -> np.ndarray:
    import numpy as np

    q = np.clip(p, EPS, 1.0 - EPS)
    return np.log(q) - np.log1p(-q)


def fold_losses(fold: Fold, estimates: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Per candidate and for the base rate (BASE_RATE), the log-loss of each held-out past task (its doer's p
    against what happened) after a
    monotone recalibration of the candidate's logits on the fold: what is compared is how well each one orders
    the tasks that succeeded above those that failed, which is what the solver uses, not its scale (on real
    history the network's fit is an authorship probability, on a scale no outcome confirms; scored raw, it lost
    the choice to `history` in most decisions whose histories carry SZZ failures, and 1.2 points of top-1)."""
    import numpy as np

    cols = np.arange(len(fold.owner))
    names = list(estimates)
    q = np.stack([estimates[n][fold.owner, cols] for n in names])
    r = np.clip(_recalibrated(_logits(q), fold.success.astype(np.float64)), EPS, 1.0 - EPS)
    losses = -np.where(fold.success, np.log(r), np.log1p(-r))
    rate = float(np.clip(fold.success.mean(), EPS, 1.0 - EPS))
    base = -np.where(fold.success, np.log(rate), np.log1p(-rate))
    return {**dict(zip(names, losses, strict=True)), BASE_RATE: base}


def explains(losses: dict[str, np.ndarray], name: str) -> bool:
    """Whether a candidate explains FOLD_GAIN nats per held-out task beyond the base rate."""
    return float(losses[BASE_RATE].mean() - losses[name].mean()) >= FOLD_GAIN


@lru_cache(maxsize=1)
def prior() -> dict[str, dict]:
    """{estimator: {"log_loss": x, "brier": y, ...}} on simulated held-out episodes; empty when the file is missing."""
    try:
        data = json.loads(PRIOR_FILE.read_text())
    except (OSError, ValueError):
        return {}
    return data.get("estimators", {}) if isinstance(data, dict) else {}


def prior_yardstick(tallies: dict[str, Tally], candidates: list[str]) -> Literal["recalibrated", "raw"]:
    """Which of the prior's figures go with the swarm's record: the recalibrated ones once every candidate with
    outcomes has a recalibrated record, else the raw ones (raw before any outcome: nothing to recalibrate yet, and
    the raw prior is what the shipped choice was measured on). One home, for `scores` and the dashboard's columns."""
    recalibrated = all(t.recalibrated is not None for c in candidates if (t := tallies.get(c, Tally())).n)
    measured = any(tallies.get(c, Tally()).n for c in candidates)
    return "recalibrated" if recalibrated and measured else "raw"


def scores(tallies: dict[str, Tally], candidates: list[str]) -> list[EstimatorScore]:
    """Each candidate's record blended with its prior, then the reported p_success's record (never a candidate:
    it is the same for every estimator) when outcomes have scored it. The record compared is the recalibrated one
    (how each orders the outcomes, as the fold compares them) when every candidate with outcomes has one; else
    the raw one for all (one yardstick per comparison: the two are on different scales)."""
    out = []
    pri = prior()
    reported = [REPORTED] if tallies.get(REPORTED, Tally()).n and REPORTED not in candidates else []
    recalibrated = all(t.recalibrated is not None for c in candidates if (t := tallies.get(c, Tally())).n)
    # The prior on the same yardstick as the record it is blended with.
    prior_key = "recalibrated_log_loss" if prior_yardstick(tallies, candidates) == "recalibrated" else "log_loss"
    for name in [*candidates, *reported]:
        t = tallies.get(name, Tally())
        rec = t.recalibrated
        compared: Literal["recalibrated", "raw"] | None = None
        counted = Record(t.n, t.log_loss_sum, t.brier_sum)
        if t.n:
            compared = "recalibrated" if recalibrated and rec is not None else "raw"
            counted = rec if compared == "recalibrated" and rec is not None else counted
        p_ll = pri.get(name, {}).get(prior_key)
        blended = None
        if p_ll is not None or counted.n:
            weight = PRIOR_WEIGHT if p_ll is not None else 0.0
            blended = ((p_ll or 0.0) * weight + counted.log_loss_sum) / (weight + counted.n)
        out.append(
            EstimatorScore(
                estimator=name,
                outcomes=t.n,
                log_loss=round(t.log_loss_sum / t.n, 4) if t.n else None,
                brier=round(t.brier_sum / t.n, 4) if t.n else None,
                kept_outcomes=len(t.kept),
                recalibrated_log_loss=round(rec.log_loss_sum / rec.n, 4) if rec else None,
                recalibrated_brier=round(rec.brier_sum / rec.n, 4) if rec else None,
                prior_log_loss=round(p_ll, 4) if p_ll is not None else None,
                blended_log_loss=round(blended, 4) if blended is not None else None,
                compared=compared,
            )
        )
    return out


def _paired_z(diff: np.ndarray) -> float:
    import numpy as np

    if diff.size < 2:
        return 0.0
    se = float(np.std(diff, ddof=1)) / np.sqrt(diff.size)
    mean = float(np.mean(diff))
    # Capped: a difference without spread (separable outcomes) is decisive, and "inf" says nothing more.
    return min(mean / se, 999.0) if se > 0 else (999.0 if mean > 0 else 0.0)


def choose(tallies: dict[str, Tally], candidates: list[str],
           fold: dict[str, np.ndarray] | None = None) -> AutoChoice:
    """The candidate with the lowest blended log-loss (ties and unknowns keep the candidates' order), unless the
    decision's own held-out past tasks (`fold`: per candidate and the base rate, the log-loss of each) show
    another one that explains FOLD_GAIN beyond the base rate and is better by FOLD_Z standard errors of the
    paired difference. A fold without the chosen candidate's row means no other one explained enough to be
    worth running it."""
    base = _choose(tallies, candidates)
    reported = tallies.get(REPORTED)
    if reported is not None and reported.n:
        base.reason += (f"; the p_success in answers is the success model's, log-loss "
                        f"{reported.log_loss_sum / reported.n:.3f} over {reported.n} reported outcome(s) (raw: "
                        "its calibration)")
    if not fold:
        return base
    chosen = base.estimator
    n = len(fold[BASE_RATE])
    rows = {k: v for k, v in fold.items() if k != BASE_RATE}
    table = [FoldScore(estimator=name, log_loss=round(float(v.mean()), 4),
                       paired_z=None if name == chosen or chosen not in fold else round(_paired_z(fold[chosen] - v), 2))
             for name, v in rows.items()]
    measured = "log-loss (each recalibrated on them) " + ", ".join(
        f"{f.estimator} {f.log_loss:.3f}" for f in [*table, FoldScore(estimator=BASE_RATE, log_loss=round(
            float(fold[BASE_RATE].mean()), 4), paired_z=None)])
    if chosen not in fold:
        return base.model_copy(update={
            "fold": table,
            "reason": f"{base.reason}; on {n} past tasks held out of this decision's history, {measured}: no other "
                      f"estimator explains {FOLD_GAIN:g} nats a task beyond the base rate, so {chosen} stays"})
    rivals = [f for f in table
              if f.paired_z is not None and f.paired_z >= FOLD_Z and explains(fold, f.estimator)]
    if not rivals:
        return base.model_copy(update={
            "fold": table,
            "reason": f"{base.reason}; on {n} past tasks held out of this decision's history, {measured}: no "
                      f"other estimator better by {FOLD_Z:g} standard errors and {FOLD_GAIN:g} nats beyond the "
                      f"base rate, so {chosen} stays"})
    best = min(rivals, key=lambda f: f.log_loss)  # of those clearly better, the best on the fold
    return AutoChoice(
        estimator=best.estimator,
        reason=f"{best.estimator} predicts this swarm's own outcomes best: on {n} past tasks held out of this "
               f"decision's history, {measured} ({best.estimator} better than {chosen} by "
               f"{best.paired_z:.1f} standard errors of the paired difference); without them: {base.reason}",
        scores=base.scores,
        fold=table,
    )


def _choose(tallies: dict[str, Tally], candidates: list[str]) -> AutoChoice:
    table = scores(tallies, candidates)
    known = [s for s in table if s.blended_log_loss is not None and s.estimator in candidates]
    if not known:
        return AutoChoice(
            estimator=candidates[0],
            reason=f"no simulated prior and no reported outcomes yet; used {candidates[0]}",
            scores=table,
        )
    best = min(known, key=lambda s: s.blended_log_loss)  # type: ignore[arg-type, return-value]
    others = ", ".join(f"{s.estimator} {s.blended_log_loss:.3f}" for s in known if s is not best)
    if best.compared == "recalibrated":
        basis = (f"over its {best.kept_outcomes} newest reported outcome(s), each half scored by a monotone "
                 "recalibration fitted on the other (how well it orders successes above failures, not its scale; "
                 f"raw log-loss {best.log_loss:.3f}), and the prior from simulated episodes")
    elif best.outcomes:
        basis = (f"over {best.outcomes} reported outcome(s), raw (too few, or not both successes and failures, to "
                 "recalibrate every candidate), and the prior from simulated episodes")
    else:
        basis = (f"on simulated held-out episodes, its prior (no outcome of this swarm has been scored for "
                 f"{best.estimator} yet)")
    return AutoChoice(
        estimator=best.estimator,
        reason=f"{best.estimator} predicts best: log-loss {best.blended_log_loss:.3f} {basis}"
        + (f"; {others}" if others else ""),
        scores=table,
    )
