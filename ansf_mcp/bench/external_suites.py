"""Suites whose measuring code lives with the component it measures: coordination and semantic."""

from __future__ import annotations

from typing import Any

from ansf_mcp.bench.context import SuiteContext, SuiteInputError
from ansf_mcp.system.report import ValueRatio, ratio


def run_coordination(ctx: SuiteContext) -> dict[str, Any]:
    from ansf_mcp.lab.bench import run_coordination_bench

    return run_coordination_bench(ctx.progress, quick=ctx.quick)


def coordination_ratios(result: dict[str, Any]) -> list[ValueRatio]:
    """Per method and split (held-out, shifted): the value ratio with its 95 % CI."""
    found = (ratio(f"{method} · {split}", figures.get("mean"), figures.get("ci95"))
             for method, splits in (result.get("quality") or {}).items() for split, figures in splits.items())
    return [r for r in found if r is not None]


def check_semantic(ctx: SuiteContext) -> None:
    """Before the run: a --project with no Python file to measure is refused in one line (it failed mid-run, and
    `ansf bench` stored a failed run)."""
    from ansf_mcp.semantic.languages.python import EXTENSIONS
    from ansf_mcp.semantic.paths import walk_files

    if not ctx.project.is_dir():
        raise SuiteInputError(f"{ctx.project} is not a directory (--project)")
    if next(walk_files(ctx.project, ctx.project, EXTENSIONS), None) is None:
        raise SuiteInputError(f"{ctx.project} holds no Python file for the semantic suite to measure (--project)")


def run_semantic(ctx: SuiteContext) -> dict[str, Any]:
    from ansf_mcp.bench.semantic_suite import format_table, run_semantic_bench

    check_semantic(ctx)  # in `all`, the same sentence in the suite's section
    options = {"max_files": 8, "warm_reps": 2, "replay_len": 100} if ctx.quick else {}
    result = run_semantic_bench(ctx.project, ctx.data_dir, ctx.progress, **options)
    result["markdown"] = format_table(result)
    return result


def markdown_from_result(result: dict[str, Any]) -> str:
    return str(result.get("markdown", ""))
