"""`auto`'s live record scores what the fold scores: each estimator's kept (p, outcome) pairs after the fold's
monotone recalibration, out of sample, so that how well it orders outcomes counts and its scale does not."""

from __future__ import annotations

import math
import random

import pytest

from ansf_mcp.coordinator import scoring
from ansf_mcp.coordinator.scoring import (
    KEPT_OUTCOMES,
    RECALIBRATE_MIN,
    Tally,
    _recalibrate,
    _recalibrated,
    _recalibration,
    choose,
    cross_fitted,
    scores,
)

CANDIDATES = ["neural", "similarity", "history"]


def _swarm(seed: int = 16, n: int = 200) -> tuple[Tally, Tally]:
    """A: orders the outcomes by their true probability, on a scale of "who takes this task" (every p near 1).
    B: calibrated, but knows only which half the true probability lies in."""
    rng = random.Random(seed)
    a, b = Tally(), Tally()
    for _ in range(n):
        q = rng.uniform(0.05, 0.95)
        y = rng.random() < q
        a.add(0.97 + 0.02 * q, y)
        b.add(0.3 if q < 0.5 else 0.7, y)
    return a, b


def _raw_only(t: Tally) -> Tally:
    """The record as the tallies kept it before pairs were kept: raw sums alone."""
    return Tally(n=t.n, log_loss_sum=t.log_loss_sum, brier_sum=t.brier_sum)


def test_the_live_record_prefers_the_better_ranker_where_raw_sums_preferred_the_better_scaled() -> None:
    ranker, calibrated = _swarm()
    # The prior favours the network, so the ranker plays `similarity`, the calibrated one the network.
    new = choose({"similarity": ranker, "neural": calibrated}, CANDIDATES)
    old = choose({"similarity": _raw_only(ranker), "neural": _raw_only(calibrated)}, CANDIDATES)
    assert new.estimator == "similarity", new.reason
    assert old.estimator == "neural", old.reason
    rows = {s.estimator: s for s in new.scores}
    # The raw sums still say who is calibrated; the recalibrated ones who orders better; auto compares the latter.
    assert rows["similarity"].log_loss > 1.5 > 0.6 > rows["neural"].log_loss
    assert rows["similarity"].recalibrated_log_loss < rows["neural"].recalibrated_log_loss - 0.015
    assert rows["similarity"].compared == rows["neural"].compared == "recalibrated"
    assert rows["history"].compared is None and rows["history"].kept_outcomes == 0
    assert "over its 200 newest reported outcome(s), each half scored by a monotone recalibration" in new.reason
    assert "raw log-loss 1.904" in new.reason
    assert "raw (too few, or not both successes and failures" in old.reason


def test_the_recalibrated_record_ignores_scale_and_the_raw_one_does_not() -> None:
    rng = random.Random(3)
    pairs = []
    for _ in range(300):
        q = rng.uniform(0.05, 0.95)
        pairs.append((q, rng.random() < q))

    def rescaled(p: float) -> float:  # logit -> 0.3 logit + 2: the same order, another scale
        z = 0.3 * math.log(p / (1 - p)) + 2.0
        return 1 / (1 + math.exp(-z))

    same, other = cross_fitted(pairs), cross_fitted([(rescaled(p), y) for p, y in pairs])
    assert same is not None and other is not None and same.n == other.n == 300
    assert same.log_loss_sum == pytest.approx(other.log_loss_sum, rel=1e-9)
    assert same.brier_sum == pytest.approx(other.brier_sum, rel=1e-9)
    raw = Tally()
    shifted = Tally()
    for p, y in pairs:
        raw.add(p, y)
        shifted.add(rescaled(p), y)
    assert abs(raw.log_loss_sum - shifted.log_loss_sum) > 10.0


def test_each_half_is_scored_by_the_folds_recalibration_fitted_on_the_other() -> None:
    pairs = [(0.2 + 0.6 * ((i * 7) % 11) / 10, (i * 7) % 11 > 4 or i % 5 == 0) for i in range(40)]
    import numpy as np

    z = np.array([math.log(p / (1 - p)) for p, _ in pairs])[None, :]
    y = np.array([s for _, s in pairs], dtype=np.float64)
    even = np.arange(40) % 2 == 0
    r = np.empty(40)
    r[even] = _recalibrate(_recalibration(z[:, ~even], y[~even]), z[:, even])[0]
    r[~even] = _recalibrate(_recalibration(z[:, even], y[even]), z[:, ~even])[0]
    expected = -np.where(y > 0.5, np.log(r), np.log1p(-r)).sum()
    record = cross_fitted(pairs)
    assert record is not None and record.log_loss_sum == pytest.approx(float(expected), rel=1e-12)
    # In sample, the fit and its application are the fold's own recalibration.
    assert np.allclose(_recalibrate(_recalibration(z, y), z), _recalibrated(z, y))


