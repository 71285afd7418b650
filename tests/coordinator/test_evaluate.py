"""`python -m ansf_mcp.lab.evaluate`: the default beside the network and the non-learned estimators, paired."""

from __future__ import annotations

import pytest

from ansf_mcp.lab import evaluate, family


def test_compare_scores_every_method_on_the_same_episodes() -> None:
    sims = family.generate(3, 1, sources=family.VALIDATION_SOURCES, n_agents=(3, 4), n_tasks=(3, 5),
                           outcome_driven=True)
    ratios, used = evaluate.compare(sims, None)  # no network: auto chooses among the non-learned ones
    assert set(ratios) == {"default (auto)", "similarity", "history"}
    assert all(len(v) == 3 and all(0.0 < r <= 1.0 + 1e-9 for r in v) for v in ratios.values())
    assert sum(used.values()) == 3 and set(used) <= {"similarity", "history"}


def test_command_prints_one_table_with_paired_differences(capsys: pytest.CaptureFixture[str]) -> None:
    assert evaluate.main(["--sources", "validation", "--episodes", "2", "--family", "broad"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("SIMULATED: 2 episodes of the broad family, validation sources, seed 20261")
    for row in ("| default (auto) |", "| neural |", "| similarity |", "| history |"):
        assert row in out
    assert "auto used: " in out
