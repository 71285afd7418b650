"""The learned combiner (coordinator/combiner.py): fitted for one network, refused for any other."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from ansf_mcp.coordinator import combiner, neural
from ansf_mcp.coordinator.comparisons import Comparisons
from ansf_mcp.coordinator.episode import ModelUnavailable
from ansf_mcp.lab import combine, simulator

SHIPPED = neural.CHECKPOINT_DIR


def _copy_network(tmp_path: Path) -> Path:
    for ext in ("safetensors", "json"):
        shutil.copy(SHIPPED / f"student.{ext}", tmp_path / f"student.{ext}")
    return tmp_path / "student.safetensors"


def test_shipped_combiner_fits_the_shipped_network() -> None:
    est = neural.load_file(SHIPPED / "student.safetensors")
    assert est.combiner is not None, "run python -m ansf_mcp.lab.combine --mirror DIR"
    assert est.combiner.network_sha256 == est.card["sha256"]
    assert est.combiner.card["inputs"] == list(combiner.INPUTS)


def test_a_combiner_for_another_network_or_other_inputs_is_refused(tmp_path: Path) -> None:
    weights = _copy_network(tmp_path)
    path = combiner.path_for(weights)
    assert neural.load_file(weights).combiner is None  # none beside it: the network alone
    combiner.save(path, np.zeros(len(combiner.INPUTS)), 0.0, "0" * 64, {})
    with pytest.raises(ModelUnavailable, match=r"fitted for another network \(sha256 000000000000…"):
        neural.load_file(weights)
    sha = json.loads(weights.with_suffix(".json").read_text())["sha256"]
    data = json.loads(path.read_text()) | {"network_sha256": sha, "inputs": ["network logit"]}
    path.write_text(json.dumps(data))
    with pytest.raises(ModelUnavailable, match="fitted on other inputs than this code computes"):
        neural.load_file(weights)
    path.write_text("{not json")
    with pytest.raises(ModelUnavailable, match=r"student-combiner\.json is unreadable"):
        neural.load_file(weights)
    assert neural.load_file(weights, combine=False).combiner is None


def test_the_combiner_is_what_the_estimator_returns(tmp_path: Path) -> None:
    weights = _copy_network(tmp_path)
    sha = json.loads(weights.with_suffix(".json").read_text())["sha256"]
    coef = np.zeros(len(combiner.INPUTS))
    coef[combiner.INPUTS.index("history logit")] = 1.0  # a combiner that is exactly `history`
    combiner.save(combiner.path_for(weights), coef, 0.0, sha, {"seed": 0})
    est = neural.load_file(weights)
    ep = simulator.generate("heldout", 1, 3, n_agents=4, n_tasks=6)[0].episode
    from ansf_mcp.coordinator import baselines

    np.testing.assert_allclose(est.estimate(ep), baselines.history(ep), atol=1e-6)
    assert not np.allclose(est.estimate_network(ep), baselines.history(ep), atol=1e-3)
    x = combiner.inputs(ep, Comparisons(ep), est.estimate_network(ep))
    assert x.shape == (4, 6, len(combiner.INPUTS)) and np.isfinite(x).all()


def test_candidate_inputs_task_centred_and_unknown() -> None:
    ep = simulator.generate("heldout", 1, 5, n_agents=5, n_tasks=7)[0].episode
    cmp = Comparisons(ep)
    p = np.random.default_rng(1).uniform(0.05, 0.95, size=(5, 7))
    x = combiner.inputs(ep, cmp, p, combiner.CANDIDATES)
    assert x.shape == (5, 7, len(combiner.CANDIDATES)) and np.isfinite(x).all()
    for name in combiner.CANDIDATES:
        if name.endswith(combiner.CENTRED):
            raw = x[..., combiner.CANDIDATES.index(name.removesuffix(combiner.CENTRED))]
            np.testing.assert_allclose(x[..., combiner.CANDIDATES.index(name)], raw - raw.mean(axis=0))
    with pytest.raises(ValueError, match="unknown combiner input"):
        combiner.inputs(ep, cmp, p, ("network logit", "tea leaves"))


def test_fit_recovers_a_known_logistic_model() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(20_000, 3))
    true = np.array([1.5, -0.7, 0.0])
    y = (rng.random(20_000) < 1 / (1 + np.exp(-(x @ true + 0.3)))).astype(float)
    coef, bias = combine.fit(x, y, np.ones(len(y)))
    np.testing.assert_allclose(coef, true, atol=0.08)
    assert bias == pytest.approx(0.3, abs=0.08)


def test_fit_by_task_recovers_a_known_choice_model() -> None:
    """Replayed tasks: the author is drawn by a softmax over agents of x @ true; simulated pairs: a logistic with
    the same weights and a bias. The fit recovers both (the bias only the simulated pairs can tell)."""
    rng = np.random.default_rng(0)
    true, bias = np.array([1.5, -0.7, 0.0]), 0.3
    n_tasks, n_agents = 6_000, 4
    x = rng.normal(size=(n_tasks * n_agents, 3))
    task = np.repeat(np.arange(n_tasks), n_agents)
    z = (x @ true).reshape(n_tasks, n_agents)
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    pick = (rng.random((n_tasks, 1)) > np.cumsum(p, axis=1)).sum(axis=1)
    y = np.zeros((n_tasks, n_agents))
    y[np.arange(n_tasks), pick] = 1.0
    xs = rng.normal(size=(20_000, 3))
    ys = (rng.random(20_000) < 1 / (1 + np.exp(-(xs @ true + bias)))).astype(float)
    coef, b = combine.fit_by_task(x, y.reshape(-1), task, xs, ys)
    np.testing.assert_allclose(coef, true, atol=0.08)
    assert b == pytest.approx(bias, abs=0.1)


def test_task_ids_number_every_episodes_tasks_apart() -> None:
    ids = combine.task_ids([np.tile(np.arange(2), 3), np.tile(np.arange(3), 2)])
    np.testing.assert_array_equal(ids, [0, 1, 0, 1, 0, 1, 2, 3, 4, 2, 3, 4])


def test_combine_command_fits_and_binds_the_weights_to_the_network(tmp_path: Path) -> None:
    import subprocess

    from tests.git_history import GitHistory

    (tmp_path / "ck").mkdir()
    weights = _copy_network(tmp_path / "ck")
    repo = tmp_path / "mirror" / "o+r" / "repo"
    subprocess.run(["git", "init", "-q", "--bare", str(repo)], check=True)
    h = GitHistory({"a": ("Ann", "a@example.org"), "b": ("Ben", "b@example.org")}, {"a": "src", "b": "docs"})
    for k in range(200):
        h.commit("a" if k % 2 else "b", f"{'parser grammar' if k % 2 else 'docs chapter'} change {k}")
    h.write(repo)
    (tmp_path / "repos.txt").write_text("o/r HEAD\n")
    assert combine.main(["--mirror", str(tmp_path / "mirror"), "--repos", str(tmp_path / "repos.txt"),
                         "--checkpoints", str(tmp_path / "ck"), "--per-size", "2", "--episodes", "4"]) == 0
    fitted = neural.load_file(weights).combiner
    assert fitted is not None and fitted.network_sha256 == neural.load_file(weights).card["sha256"]
    assert "the newest 2 of 16 and 32 tasks" in fitted.card["data"] and fitted.card["seed"] == 0
