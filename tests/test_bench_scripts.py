"""The bench scripts under scripts/ summarise latencies as the suites do (ansf_mcp.system.stats): n beside every
figure, a tail percentile withheld below its sample count instead of printed as the slowest call or two."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent


def _run(script: str, *args: str) -> dict:
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / script), *args], capture_output=True, text=True,
                         timeout=300, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout)


def test_bench_live_record_gives_each_read_its_n_and_no_p90_from_too_few_reads() -> None:
    """It printed a p90 of its own from any number of reads (statistics.quantiles of 5 reads is past the slowest)."""
    report = _run("bench_live_record.py", "--reads", "5", "--outcomes", "20")
    assert set(report["read"]) == {"before", "after_first_read", "after_again"}
    for summary in report["read"].values():
        assert summary["n"] == 5 and summary["p50_ms"] > 0
        assert summary["p90_ms"] is None and summary["withheld"]["p90"] == "n=5 < 10"
        assert summary["max_ms"] >= summary["p50_ms"]
    # The readers take turns going first (A B C, B C A, C A B, ...), not "before" every round.
    assert report["first_in_round"] == {"before": 2, "after_first_read": 2, "after_again": 1}


@pytest.mark.slow
def test_agent_loops_gives_next_task_latency_with_its_n_and_no_p99_below_100_calls() -> None:
    """Its p99 was the element at 0.99 * (n - 1) of however many calls there were: with fewer than 100, the
    slowest but one or the slowest, printed as a tail."""
    report = _run("agent_loops.py", "--agents", "4", "--chains", "2", "--length", "2", "--doomed", "0",
                  "--wait-s", "1", "--timeout-s", "120")
    latency = report["next_task_latency"]
    assert latency["n"] == report["next_task_calls"] < 100
    assert latency["p99_ms"] is None and latency["withheld"]["p99"] == f"n={latency['n']} < 100"
    assert 0 < latency["p50_ms"] <= latency["max_ms"]