def test_too_few_or_one_sided_records_are_compared_raw_for_every_candidate() -> None:
    assert cross_fitted([(0.6, i % 2 == 0) for i in range(RECALIBRATE_MIN - 1)]) is None
    # One failure: one half has none, so there is no ordering to fit there.
    assert cross_fitted([(0.6, i != 3) for i in range(40)]) is None
    ranker, calibrated = _swarm()
    few = Tally()
    for p, y in calibrated.kept[:RECALIBRATE_MIN - 1]:
        few.add(p, y)
    table = {s.estimator: s for s in scores({"similarity": ranker, "neural": few}, CANDIDATES)}
    # The ranker could be recalibrated, the other not: both are compared raw (one yardstick per comparison).
    assert table["similarity"].recalibrated_log_loss is not None and table["neural"].recalibrated_log_loss is None
    assert table["similarity"].compared == table["neural"].compared == "raw"
    expected = (scoring.prior()["similarity"]["log_loss"] * scoring.PRIOR_WEIGHT + ranker.log_loss_sum) / (
        scoring.PRIOR_WEIGHT + ranker.n)
    assert table["similarity"].blended_log_loss == round(expected, 4)


def test_a_tally_keeps_the_newest_pairs_only() -> None:
    t = Tally()
    for i in range(KEPT_OUTCOMES + 88):
        t.add(i / 1000, i % 3 == 0)
    assert t.n == KEPT_OUTCOMES + 88 and len(t.kept) == KEPT_OUTCOMES
    assert t.kept[0] == (88 / 1000, 88 % 3 == 0) and t.kept[-1][0] == (KEPT_OUTCOMES + 87) / 1000
    before = t.recalibrated
    t.add(0.9, True)
    assert t.recalibrated is not before and t.recalibrated.n == KEPT_OUTCOMES  # type: ignore[union-attr]


def test_records_fitted_together_score_as_each_fitted_alone() -> None:
    ranker, calibrated = _swarm()
    one_sided = [(0.6, i != 3) for i in range(200)]
    shorter = calibrated.kept[:57]  # odd: its oldest pair is left out
    together = scoring.cross_fitted_all([ranker.kept, one_sided, calibrated.kept, shorter, []])
    alone = [cross_fitted(k) for k in (ranker.kept, one_sided, calibrated.kept, shorter, [])]
    assert together[1] is None and together[4] is None and alone[1] is None and alone[4] is None
    assert together[3] is not None and together[3].n == 56
    for got, want in zip(together, alone, strict=True):
        if want is not None:
            assert got is not None and got.n == want.n
            assert got.log_loss_sum == pytest.approx(want.log_loss_sum, rel=1e-6)
            assert got.brier_sum == pytest.approx(want.brier_sum, rel=1e-6)


def test_the_prior_is_blended_on_the_yardstick_of_the_record(monkeypatch) -> None:
    """Raw before any outcome and while the record is raw; its recalibrated figure once the record compared is
    recalibrated (the two are on different scales)."""
    fake = {name: {"log_loss": 0.9, "recalibrated_log_loss": 0.6} for name in CANDIDATES}
    monkeypatch.setattr(scoring, "prior", lambda: fake)
    fresh = {s.estimator: s for s in scores({}, CANDIDATES)}
    assert fresh["neural"].prior_log_loss == 0.9
    ranker, calibrated = _swarm()
    recal = {s.estimator: s for s in scores({"similarity": ranker, "neural": calibrated}, CANDIDATES)}
    assert recal["neural"].compared == "recalibrated" and recal["history"].prior_log_loss == 0.6
    raw = {s.estimator: s for s in scores({"similarity": _raw_only(ranker)}, CANDIDATES)}
    assert raw["similarity"].compared == "raw" and raw["history"].prior_log_loss == 0.9
