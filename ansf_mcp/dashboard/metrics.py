"""Figures the dashboard shows and alerts on, each measured from the store or the machine at the moment of asking.

Nothing here invents a value: a figure without enough data is None and carries the sample count, so the page
can say "no data" instead of drawing a line.
"""

from __future__ import annotations

import json
import math
import sqlite3
import time
from dataclasses import asdict, dataclass
from typing import Any

from ansf_mcp.board.lifecycle import state_counts

PHASE_LEVELS = {"critical": 1, "enhanced": 2, "optimal": 3}


@dataclass
class Figure:
    value: float | None
    samples: int
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# --- memory and phase -------------------------------------------------------------------------------------------


def memory_reading(cgroup_root: Any = "/sys/fs/cgroup") -> dict[str, Any]:
    """The governor's reading (cgroup-aware: the limit this process is killed at), else psutil's machine figures."""
    source_note = ""
    try:
        from ansf_mcp.governor.memory import read_memory  # type: ignore[import-not-found]
    except ImportError:
        read_memory = None
    if read_memory is not None:
        try:
            from pathlib import Path

            r = read_memory(Path(cgroup_root))
            return {
                "used_bytes": int(r.used_bytes),
                "limit_bytes": int(r.limit_bytes) if r.limit_bytes else None,
                "fraction": float(r.fraction) if r.fraction is not None else None,
                "source": str(r.source),
            }
        except Exception as exc:  # fall back to psutil, and say so
            source_note = f" (governor reading failed: {type(exc).__name__}: {exc})"
    import psutil

    vm = psutil.virtual_memory()
    used = vm.total - vm.available
    return {
        "used_bytes": used,
        "limit_bytes": vm.total,
        "fraction": used / vm.total if vm.total else None,
        "source": "psutil virtual_memory (machine)" + source_note,
    }


def process_rss() -> int:
    import psutil

    return psutil.Process().memory_info().rss


def phase_info(app: Any, conn: sqlite3.Connection) -> dict[str, Any]:
    """This process's phase (app.limits()) and the last phase change any process recorded in the store."""
    try:
        limits = app.limits()
        current = {
            "phase": limits.phase,
            "reason": limits.reason,
            "neural_allowed": limits.neural_allowed,
            "max_active_agents": limits.max_active_agents,
        }
    except Exception as exc:
        current = {"phase": "unknown", "reason": f"limits() failed: {type(exc).__name__}: {exc}"}
    row = conn.execute(
        "SELECT from_phase, to_phase, reason, used_fraction, created_at FROM phase_changes ORDER BY id DESC LIMIT 1"
    ).fetchone()
    recent = conn.execute(
        "SELECT from_phase, to_phase, reason, used_fraction, created_at FROM phase_changes ORDER BY id DESC LIMIT 10"
    ).fetchall()
    current["last_change"] = dict(row) if row else None
    current["changes"] = [dict(r) for r in recent]
    current["level"] = phase_level(current.get("phase"))
    return current


def phase_level(phase: object) -> int | None:
    if not isinstance(phase, str):
        return None
    for name, level in PHASE_LEVELS.items():
        if name in phase.lower():
            return level
    return None


# --- board activity ---------------------------------------------------------------------------------------------


def task_counts(conn: sqlite3.Connection, board: Any, now: float | None = None) -> dict[str, int]:
    """Tasks of every swarm per state, as the board reads them (its policy, lifecycle.STATE_SQL)."""
    return state_counts(conn, board.policy, board.clock() if now is None else now)


def claims_counter(conn: sqlite3.Connection) -> int:
    """Σ tasks.claim_seq: every claim (next_task) adds one and nothing takes one away, so its increase between
    readings counts claims."""
    return int(conn.execute("SELECT COALESCE(SUM(claim_seq), 0) FROM tasks").fetchone()[0])


def outcomes_since(conn: sqlite3.Connection, since: float) -> int:
    return int(conn.execute("SELECT COUNT(*) FROM outcomes WHERE created_at >= ?", (since,)).fetchone()[0])


# --- live quality figures ---------------------------------------------------------------------------------------


def coordination_accuracy(conn: sqlite3.Connection, since: float, min_samples: int) -> Figure:
    """Realised successes ÷ expected successes (Σ p_success of the assignments whose outcomes came back)."""
    row = conn.execute(
        "SELECT COUNT(*) AS n, COALESCE(SUM(success), 0) AS s, COALESCE(SUM(p_success), 0) AS e "
        "FROM outcomes WHERE p_success IS NOT NULL AND created_at >= ?",
        (since,),
    ).fetchone()
    n, realised, expected = row["n"], row["s"], row["e"]
    if n < min_samples or expected <= 0:
        return Figure(None, n, f"{n} outcome(s) with an estimate in the window; {min_samples} needed")
    return Figure(realised / expected, n, f"{realised} successes vs {expected:.2f} expected")


def neural_accuracy(conn: sqlite3.Connection, since: float, min_samples: int) -> tuple[Figure, Figure]:
    """Share of outcomes the neural model called right (p > 0.5 ↔ success), and the Brier score beside it.

    Only outcomes of tasks whose assignment was decided by the neural strategy (tasks.strategy = 'neural').
    """
    rows = conn.execute(
        "SELECT o.success AS success, o.p_success AS p FROM outcomes o "
        "JOIN tasks t ON t.swarm_id = o.swarm_id AND t.id = o.task_id "
        "WHERE o.p_success IS NOT NULL AND t.strategy = 'neural' AND o.created_at >= ?",
        (since,),
    ).fetchall()
    n = len(rows)
    if n < min_samples:
        note = "no outcomes of neural decisions in the window" if n == 0 else f"{n} outcome(s); {min_samples} needed"
        return Figure(None, n, note), Figure(None, n, note)
    right = sum(1 for r in rows if (r["p"] > 0.5) == bool(r["success"]))
    brier = sum((r["p"] - (1.0 if r["success"] else 0.0)) ** 2 for r in rows) / n
    return Figure(right / n, n, f"{right} of {n} called right"), Figure(brier, n, "mean (p - outcome)^2")


