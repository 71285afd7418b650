"""`auto` on the decision's own history: past tasks held out and predicted from the rest (scoring.holdout), and a
choice that only a clear paired margin overrules; the reported p_success keeps its own record."""

from __future__ import annotations

import numpy as np
import pytest

from ansf_mcp.coordinator import scoring
from ansf_mcp.coordinator.episode import Episode
from ansf_mcp.coordinator.scoring import (
    BASE_RATE,
    FOLD_GAIN,
    FOLD_Z,
    REPORTED,
    Tally,
    choose,
    fold_losses,
    holdout,
)
from ansf_mcp.coordinator.strategies import decide

DB = ("Tune the postgres query planner for the {} table", "Add an index to the postgres {} table",
      "Migrate the postgres {} schema", "Speed up the postgres {} report query")
UI = ("Restyle the {} settings page buttons", "Add dark mode to the {} navbar",
      "Fix the {} dropdown alignment in the sidebar", "Make the {} modal keyboard accessible")
NOUNS = ("orders", "invoices", "billing", "users", "accounts", "payments", "reports", "audit")


def _contrarian() -> Episode:
    """Agents who claim database work and whose record says they fail it and succeed at interface work."""
    def record(k: int) -> list[dict]:
        return [{"task": (DB if (n + k) % 2 == 0 else UI)[n % 4].format(NOUNS[(n + k) % 8]),
                 "success": (n + k) % 2 == 1} for n in range(16)]

    agents = [{"id": f"dba-{k}", "role": "postgres database administrator",
               "capabilities": ["postgres", "sql", "database"], "history": record(k)} for k in range(4)]
    agents += [{"id": f"fe-{k}", "role": "frontend developer", "capabilities": ["css", "ui"],
                "history": [{"task": t.format(NOUNS[k]), "success": True} for t in UI]
                + [{"task": t.format(NOUNS[k]), "success": False} for t in DB]} for k in range(2)]
    return Episode.model_validate({"agents": agents, "tasks": [
        {"id": "t-db", "description": "Add an index to the postgres shipments table"},
        {"id": "t-ui", "description": "Restyle the shipments navbar"}]})


def _episode(histories: list[list[bool]]) -> Episode:
    return Episode.model_validate({
        "agents": [{"id": f"a{i}", "history": [{"task": f"task {i} number {n}", "success": ok}
                                               for n, ok in enumerate(h)]} for i, h in enumerate(histories)],
        "tasks": [{"id": "t", "description": "something new"}],
    })


def test_holdout_takes_the_newest_past_tasks_of_the_longest_histories_in_turn() -> None:
    ep = _episode([[True] * 3, [True, False] * 5, [False], [True, True, False, True, False, True]])
    fold = holdout(ep, records=5, agents=2, keep=3)
    assert fold is not None
    # Agents 1 (10 past tasks) and 3 (6) are chosen; 5 records dealt in turn: 3 from agent 1, 2 from agent 3.
    assert [a.id for a in fold.episode.agents] == ["a1", "a3"]
    assert [t.description for t in fold.episode.tasks] == [
        "task 1 number 9", "task 1 number 8", "task 1 number 7", "task 3 number 5", "task 3 number 4"]
    assert fold.owner.tolist() == [0, 0, 0, 1, 1]
    assert fold.success.tolist() == [False, True, False, True, False]
    # What predicts them: the `keep` newest past tasks before the held-out ones, nothing held out among them.
    assert [h.task for h in fold.episode.agents[0].history] == ["task 1 number 4", "task 1 number 5", "task 1 number 6"]
    assert [h.task for h in fold.episode.agents[1].history] == ["task 3 number 1", "task 3 number 2", "task 3 number 3"]


def test_no_fold_without_both_outcomes_or_without_a_past_to_keep() -> None:
    assert holdout(_episode([[True] * 8, [True] * 8])) is None  # successes alone: log-loss rewards optimism
    assert holdout(_episode([[False], [True]])) is None  # nobody can spare a past task
    assert holdout(_episode([[True, False, True]]), records=16).success.tolist() == [True, False]  # keeps one


def test_fold_losses_score_how_each_candidate_orders_the_doers_outcomes_not_its_scale() -> None:
    fold = holdout(_episode([[True, False] * 4, [False, True] * 4]), records=8, agents=2)
    assert fold is not None and fold.owner.tolist() == [0, 0, 0, 0, 1, 1, 1, 1]
    assert fold.success.tolist() == [False, True, False, True, True, False, True, False]
    rows, cols = fold.owner, np.arange(8)

    def matrix(doer_p: list[float]) -> np.ndarray:
        p = np.full((2, 8), 0.5)
        p[rows, cols] = doer_p  # only the doer's p of each held-out task is scored
        return p

    z = np.array([-1.0, 1.2, -0.4, 0.3, 0.9, -2.0, 1.5, 0.4])  # failures below successes, but for one pair
    right = matrix(list(1 / (1 + np.exp(-z))))
    rescaled = matrix(list(1 / (1 + np.exp(-(0.3 * z - 2.0)))))  # the same order on another scale (authorship-like)
    backwards = matrix(list(1 / (1 + np.exp(z))))
    losses = fold_losses(fold, {"right": right, "rescaled": rescaled, "backwards": backwards})
    assert losses["right"].sum() == pytest.approx(losses["rescaled"].sum(), rel=1e-3)
    # Ordering backwards explains nothing: the base rate's loss (4 of 8 succeeded), not worse.
    assert losses["backwards"] == pytest.approx(np.full(8, np.log(2.0)), rel=1e-3)
    assert losses["right"].sum() < losses["backwards"].sum() - 1.0
    assert losses["right"][fold.success].mean() < np.log(2.0)  # successes get their p raised
    assert losses[BASE_RATE] == pytest.approx(np.full(8, np.log(2.0)))


