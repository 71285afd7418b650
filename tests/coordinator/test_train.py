"""`ansf train` end to end on a tiny budget: files, curves, reproducibility from the seed."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("torch")

from ansf_mcp.coordinator import neural
from ansf_mcp.lab import train

TINY = [
    "--profile",
    "student",
    "--steps",
    "4",
    "--episodes",
    "24",
    "--val-episodes",
    "8",
    "--eval-every",
    "2",
    "--batch",
    "4",
]


def test_train_writes_checkpoint_card_and_curves_reproducibly(tmp_path):
    assert train.main([*TINY, "--seed", "3", "--out", str(tmp_path / "a")]) == 0
    assert train.main([*TINY, "--seed", "3", "--out", str(tmp_path / "b")]) == 0
    assert train.main([*TINY, "--seed", "4", "--out", str(tmp_path / "c")]) == 0
    cards = {k: json.loads((tmp_path / k / "student.json").read_text()) for k in "abc"}
    assert cards["a"]["sha256"] == cards["b"]["sha256"]
    assert cards["a"]["sha256"] != cards["c"]["sha256"]
    assert (tmp_path / "a" / "student-loss.png").stat().st_size > 1000
    assert cards["a"]["train"]["steps"] == 4 and cards["a"]["seed"] == 3
    # What training writes, the loader reads.
    est = neural.load_file(tmp_path / "a" / "student.safetensors")
    assert est.card["sha256"] == cards["a"]["sha256"]


def test_unknown_profile_is_refused(tmp_path):
    with pytest.raises(SystemExit):
        train.main(["--profile", "huge", "--out", str(tmp_path)])


@pytest.mark.slow
def test_quick_bench_reports_every_method():
    from ansf_mcp.lab.bench import run_coordination_bench

    seen = []
    out = run_coordination_bench(lambda f, m: seen.append(f), quick=True)
    assert out["simulated"] is True
    assert {"history", "tags", "round-robin", "ceiling", neural.DEFAULT_PROFILE} <= set(out["quality"])
    for m in out["quality"].values():
        assert 0.0 < m["heldout"]["mean"] <= 1.0 + 1e-9 and m["heldout"]["n"] == 40
    assert "16x64" in out["latency"][neural.DEFAULT_PROFILE]
    assert "| method |" in out["markdown"] and seen[-1] == 1.0
    json.dumps(out)