def coordinate_latency(conn: sqlite3.Connection, since: float, min_samples: int = 1) -> dict[str, Figure]:
    values = [
        r[0] for r in conn.execute("SELECT elapsed_ms FROM decisions WHERE created_at >= ?", (since,)).fetchall()
    ]
    n = len(values)
    if n < min_samples:
        note = f"{n} coordinate decision(s) in the window; {min_samples} needed"
        return {"p50": Figure(None, n, note), "p95": Figure(None, n, note)}
    return {
        "p50": Figure(percentile(values, 50), n),
        "p95": Figure(percentile(values, 95), n),
    }


def efficiency(conn: sqlite3.Connection, since: float, min_samples: int) -> Figure:
    """Share of reported agent time that produced a success: Σ duration of successful outcomes ÷ Σ all durations.

    Only outcomes that report `duration_s` count; time spent on attempts that failed is the waste.
    """
    row = conn.execute(
        "SELECT COUNT(*) AS n, COALESCE(SUM(CASE WHEN success THEN duration_s ELSE 0 END), 0) AS good, "
        "COALESCE(SUM(duration_s), 0) AS total FROM outcomes "
        "WHERE duration_s IS NOT NULL AND duration_s >= 0 AND created_at >= ?",
        (since,),
    ).fetchone()
    n = row["n"]
    if n < min_samples or row["total"] <= 0:
        return Figure(None, n, f"{n} outcome(s) with duration_s in the window; {min_samples} needed")
    return Figure(row["good"] / row["total"], n, f"{row['good']:.1f} s of {row['total']:.1f} s succeeded")


def percentile(values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    s = sorted(values)
    if len(s) == 1:
        return float(s[0])
    k = (len(s) - 1) * q / 100.0
    lo, hi = math.floor(k), math.ceil(k)
    return float(s[lo] + (s[hi] - s[lo]) * (k - lo))


# --- benchmark --------------------------------------------------------------------------------------------------


def latest_benchmark(conn: sqlite3.Connection) -> dict[str, Any] | None:
    """The newest benchmark run that reports value ratios, else None (a coordination-suite run wins over others
    among the last 20).

    The report format belongs to the suites, so value ratios are found wherever they sit: any object with a numeric
    `value_ratio` (or `value_ratio: {mean, ci95|ci}`) is one bar, with `ci95` as an interval [lo, hi] or a half
    width; its label is the nearest `method`/`strategy`/`name`/`profile`/`phase` (its own or an ancestor's), else the
    key it sits under.
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
        found = {"id": r["id"], "suite": r["suite"], "created_at": r["created_at"], "value_ratios": ratios}
        if "coordination" in str(r["suite"]):
            return found
        fallback = fallback or found
    return fallback


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
    if isinstance(ci, list | tuple) and len(ci) == 2 and all(isinstance(v, int | float) for v in ci):
        return [float(ci[0]), float(ci[1])]
    if isinstance(ci, int | float) and not isinstance(ci, bool):
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
        if mean is not None:
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


# --- semantic layer ---------------------------------------------------------------------------------------------


def semantic_health(app: Any, now: float | None = None) -> dict[str, Any] | None:
    """The semantic layer's health: from this process when it runs the layer, else as the serving process last
    reported it to the store (with who reported it and how long ago), else None."""
    provider = getattr(app, "status_providers", {}).get("semantic")
    reported: dict[str, Any] | None = None
    if provider is None:
        with app.store.reading() as conn:
            row = conn.execute("SELECT pid, status, updated_at FROM component_status WHERE name = 'semantic'"
                               ).fetchone()
        if row is None:
            return None
        status = json.loads(row["status"])
        reported = {"pid": row["pid"], "at": row["updated_at"],
                    "age_s": round((time.time() if now is None else now) - row["updated_at"], 1)}
    else:
        try:
            status = provider()
        except Exception as exc:
            return {"error": f"{type(exc).__name__}: {exc}"}
    cache = status.get("cache") or {}
    servers = status.get("servers") or []
    return {
        "cache": {k: cache.get(k) for k in ("hits", "misses", "hit_ratio", "entries", "bytes_on_disk", "budget_bytes")},
        "servers": [
            {k: s.get(k) for k in ("language", "server", "alive", "rss_bytes", "restarts", "requests")}
            for s in servers
            if isinstance(s, dict)
        ],
        "unavailable": status.get("unavailable") or {},
        "started": status.get("started", True),
        "note": status.get("note"),
        "reported_by": reported,
    }


def model_load(conn: sqlite3.Connection) -> Figure:
    """The last model load (ms), kept apart from decision latency: the alert on coordinate p95 never sees it."""
    row = conn.execute("SELECT profile, trigger, elapsed_ms, created_at, (SELECT COUNT(*) FROM model_loads) AS n "
                       "FROM model_loads ORDER BY id DESC LIMIT 1").fetchone()
    if row is None:
        return Figure(None, 0, "no model loaded by a server on this store yet")
    return Figure(row["elapsed_ms"], row["n"], f"{row['profile']} ({row['trigger']}) at "
                  f"{time.strftime('%H:%M:%S', time.localtime(row['created_at']))}")
