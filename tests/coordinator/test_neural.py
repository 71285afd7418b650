"""The shipped checkpoints: loading, checksum, bad files, fallbacks, quality against the history estimate."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ansf_mcp.coordinator import baselines, neural
from ansf_mcp.coordinator.episode import Episode
from ansf_mcp.coordinator.profiles import DEFAULT_PROFILE
from ansf_mcp.coordinator.strategies import ModelUnavailable, coordinate
from ansf_mcp.lab import evaluate, simulator

SHIPPED = neural.CHECKPOINT_DIR


def test_strategies_do_not_import_torch():
    code = (
        "import sys, ansf_mcp.coordinator.strategies, ansf_mcp.coordinator.baselines, "
        "ansf_mcp.lab.simulator, ansf_mcp.lab.evaluate, ansf_mcp.coordinator.neural, "
        "ansf_mcp.lab.bench; assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_listing_the_shipped_checkpoints_imports_no_numerical_library():
    """`system_status` lists the checkpoints on an idle server: importing numpy and scipy for it (through
    `neural`) cost the idle server 25 MiB and its 80 MiB budget (`ansf bench --suite memory`)."""
    code = (
        "import sys; from ansf_mcp.server.status import shipped_models; "
        "assert shipped_models()['checkpoint_bytes']['student.safetensors'] > 0; "
        "heavy = [m for m in ('torch', 'scipy', 'numpy') if m in sys.modules]; assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_shipped_files_fit_budget_and_checksums():
    total = 0
    for base in ("spec", "student"):
        weights = SHIPPED / f"{base}.safetensors"
        card = json.loads((SHIPPED / f"{base}.json").read_text())
        from ansf_mcp.coordinator.ckpt import sha256

        assert sha256(weights) == card["sha256"]
        assert card["bytes"] == weights.stat().st_size
        total += weights.stat().st_size + (SHIPPED / f"{base}.json").stat().st_size
    assert total <= 30 * 10**6


def test_default_profile_loads_once_and_beats_history():
    est = neural.load(None)
    assert est is neural.load(DEFAULT_PROFILE)
    assert est.name == DEFAULT_PROFILE
    sims = simulator.generate("heldout", 60, 4242)
    ours, hist = [], []
    for s in sims:
        res = coordinate(s.episode, "neural", neural=est)
        assert res.strategy == "neural" and res.model == DEFAULT_PROFILE
        ours.append(evaluate.value_ratio(s.episode, s.p_true, res))  # raises on an invalid result
        hist.append(evaluate.value_ratio(s.episode, s.p_true, coordinate(s.episode, "history")))
    assert np.mean(ours) > np.mean(hist) + 0.05


@pytest.mark.parametrize("profile", ["spec-int8", "spec-pruned20"])
def test_spec_variants_load_and_track_the_full_precision_network(profile):
    """Quality lives in the benchmark; here: each variant loads, predicts probabilities, and stays close to
    spec-fp32 on the same episodes (what quantization or pruning may cost is measured, not assumed)."""
    full = neural.load("spec-fp32")
    est = neural.load(profile)
    sims = simulator.generate("heldout", 6, 5, n_agents=5, n_tasks=9)
    for s in sims:
        p, q = est.estimate(s.episode), full.estimate(s.episode)
        assert p.shape == (5, 9) and np.all((p > 0) & (p < 1))
        assert np.abs(p - q).max() < 0.15, f"{profile} drifts from spec-fp32 by {np.abs(p - q).max():.3f}"
    assert est.card["config"]["d_model"] == 512 and est.card["config"]["layers"] == 6


def test_more_than_16_agents_are_decided_in_blocks():
    est = neural.load(None)
    s = simulator.generate("heldout", 1, 9, n_agents=20, n_tasks=30)[0]
    res = coordinate(s.episode, "neural", neural=est)
    assert len(res.assignments) == 30
    evaluate.check_valid(s.episode, res)


@pytest.mark.parametrize("n_agents", [12, 20])
def test_the_order_agents_are_listed_in_changes_nothing_and_equal_agents_tie(n_agents: int) -> None:
    # Each agent's slot carries a position of its own: listed in another order, the same swarm got other estimates
    # (up to 0.2 apart) and equal agents never tied. 20 agents: the blocks are cut in the same order too.
    est = neural.load(None)
    ep = simulator.generate("heldout", 1, 4, n_agents=n_agents, n_tasks=24)[0].episode
    perm = np.random.default_rng(0).permutation(n_agents)
    shuffled = ep.model_copy(update={"agents": [ep.agents[i] for i in perm]})
    p, q = est.estimate(ep), est.estimate(shuffled)
    np.testing.assert_allclose(q, p[perm], rtol=0, atol=1e-6)
    twins = ep.model_copy(update={"agents": [*ep.agents[:3], ep.agents[0].model_copy(update={"id": "twin"})]})
    t = est.estimate_network(twins)
    assert np.array_equal(t[0], t[3]) and not np.array_equal(t[0], t[1])


def _copy_shipped(tmp_path: Path, base: str) -> tuple[Path, Path]:
    for ext in ("safetensors", "json"):
        shutil.copy(SHIPPED / f"{base}.{ext}", tmp_path / f"{base}.{ext}")
    return tmp_path / f"{base}.safetensors", tmp_path / f"{base}.json"


def test_bad_checkpoints_raise_model_unavailable(tmp_path):
    weights, card = _copy_shipped(tmp_path, "student")
    data = weights.read_bytes()
    size = len(data)
    cases = {  # content -> the one reason the loader must give
        b"": r"student\.safetensors is empty$",
        b"\x00garbage" * 100: rf"is 800 bytes, its card says {size} \(truncated or replaced\)",
        data[: size // 2]: rf"is {size // 2} bytes, its card says {size} \(truncated or replaced\)",
    }
    for content, reason in cases.items():
        weights.write_bytes(content)
        with pytest.raises(ModelUnavailable, match=reason):
            neural.load_file(weights)
    # Same size, one byte flipped: only the checksum can tell.
    flipped = bytearray(data)
    flipped[len(flipped) // 2] ^= 0xFF
    weights.write_bytes(bytes(flipped))
    with pytest.raises(ModelUnavailable, match="checksum"):
        neural.load_file(weights)
    # A garbage file whose card was rewritten to match it: the format check must catch it.
    weights.write_bytes(b"\x00garbage" * 100)
    meta = json.loads(card.read_text())
    from ansf_mcp.coordinator.ckpt import sha256

    meta.update(sha256=sha256(weights), bytes=weights.stat().st_size)
    card.write_text(json.dumps(meta))
    with pytest.raises(ModelUnavailable, match="not a readable safetensors"):
        neural.load_file(weights)
    card.unlink()
    with pytest.raises(ModelUnavailable, match="card"):
        neural.load_file(weights)
    with pytest.raises(ModelUnavailable, match="missing"):
        neural.load("student", directory=tmp_path / "nowhere")
    with pytest.raises(ModelUnavailable, match="unknown model"):
        neural.load("gpt-5")


def test_auto_falls_back_to_the_non_learned_estimators_and_says_so(tmp_path, monkeypatch):
    (tmp_path / "student.safetensors").write_bytes(b"")
    monkeypatch.setattr(neural, "CHECKPOINT_DIR", tmp_path)
    monkeypatch.setattr(neural, "_cache", {})
    s = simulator.generate("heldout", 1, 3)[0]
    res = coordinate(s.episode, "auto")
    assert res.strategy in {"similarity", "history"} and res.model is None
    assert "student" in res.note and res.reason
    with pytest.raises(ModelUnavailable):
        coordinate(s.episode, "neural")


DB_TASKS = [
    "Migrate the postgres schema of the billing table",
    "Speed up the sql query with an index on the orders table",
    "Shard the postgres table of the users",
    "Add a replica for the postgres orders table",
]
DB_FAILURES = [
    "Add a postgres index on the sql table of the invoices",
    "Fix the slow sql query on the postgres replica table",
    "Migrate the postgres index of the orders table",
    "Tune the sql index of the postgres users table",
] * 3


def _episode(history_a, history_b) -> Episode:
    def agent(name, history):
        return {"id": name, "capacity": 2, "history": [{"task": t, "success": ok} for t, ok in history]}

    return Episode.model_validate(
        {
            "id": "feedback",
            "agents": [agent("a", history_a), agent("b", history_b)],
            "tasks": [
                {
                    "id": "db",
                    "description": "Add a postgres index to speed up the sql query on the users table",
                },
                {"id": "ui", "description": "Fix the css of the navbar dropdown component"},
            ],
        }
    )


def test_reported_outcomes_change_the_next_decision_without_retraining():
    est = neural.load(None)
    history_a = [
        (DB_TASKS[0], True),
        (DB_TASKS[1], True),
        (DB_TASKS[2], False),
        ("Fix the css layout of the modal button", True),
    ]
    # b has done some front-end work too: an agent whose whole history is one kind of task looks like a specialist
    # of it to the model (as agents in the simulator are), and needs more failures to lose it (docs/MODEL.md).
    history_b = [(t, True) for t in DB_TASKS[:3]] + [
        ("Fix the css layout of the modal button", True),
        ("Restyle the navbar dropdown component", True),
        ("Add a tooltip to the sidebar widget", False),
    ]
    before = _episode(history_a, history_b)
    first = {a.task: a.agent for a in coordinate(before, "neural", neural=est).assignments}
    assert first["db"] == "b"
    # b then reports failing at this kind of task again and again: the next decision moves the task away.
    after = _episode(history_a, history_b + [(t, False) for t in DB_FAILURES])
    second = {a.task: a.agent for a in coordinate(after, "neural", neural=est).assignments}
    assert second["db"] == "a"
    assert est.estimate(after)[1, 0] < est.estimate(before)[1, 0] - 0.1


def test_history_baseline_is_what_strategies_use():
    s = simulator.generate("heldout", 1, 12)[0]
    p = baselines.history(s.episode)
    assert p.shape == s.p_true.shape
