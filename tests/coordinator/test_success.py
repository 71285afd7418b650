"""The success model (coordinator/success.py): p_success means "the work succeeds if this agent does it"."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ansf_mcp.coordinator import success
from ansf_mcp.coordinator.episode import Episode, ModelUnavailable
from ansf_mcp.coordinator.solver import solve
from ansf_mcp.coordinator.strategies import decide


def _episode() -> Episode:
    def hist(texts: list[str], ok: bool) -> list[dict]:
        return [{"task": t, "success": ok} for t in texts]

    return Episode.model_validate({
        "agents": [
            {"id": "good", "history": hist(["Tune the postgres query planner", "Add a postgres index",
                                             "Speed up the postgres report query"], True)},
            {"id": "flaky", "history": hist(["Tune the postgres query for reports", "Migrate the postgres schema",
                                              "Rewrite the postgres query cache"], False)},
            {"id": "new"},
        ],
        "tasks": [{"id": "t-db", "description": "Speed up the slow postgres query on the orders table"},
                  {"id": "t-ui", "description": "Restyle the settings page buttons"}],
    })


def test_records_shrink_level_by_level() -> None:
    ep = _episode()
    x = success.inputs(ep)
    assert x.shape == (3, 2, len(success.INPUTS))
    p = success.UNFITTED.estimate(ep)
    assert np.all((p > 0) & (p < 1))
    good, flaky, new = range(3)
    swarm = (3 + 1) / (6 + 2)  # three successes in six past tasks, one pseudo-count each way
    assert x[0, 0, 2] == pytest.approx(np.log(swarm / (1 - swarm)))
    # No record at all: the agent is the swarm (its rate is the swarm's rate, and so is its task record).
    assert p[new, 0] == pytest.approx(swarm) and p[new, 1] == pytest.approx(swarm)
    # A record on alike work counts more than the agent's overall rate; failures pull below the swarm.
    assert p[good, 0] > p[good, 1] > swarm > p[flaky, 1] > p[flaky, 0]


def test_shipped_model_loads_and_an_ill_fitting_file_is_refused(tmp_path: Path) -> None:
    model = success.load(success.MODEL_FILE)
    assert model is not success.UNFITTED and "SZZ" in model.card["data"]
    assert success.load(tmp_path / "none.json") is success.UNFITTED
    data = json.loads(success.MODEL_FILE.read_text())
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**data, "inputs": data["inputs"][:-1]}))
    with pytest.raises(ModelUnavailable, match="other inputs"):
        success.load(bad)
    bad.write_text("{")
    with pytest.raises(ModelUnavailable, match="unreadable"):
        success.load(bad)


@pytest.mark.parametrize("strategy", ["history", "similarity", "neural"])
def test_the_estimator_chooses_who_and_p_success_is_the_success_model(strategy: str) -> None:
    ep = _episode()
    decision = decide(ep, strategy)
    # The assignment is exactly the solver's on the estimator's fit scores: ranking is untouched.
    plain = solve(ep, decision.estimates[strategy])
    assert [(a.task, a.agent) for a in decision.result.assignments] == [(a.task, a.agent) for a in plain.assignments]
    rows = {a.id: i for i, a in enumerate(ep.agents)}
    cols = {t.id: j for j, t in enumerate(ep.tasks)}
    np.testing.assert_allclose(decision.success, success.shipped().estimate(ep))
    for a in decision.result.assignments:
        assert a.p_success == pytest.approx(decision.success[rows[a.agent], cols[a.task]], abs=1e-4)


def test_an_episode_without_tasks_has_an_empty_estimate() -> None:
    ep = Episode.model_validate({"agents": [{"id": "a"}], "tasks": []})
    assert success.UNFITTED.estimate(ep).shape == (1, 0)
    assert decide(ep, "history").success.shape == (1, 0)


def test_the_task_text_vocabulary_learns_which_work_fails_and_survives_a_round_trip(tmp_path: Path) -> None:
    from ansf_mcp.lab import szz

    texts = [f"Update the documentation page {k}" for k in range(40)] + [
        f"Rewrite the tokenizer internals {k}" for k in range(40)]
    y = np.array([1.0] * 38 + [0.0] * 2 + [1.0] * 20 + [0.0] * 20)
    vocabulary = szz.fit_vocabulary(texts, y, min_tasks=30)
    assert vocabulary["documentation"] > 0 > vocabulary["tokenizer"]
    assert "update" in vocabulary and "0" not in vocabulary  # found in fewer than 30 tasks
    logit = success.text_logit(["Fix the tokenizer", "Polish the documentation", "Unrelated words"], vocabulary)
    assert logit[0] < 0 < logit[1] and logit[2] == 0.0
    path = tmp_path / "s.json"
    success.save(path, np.arange(len(success.INPUTS), dtype=float), 0.5, vocabulary, {"data": "test"})
    loaded = success.load(path)
    assert loaded.vocabulary == pytest.approx({w: round(v, 5) for w, v in vocabulary.items()})
    assert loaded.bias == 0.5 and loaded.weights.tolist() == list(range(len(success.INPUTS)))
    ep = Episode.model_validate({"agents": [{"id": "a"}], "tasks": [{"id": "t", "description": "Fix the tokenizer"},
                                                                   {"id": "u", "description": "Unrelated words"}]})
    x = success.inputs(ep, vocabulary=vocabulary)
    assert x[0, 0, -1] == pytest.approx(logit[0]) and x[0, 1, -1] == 0.0
    assert szz.fit_vocabulary(texts[:3], y[:3], min_tasks=30) == {}


def test_a_damaged_shipped_file_leaves_every_strategy_deciding(tmp_path: Path, monkeypatch, caplog) -> None:
    bad = tmp_path / "success.json"
    bad.write_text("{")
    monkeypatch.setattr(success, "MODEL_FILE", bad)
    success.shipped.cache_clear()
    try:
        assert success.shipped() is success.UNFITTED
        assert "unreadable" in caplog.text and "unfitted" in caplog.text
    finally:
        success.shipped.cache_clear()
