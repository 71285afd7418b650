"""The side-by-side benchmark's own half, on a fixture repository we wrote (Serena is not installed in CI; its
half is exercised where it is set up, docs/SEMANTIC.md)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from ansf_mcp.bench import serena_compare

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "semantic" / "pyproj"


@pytest.mark.slow
def test_ours_only_comparison_measures_every_figure(tmp_path: Path) -> None:
    repo = tmp_path / "pyproj"
    shutil.copytree(FIXTURE, repo)
    out = tmp_path / "report.json"
    assert serena_compare.main([str(repo), "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    ours = report["repositories"]["pyproj"]["ours"]
    assert "serena" not in report["repositories"]["pyproj"]
    # Completeness against the tokenizer truth: every line where the class name occurs as code, found.
    assert {t["name"] for t in report["repositories"]["pyproj"]["targets"]} == set(ours["completeness"])
    for figures in ours["completeness"].values():
        assert figures["truth_lines"] >= 2 and figures["completeness"] == 1.0
    assert ours["latency_ms"]["references"]["warm"]["n"] >= 5 and ours["first_heavy_query_s"] > 0
    # The first heavy query on a fresh server (language server start included) is the first request, reported
    # apart: it is not one of the cold samples, where it made the whole cold tail.
    targets = report["repositories"]["pyproj"]["targets"]
    assert ours["latency_ms"]["references"]["cold"]["n"] == len(targets) - 1
    assert "first request: a heavy reference query on a fresh server, s (n=1, not in the cold rows)" in \
        serena_compare.markdown(report)
    assert ours["peak_rss_mib_vmhwm"]["total"] > ours["peak_rss_mib_vmhwm"]["server"] > 0
    assert serena_compare.markdown(report).count("|") > 10
