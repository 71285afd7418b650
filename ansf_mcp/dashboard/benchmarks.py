"""The newest stored benchmark figures: value ratios (SIMULATED) and replay top-1 accuracies (REAL history)."""

from __future__ import annotations

import math
import sqlite3
from typing import Any

from ansf_mcp.system.report import BenchmarkReport


def latest_benchmark(conn: sqlite3.Connection) -> dict[str, Any] | None:
    """The newest benchmark run that reports value ratios, else None (a coordination-suite run wins over others
    among the last 20). Value ratios are SIMULATED by definition: they need the true success probabilities, which
    only a simulator knows (docs/COORDINATION.md); the answer says so (`data: "simulated"`).

    Reports are read as the typed `BenchmarkReport` the runner stores; a row that is not one (written by an older
    version) is passed over. The replay suite's top-1 accuracies on real history are `latest_replay`'s.
    """
    fallback = None
    for r in conn.execute("SELECT id, suite, created_at, report FROM benchmark_runs ORDER BY id DESC LIMIT 20"):
        try:
            report = BenchmarkReport.model_validate_json(r["report"])
        except (TypeError, ValueError):
            continue
        if not report.value_ratios:
            continue
        found = {"id": r["id"], "suite": r["suite"], "created_at": r["created_at"], "data": "simulated",
                 "measured_on": f"SIMULATED episodes of the latest benchmark run #{r['id']} ({r['suite']}): value "
                 "ratio against the simulator's oracle; no real outcome enters it",
                 "value_ratios": [v.model_dump(mode="json", exclude_none=True) for v in report.value_ratios]}
        if report.suite == "coordination":
            return found
        fallback = fallback or found
    return fallback


REPLAY_CELL_KEYS = ("episodes", "tasks", "random", "per_episode")


def latest_replay(conn: sqlite3.Connection) -> dict[str, Any] | None:
    """The newest replay-suite result among the last 20 runs (suite `replay`, or `all`): top-1 accuracy of each
    method on the REAL git history of a repository, per tag source and window size, with the random expectation."""
    for r in conn.execute("SELECT id, suite, created_at, report FROM benchmark_runs ORDER BY id DESC LIMIT 20"):
        try:
            report = BenchmarkReport.model_validate_json(r["report"])
        except (TypeError, ValueError):
            continue
        result = report.results.get("replay")
        if not isinstance(result, dict) or "error" in result or not isinstance(result.get("results"), dict):
            continue
        cells = []
        for tags, windows in result["results"].items():
            for window, cell in (windows or {}).items():
                if not isinstance(cell, dict) or not cell.get("episodes"):
                    continue
                methods = {m: {"mean": _finite(v.get("mean")), "ci95": _finite(v.get("ci95"))}
                           for m, v in cell.items() if m not in REPLAY_CELL_KEYS and isinstance(v, dict)}
                random = cell.get("random") or {}
                cells.append({"tags": tags, "window": _int(window), "episodes": cell.get("episodes"),
                              "tasks": cell.get("tasks"), "methods": methods,
                              "random": {"mean": _finite(random.get("mean")), "ci95": _finite(random.get("ci95"))}})
        if cells:
            cells.sort(key=lambda c: (str(c["tags"]), c["window"] if c["window"] is not None else 0))
            return {"id": r["id"], "suite": r["suite"], "created_at": r["created_at"], "data": "real",
                    "repo": result.get("repo"), "head": result.get("head"), "commits": result.get("commits"),
                    "authors": result.get("authors"), "cells": cells}
    return None


def _finite(value: Any) -> float | None:
    """A number fit for JSON (the lab writes NaN for a CI over one episode), else None."""
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
