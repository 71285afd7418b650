"""Suites whose measuring code lives with the component it measures: coordination and semantic."""

from __future__ import annotations

from typing import Any

from ansf_mcp.bench.context import SuiteContext


def run_coordination(ctx: SuiteContext) -> dict[str, Any]:
    from ansf_mcp.lab.bench import run_coordination_bench

    result = run_coordination_bench(ctx.progress, quick=ctx.quick)
    # One flat list (label, value ratio, CI half-width) for the charts and the dashboard.
    result["value_ratios"] = [
        {"label": f"{method} · {split}", "value_ratio": figures["mean"], "ci95": figures["ci95"]}
        for method, splits in result["quality"].items()
        for split, figures in splits.items()
    ]
    return result


def run_semantic(ctx: SuiteContext) -> dict[str, Any]:
    from ansf_mcp.bench.semantic_suite import format_table, run_semantic_bench

    options = {"max_files": 8, "warm_reps": 2, "replay_len": 100} if ctx.quick else {}
    result = run_semantic_bench(ctx.project, ctx.data_dir, ctx.progress, **options)
    result["markdown"] = format_table(result)
    return result


def markdown_from_result(result: dict[str, Any]) -> str:
    return str(result.get("markdown", ""))