def test_only_a_clear_paired_margin_overrules_the_prior() -> None:
    candidates = ["neural", "similarity", "history"]
    base = choose({}, candidates)
    rng = np.random.default_rng(0)
    noise = rng.normal(0.0, 0.3, 16)
    # Slightly better on average but within noise: the prior's choice stays, and the reason says what was measured.
    near = {base.estimator: 0.6 + noise, "similarity": 0.55 + noise[::-1], "history": 0.7 + noise,
            BASE_RATE: np.full(16, 0.69)}
    kept = choose({}, candidates, near)
    assert kept.estimator == base.estimator
    assert "held out of this decision's history" in kept.reason and f"so {base.estimator} stays" in kept.reason
    assert {f.estimator for f in kept.fold} == set(candidates)
    # Clearly better on the held-out tasks: the fold overrules (the best on the fold of those clearly better), and
    # the rivals' z are in the table.
    far = {base.estimator: 0.9 + 0.05 * noise, "similarity": 0.3 + 0.05 * noise[::-1], "history": 0.7 + 0.05 * noise,
           BASE_RATE: np.full(16, 0.69)}
    switched = choose({}, candidates, far)
    assert switched.estimator == "similarity"
    z = {f.estimator: f.paired_z for f in switched.fold}
    assert z[base.estimator] is None and z["similarity"] >= FOLD_Z
    assert switched.reason.startswith("similarity predicts this swarm's own outcomes best: on 16 past tasks")
    # Clearly better than a poor choice but explaining nothing beyond the base rate: not enough to overrule.
    unexplained = {**far, BASE_RATE: 0.3 + 0.05 * noise[::-1] + FOLD_GAIN / 2}
    assert choose({}, candidates, unexplained).estimator == base.estimator
    # The network's row left out (no cheap rival explained enough to run it): the choice stays, and says why.
    cheap = {"similarity": far["similarity"], "history": far["history"], BASE_RATE: far["similarity"]}
    stays = choose({}, candidates, cheap)
    assert stays.estimator == base.estimator and "nats a task beyond the base rate" in stays.reason


def test_one_decision_notices_a_swarm_whose_claims_its_record_contradicts() -> None:
    """The network reads the claimed roles; the record says the database people fail database work. Without any
    reported outcome, one call already leaves the network (the shipped checkpoint, as the product runs it)."""
    d = decide(_contrarian(), "auto")
    assert d.auto is not None and d.result.strategy == "history", d.result.reason
    fold = {f.estimator: f for f in d.auto.fold}
    # The network orders the held-out tasks backwards (what is claimed, not what happened): after the fold's
    # monotone recalibration it explains nothing (the base rate's log-loss); history's record orders them right.
    assert fold["neural"].log_loss > 0.6 > 0.1 > fold["history"].log_loss
    assert fold["history"].paired_z >= FOLD_Z
    assert "held out of this decision's history" in d.result.reason
    # Strategies other than auto never pay for a fold.
    assert decide(_contrarian(), "history").auto is None


def test_the_reported_p_success_is_scored_but_never_chosen() -> None:
    candidates = ["neural", "similarity", "history"]
    excellent = Tally()
    for _ in range(40):
        excellent.add(0.99, True)
    picked = choose({REPORTED: excellent}, candidates)
    assert picked.estimator in candidates
    rows = {s.estimator: s for s in picked.scores}
    assert rows[REPORTED].outcomes == 40 and rows[REPORTED].prior_log_loss is None
    assert "the p_success in answers is the success model's, log-loss 0.010 over 40" in picked.reason
    assert REPORTED not in {s.estimator for s in scoring.scores({}, candidates)}  # no outcome, no row


def test_the_network_skips_a_fold_no_cheap_candidate_can_explain() -> None:
    """Outcomes unrelated to the work (alternating on the same kind of task): similarity and history explain
    nothing beyond the base rate, so the network is not run on the fold and keeps the choice."""
    ep = _episode([[True, False] * 10 for _ in range(4)])
    d = decide(ep, "auto")
    assert d.auto is not None and d.result.strategy == "neural"
    assert {f.estimator for f in d.auto.fold} == {"similarity", "history"}
    assert "nats a task beyond the base rate, so neural stays" in d.result.reason


def test_past_tasks_without_text_can_be_held_out() -> None:
    ep = Episode.model_validate({
        "agents": [{"id": f"a{i}", "history": [{"task": "", "success": n % 2 == 0} for n in range(6)]}
                   for i in range(2)],
        "tasks": [{"id": "t", "description": "anything"}],
    })
    fold = holdout(ep)
    assert fold is not None and {t.description for t in fold.episode.tasks} == {"-"}
    assert decide(ep, "auto", neural_allowed=False).result.assignments[0].task == "t"
