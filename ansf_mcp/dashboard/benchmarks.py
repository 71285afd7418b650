"""The newest stored benchmark figures: value ratios (SIMULATED) and replay top-1 accuracies (REAL history)."""

from __future__ import annotations

import json
import math
import sqlite3
from typing import Any


def latest_benchmark(conn: sqlite3.Connection) -> dict[str, Any] | None:
    """The newest benchmark run that reports value ratios, else None (a coordination-suite run wins over others
    among the last 20). Value ratios are SIMULATED by definition: they need the true success probabilities, which
    only a simulator knows (docs/COORDINATION.md); the answer says so (`data: "simulated"`).

    The report format belongs to the suites, so value ratios are found wherever they sit: any object with a numeric
    `value_ratio` (or `value_ratio: {mean, ci95|ci}`) is one bar, with `ci95` as an interval [lo, hi] or a half
    width; its label is the nearest `method`/`strategy`/`name`/`profile`/`phase` (its own or an ancestor's), else the
    key it sits under. The replay suite's top-1 accuracies on real history are `latest_replay`'s.
    """
    fallback = None
    for r in conn.execute("SELECT id, suite, created_at, report FROM benchmark_runs ORDER BY id DESC LIMIT 20"):
        try:
            report = json.loads(r["report"])
        except (TypeError, ValueError):
            continue
        ratios = _value_ratios(report, [], None)
        if not ratios:
            continue
        seen: dict[str, int] = {}
        for e in ratios:
            seen[e["label"]] = seen.get(e["label"], 0) + 1
        for e in ratios:
            where = e.pop("where_key")
            if seen[e["label"]] > 1:
                e["label"] = f"{where}: {e['label']}"
        found = {"id": r["id"], "suite": r["suite"], "created_at": r["created_at"], "value_ratios": ratios,
                 "data": "simulated"}
        if "coordination" in str(r["suite"]):
            return found
        fallback = fallback or found
    return fallback


REPLAY_CELL_KEYS = ("episodes", "tasks", "random", "per_episode")


def latest_replay(conn: sqlite3.Connection) -> dict[str, Any] | None:
    """The newest replay-suite result among the last 20 runs (suite `replay`, or `all`): top-1 accuracy of each
    method on the REAL git history of a repository, per tag source and window size, with the random expectation."""
    for r in conn.execute("SELECT id, suite, created_at, report FROM benchmark_runs ORDER BY id DESC LIMIT 20"):
        try:
            report = json.loads(r["report"])
        except (TypeError, ValueError):
            continue
        result = (report.get("results") or {}).get("replay") if isinstance(report, dict) else None
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



# What names a row, most specific first; a strategy is an attribute of a row named otherwise (a phase uses one),
# so it comes last and is added in brackets when the row has a name of its own.
LABEL_KEYS = ("method", "name", "profile", "phase", "label", "strategy")


def _label_value(value: Any) -> str | None:
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return ", ".join(value)
    return None


def _label_of(node: dict[str, Any]) -> str | None:
    for key in LABEL_KEYS:
        label = _label_value(node.get(key))
        if label is not None:
            strategy = _label_value(node.get("strategy")) if key != "strategy" else None
            return f"{label} ({strategy})" if strategy and strategy != label else label
    return None


def _interval(mean: float, ci: Any) -> list[float] | None:
    if isinstance(ci, list | tuple) and len(ci) == 2 and all(_finite(v) is not None for v in ci):
        return [float(ci[0]), float(ci[1])]
    if _finite(ci) is not None:
        return [mean - float(ci), mean + float(ci)]
    return None


def _value_ratios(node: Any, path: list[str], context: str | None) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    if isinstance(node, dict):
        own = _label_of(node)
        label = own or context
        vr = node.get("value_ratio")
        mean = ci = None
        if isinstance(vr, int | float) and not isinstance(vr, bool):
            mean, ci = float(vr), node.get("ci95", node.get("ci"))
        elif isinstance(vr, dict) and isinstance(vr.get("mean"), int | float):
            mean, ci = float(vr["mean"]), vr.get("ci95", vr.get("ci"))
        if mean is not None and math.isfinite(mean):
            keys = [p for p in path if not p.isdigit()]
            name = label or (keys[-1] if keys else "value ratio")
            entry: dict[str, Any] = {"label": name, "mean": mean, "where_key": keys[0] if keys else "report"}
            interval = _interval(mean, ci)
            if interval:
                entry["ci"] = interval
            found.append(entry)
        for key, value in node.items():
            if key != "value_ratio":
                child_context = own or (context if key.isdigit() else key)
                found.extend(_value_ratios(value, [*path, str(key)], child_context))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found.extend(_value_ratios(value, [*path, str(i)], context))
    return found
