"""The semantic benchmark runs end to end on the fixture and reports every figure issue 4 asks for."""

from __future__ import annotations

import pytest

from ansf_mcp.bench.semantic_suite import format_table, run_semantic_bench
from tests.semantic.conftest import FIXTURES


@pytest.mark.slow
def test_bench_reports_all_figures(tmp_path, monkeypatch):
    from ansf_mcp.bench import semantic_suite

    seen = []
    turns: list[tuple[list[str], int]] = []
    round_order = semantic_suite.round_order

    def recorded(items, round_):
        turns.append((round_order(items, round_), round_))
        return turns[-1][0]

    monkeypatch.setattr(semantic_suite, "round_order", recorded)
    r = run_semantic_bench(FIXTURES / "pyproj", tmp_path, lambda f, m: seen.append(f), max_files=4,
                           warm_reps=2, replay_len=40)
    assert set(r["tools"]) == {"symbols_overview", "find_symbol", "find_references", "goto_definition"}
    for v in r["tools"].values():
        assert v["cold"]["p50_ms"] > 0 and v["warm"]["p50_ms"] > 0 and v["warm"]["max_ms"] > 0
    # jedi direct timed as ours: cold (each query once) and warm (the repeats) apart, never one mixed summary,
    # on the same queries, so with the same counts; the first request (server start) in neither.
    direct = r["direct_jedi"]["tools"]
    assert set(direct) == set(r["tools"]) and direct["find_references"]["method"] == "textDocument/references"
    for tool, d in direct.items():
        assert d["warm"]["n"] == 2 * d["cold"]["n"] and d["cold"]["n"] == r["tools"][tool]["cold"]["n"]
        assert d["warm"]["n"] == r["tools"][tool]["warm"]["n"]
    # Timed after ours, jedi direct met another moment of the machine's load; now each query is timed on both
    # sides in turn, which goes first alternating query by query (round_order: ours first, then jedi first, ...).
    assert [k for _, k in turns] == list(range(len(turns))) and len(turns) >= r["queries"] * 3
    assert [order for order, _ in turns[:2]] == [["ours", "direct"], ["direct", "ours"]]
    assert r["direct_jedi"]["start_plus_first_call_seconds"] > 0 and r["server"]["first_call_seconds"] > 0
    assert r["server"]["start_seconds"] > 0 and r["server"]["rss_mb"] > 0
    assert 0 < r["replay"]["hit_ratio"] <= 1 and r["replay"]["bytes_on_disk"] > 0
    assert seen[-1] == 1.0
    assert "| find_references |" in format_table(r)
    assert "interleaved with ours query by query" in format_table(r)


def test_the_replay_hit_ratio_names_what_it_counts() -> None:
    """'replay of 100 queries (24 distinct): hit ratio 81.2 %' read as per query, more than a fresh cache can give
    (at most 76 of 100): the ratio is over answer-cache lookups (65 hits of 80), and now says so."""
    lat = {"p50_ms": 1.0, "p99_ms": 2.0}
    r = {"project": "p", "files_in_project": 74, "files_sampled": 8, "queries": 44,
         "tools": {"find_symbol": {"cold": lat, "warm": lat}},
         "direct_jedi": {"requests": {"textDocument/definition": lat}},
         "server": {"start_seconds": 0.5, "rss_mb": 143.5}, "cache_after_passes": {"bytes_on_disk": 622_592},
         "replay": {"queries": 100, "distinct": 24, "hit_ratio": 0.8125, "hits": 65, "misses": 15,
                    "latency": lat, "bytes_on_disk": 458_752}}
    text = format_table(r)
    assert "answer-cache hit ratio 81.2% (65 hits of 80 cache lookups)" in text, text


def test_the_jedi_comparison_sets_cold_beside_cold_and_warm_beside_warm_with_counts() -> None:
    """Ours had cold and warm columns; jedi direct had one p50 / p99 from a single pass (each query's first
    request), printed beside them: warm cache hits read against cold language-server requests, with no n."""
    from ansf_mcp.system.stats import latency_summary

    def summary(n: int, ms: float) -> dict:
        return latency_summary([ms / 1000] * n)

    r = {"project": "p", "files_in_project": 74, "files_sampled": 8, "queries": 44,
         "tools": {"find_references": {"cold": summary(16, 40.0), "warm": summary(32, 1.0)}},
         "direct_jedi": {"start_plus_first_call_seconds": 1.5,
                         "tools": {"find_references": {"method": "textDocument/references",
                                                       "cold": summary(16, 30.0), "warm": summary(200, 20.0)}}},
         "server": {"start_seconds": 0.5, "first_call_seconds": 1.7, "rss_mb": 143.5},
         "cache_after_passes": {"bytes_on_disk": 1}, "replay": {"queries": 100, "distinct": 24, "hit_ratio": 0.8,
                                                                 "hits": 64, "misses": 16, "latency": summary(100, 2.0),
                                                                 "bytes_on_disk": 1}}
    text = format_table(r)
    assert "| tool | ours cold | jedi direct cold | ours warm | jedi direct warm |" in text, text
    assert ("| find_references | 40.000 / max 40.000 of n=16 | 30.000 / max 30.000 of n=16 | "
            "1.000 / max 1.000 of n=32 | 20.000 / 20.000 (n=200) |") in text, text
    assert "First request (language server start + first call, n=1): ours 1.7 s, jedi direct 1.5 s." in text
