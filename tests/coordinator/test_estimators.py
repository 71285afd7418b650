"""The non-learned estimators, the comparisons they share with the network, and `auto`'s choice."""

from __future__ import annotations

import numpy as np
import pytest

from ansf_mcp.coordinator import baselines
from ansf_mcp.coordinator.comparisons import Comparisons
from ansf_mcp.coordinator.episode import Episode
from ansf_mcp.coordinator.scoring import REPORTED, SUCCESS_MODEL, Tally, choose, prior
from ansf_mcp.coordinator.strategies import coordinate, decide


def _episode(**extra) -> Episode:
    return Episode.model_validate(
        {
            "id": "e",
            "agents": [
                {"id": "db", "history": [{"task": "Tune the postgres query planner for the orders table",
                                          "success": True},
                                         {"task": "Add an index to the postgres invoices table", "success": True}]},
                {"id": "ui", "history": [{"task": "Restyle the settings page buttons", "success": True},
                                         {"task": "Add dark mode to the navbar component", "success": True}]},
                {"id": "flaky", "history": [{"task": "Tune the postgres query for reports", "success": False},
                                            {"task": "Migrate the postgres schema", "success": False}]},
                {"id": "new", "role": "frontend developer"},
            ],
            "tasks": [
                {"id": "t-db", "description": "Speed up the slow postgres query on the orders table"},
                {"id": "t-ui", "description": "Fix the navbar buttons in dark mode"},
            ],
            **extra,
        }
    )


def test_similarity_prefers_past_successes_over_past_failures() -> None:
    ep = _episode()
    p = baselines.similarity(ep)
    assert p.shape == (4, 2) and np.all((p > 0) & (p < 1))
    db, ui, flaky = range(3)
    assert p[db, 0] > p[flaky, 0] and p[db, 0] > p[ui, 0]  # same words, but flaky failed at them
    assert p[ui, 1] > p[db, 1]
    result = coordinate(ep, "similarity")
    assert {a.task: a.agent for a in result.assignments} == {"t-db": "db", "t-ui": "ui"}
    assert all(a.p_success is not None for a in result.assignments)


def test_only_probabilistic_strategies_report_p_success() -> None:
    ep = _episode()
    for strategy in ("tags", "round-robin"):
        assert all(a.p_success is None for a in coordinate(ep, strategy).assignments)
    for strategy in ("history", "similarity"):
        assert all(0 <= a.p_success <= 1 for a in coordinate(ep, strategy).assignments)


def test_comparisons_see_words_and_characters() -> None:
    cmp = Comparisons(_episode())
    words = cmp.centroid_cosine("words")
    chars = cmp.centroid_cosine("chars")
    assert words.shape == chars.shape == (4, 2)
    assert words[0, 0] > 0.2 and chars[0, 0] > words[3, 0]
    assert np.all(cmp.item_cosine("words", 3) == 0) and cmp.item_cosine("words", 3).shape == (0, 2)
    lm = cmp.lm_ratio("chars")
    assert lm[0, 0] > lm[1, 0] and lm[1, 1] > lm[0, 1]
    assert cmp.success_rate[2] == pytest.approx(1 / 4) and cmp.success_rate[3] == pytest.approx(1 / 2)


def test_history_estimate_unchanged_in_meaning() -> None:
    p = baselines.history(_episode())
    assert p[3, 0] == pytest.approx(baselines.PRIOR)  # no history: the prior
    assert p[0, 0] > 0.6 and p[2, 0] < 0.4  # successes pull up, failures pull down


def test_large_episode_stays_bounded() -> None:
    """The largest texts the format accepts: comparisons cap what they read, so this stays fast and small."""
    long = " ".join(f"word{i}" for i in range(1500))[:7990]
    ep = Episode.model_validate(
        {
            "agents": [{"id": f"a{i}", "history": [{"task": long + str(k), "success": True} for k in range(120)]}
                       for i in range(20)],
            "tasks": [{"id": f"t{j}", "description": long + f" t{j}"} for j in range(60)],
        }
    )
    cmp = Comparisons(ep)
    assert cmp.hist_len.max() == 100  # newest 100 compared
    assert cmp.max_cosine("chars").shape == (20, 60)


def test_auto_follows_realised_scores() -> None:
    candidates = ["neural", "similarity", "history"]
    fresh = choose({}, candidates)
    # No outcomes yet: the shipped prior decides, and the reason says that prior is simulated.
    expected = min(candidates, key=lambda c: prior()[c]["log_loss"])
    assert fresh.estimator == expected
    assert fresh.reason.startswith(f"{expected} predicts best: log-loss {prior()[expected]['log_loss']:.3f} on "
                                   "simulated held-out episodes, its prior")
    # 50 outcomes on which the network was confidently wrong and similarity right: auto must switch.
    bad, good = Tally(), Tally()
    for _ in range(50):
        bad.add(0.9, False)
        good.add(0.3, False)
    switched = choose({"neural": bad, "similarity": good}, candidates)
    assert switched.estimator == "similarity", switched.reason
    assert "50 reported outcome" in switched.reason
    by_name = {s.estimator: s for s in switched.scores}
    assert by_name["neural"].outcomes == 50 and by_name["neural"].log_loss > by_name["similarity"].log_loss


