"""The semantic benchmark runs end to end on the fixture and reports every figure issue 4 asks for."""

from __future__ import annotations

import pytest

from ansf_mcp.bench.semantic_suite import format_table, run_semantic_bench
from tests.semantic.conftest import FIXTURES


@pytest.mark.slow
def test_bench_reports_all_figures(tmp_path):
    seen = []
    r = run_semantic_bench(FIXTURES / "pyproj", tmp_path, lambda f, m: seen.append(f), max_files=4,
                           warm_reps=2, replay_len=40)
    assert set(r["tools"]) == {"symbols_overview", "find_symbol", "find_references", "goto_definition"}
    for v in r["tools"].values():
        assert v["cold"]["p50_ms"] > 0 and v["warm"]["p99_ms"] > 0
    assert r["direct_jedi"]["requests"]["textDocument/references"]["n"] > 0
    assert r["server"]["start_seconds"] > 0 and r["server"]["rss_mb"] > 0
    assert 0 < r["replay"]["hit_ratio"] <= 1 and r["replay"]["bytes_on_disk"] > 0
    assert seen[-1] == 1.0
    assert "| find_references |" in format_table(r)