def test_auto_prior_is_shipped_and_measured() -> None:
    data = prior()
    assert {"neural", "similarity", "history"} <= set(data), "run python -m ansf_mcp.lab.prior"
    for figures in data.values():
        assert 0 < figures["log_loss"] < 1.5 and 0 < figures["brier"] < 0.5 and figures["pairs"] > 1000


def test_decide_returns_every_probabilistic_estimate_for_scoring() -> None:
    d = decide(_episode(), "history", neural_allowed=False)
    # The fits auto chooses among, and the reported p_success (the success model), scored on the same outcomes.
    assert set(d.estimates) == {"similarity", "history", REPORTED, SUCCESS_MODEL} and d.result.strategy == "history"
    assert d.estimates[REPORTED] is d.success
    rows = {"db": 0, "ui": 1, "flaky": 2, "new": 3}
    cols = {"t-db": 0, "t-ui": 1}
    assert d.result.assignments
    for a in d.result.assignments:
        assert a.p_success == round(float(d.success[rows[a.agent], cols[a.task]]), 4)
    assert "p_success" not in decide(_episode(), "tags").estimates  # no probability, nothing reported to score


def test_one_registry_of_strategy_names() -> None:
    from typing import get_args

    from ansf_mcp.coordinator.baselines import ESTIMATORS
    from ansf_mcp.coordinator.episode import NON_LEARNED, STRATEGIES, Strategy
    from ansf_mcp.coordinator.scoring import AUTO_CANDIDATES
    from ansf_mcp.lab import bench, replay_eval

    assert STRATEGIES == get_args(Strategy) == ("auto", "neural", "similarity", "history", "tags", "round-robin")
    assert tuple(ESTIMATORS) == NON_LEARNED == bench.BASELINES
    assert set(AUTO_CANDIDATES) < set(STRATEGIES)
    assert replay_eval.methods({})[0] == "auto" and set(NON_LEARNED) < set(replay_eval.methods({}))


def test_a_swarms_outcomes_shift_p_success_towards_its_own_success_rate() -> None:
    """The success model learnt from git history (85 % never blamed); a swarm that fails more is told so after a
    few outcomes, and one that matches the model is left about where it was."""
    from ansf_mcp.coordinator import success

    raw = decide(_episode(), "history", neural_allowed=False)
    model_p = raw.estimates[SUCCESS_MODEL]
    assert np.array_equal(model_p, raw.estimates[REPORTED])  # no record: no shift
    failing = Tally()
    for i in range(40):  # the swarm succeeded 10 times in 40 where the model said about its usual p
        failing.add(0.8, i % 4 == 0)
    shifted = decide(_episode(), "history", neural_allowed=False, tallies={SUCCESS_MODEL: failing})
    assert np.all(shifted.estimates[REPORTED] < model_p)  # every pair moved down
    assert np.array_equal(shifted.estimates[SUCCESS_MODEL], model_p)  # the model's own p is kept apart
    # 0.8 said, 25 % seen: after 40 outcomes 0.31 (the prior keeps it a little above what was seen)
    assert 0.25 < float(success.shifted(np.array([0.8]), success.swarm_shift(failing.kept))[0]) < 0.35
    matching = Tally()
    for i in range(40):
        matching.add(0.8, i % 5 != 0)  # 80 % succeeded, as predicted
    assert abs(success.swarm_shift(matching.kept)) < 0.05
    assert success.swarm_shift(failing.kept[:4]) == 0.0  # too few outcomes to move anything


def test_each_agents_outcomes_shift_its_own_p_success_beyond_the_swarms() -> None:
    """The model weighs an agent's record little; an agent that keeps failing while its peers succeed is told so,
    one that keeps succeeding is raised, and an agent without outcomes is moved only by the swarm's shift."""
    from ansf_mcp.coordinator import success

    record = Tally()
    for _ in range(30):  # 'flaky' failed all 30 of its reports, 'db' succeeded in all 30: the swarm is at 50 %
        record.add(0.8, False, "flaky")
        record.add(0.8, True, "db")
    result = decide(_episode(), "history", neural_allowed=False, tallies={SUCCESS_MODEL: record})
    model_p, told = result.estimates[SUCCESS_MODEL], result.estimates[REPORTED]
    rows = {a.id: i for i, a in enumerate(_episode().agents)}
    swarm_only = success.shifted(model_p, success.swarm_shift(record.kept))
    assert np.all(told[rows["flaky"]] < swarm_only[rows["flaky"]] - 0.2)
    assert np.all(told[rows["db"]] > swarm_only[rows["db"]] + 0.05)
    assert np.allclose(told[rows["new"]], swarm_only[rows["new"]]) and np.allclose(told[rows["ui"]], swarm_only[rows["ui"]])
    assert np.all(told[rows["flaky"]] < 0.25) and np.all(told[rows["db"]] > 0.75)
    # Four outcomes move nothing; pairs whose agents are not known (kept before the board kept them) neither.
    few = success.agent_shifts(record.kept[:8], record.kept_agents[:8], ["flaky", "db"], 0.0)
    assert np.array_equal(few, [0.0, 0.0])
    unknown = success.agent_shifts(record.kept, [None] * len(record.kept), ["flaky", "db"], 0.0)
    assert np.array_equal(unknown, [0.0, 0.0])
    assert np.array_equal(success.agent_shifts(record.kept, [], ["flaky"], 0.0), [0.0])  # not aligned: unused

