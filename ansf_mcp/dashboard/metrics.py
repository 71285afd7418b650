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
from ansf_mcp.coordinator import scoring
from ansf_mcp.coordinator.scoring import AUTO_CANDIDATES, brier, log_loss

PHASE_LEVELS = {"critical": 1, "enhanced": 2, "optimal": 3}


@dataclass
class Figure:
    value: float | None
    samples: int
    note: str = ""
    strategy: str | None = None  # which strategy a per-strategy figure is about

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


# Strategies whose `p_success` is a probability. `auto` chooses among exactly the estimators that produce one (it
# compares them by log-loss), so its candidates are that list; `tags` and `round-robin` report no p_success.
PROBABILISTIC = AUTO_CANDIDATES
# Equal-width bins of the predicted probability for the reliability curve.
RELIABILITY_BINS = 10


def calibration(conn: sqlite3.Connection, since: float, min_samples: int) -> dict[str, Any]:
    """How well each strategy's `p_success` matched REAL reported outcomes in the window.

    Per probabilistic strategy (tasks.strategy joined to outcomes, outcomes.p_success not null): the number of
    outcomes, the Brier score, the log-loss (clipped as the estimator scores are, scoring.EPS), the share called
    right (p > 0.5 ↔ success), mean predicted p beside the observed success rate, and the reliability curve: per
    equal-width bin of p, the mean predicted p, the observed success rate and the count. Scores need
    `min_samples` outcomes; the count is always given. Every figure but log-loss lies in [0, 1].
    """
    marks = ",".join("?" * len(PROBABILISTIC))
    rows = conn.execute(
        "SELECT t.strategy AS strategy, o.p_success AS p, o.success AS success FROM outcomes o "
        "JOIN tasks t ON t.swarm_id = o.swarm_id AND t.id = o.task_id "
        f"WHERE o.p_success IS NOT NULL AND o.created_at >= ? AND t.strategy IN ({marks})",
        (since, *PROBABILISTIC),
    ).fetchall()
    total = conn.execute("SELECT COUNT(*) FROM outcomes WHERE created_at >= ?", (since,)).fetchone()[0]
    by: dict[str, list[tuple[float, bool]]] = {}
    for r in rows:
        by.setdefault(r["strategy"], []).append((min(max(float(r["p"]), 0.0), 1.0), bool(r["success"])))
    strategies = {}
    for name in PROBABILISTIC:
        pairs = by.get(name, [])
        n = len(pairs)
        entry: dict[str, Any] = {"outcomes": n, "brier": None, "log_loss": None, "called_right": None,
                                 "mean_predicted": None, "observed_rate": None, "bins": []}
        if n < min_samples:
            entry["note"] = (f"no outcomes of {name} decisions in the window" if n == 0
                             else f"{n} outcome(s); {min_samples} needed")
        else:
            entry.update(
                brier=sum(brier(p, ok) for p, ok in pairs) / n,
                log_loss=sum(log_loss(p, ok) for p, ok in pairs) / n,
                called_right=sum(1 for p, ok in pairs if (p > 0.5) == ok) / n,
                mean_predicted=sum(p for p, _ in pairs) / n,
                observed_rate=sum(1 for _, ok in pairs if ok) / n,
                bins=reliability(pairs),
                note="",
            )
        strategies[name] = entry
    return {
        "strategies": strategies,
        "bins": RELIABILITY_BINS,
        "counted": len(rows),
        "not_counted": total - len(rows),
        "min_samples": min_samples,
    }


def reliability(pairs: list[tuple[float, bool]], bins: int = RELIABILITY_BINS) -> list[dict[str, float]]:
    """Non-empty equal-width bins of p: [lo, hi), the last one closed; mean predicted p, observed rate, count."""
    acc: dict[int, list[tuple[float, bool]]] = {}
    for p, ok in pairs:
        acc.setdefault(min(int(p * bins), bins - 1), []).append((p, ok))
    return [
        {"lo": k / bins, "hi": (k + 1) / bins, "n": len(v), "mean_predicted": sum(p for p, _ in v) / len(v),
         "observed_rate": sum(1 for _, ok in v if ok) / len(v)}
        for k, v in sorted(acc.items())
    ]


def calibration_figures(table: dict[str, Any], alert_min_samples: int) -> dict[str, Figure]:
    """The alert's figure (the worst Brier among strategies with enough outcomes) and neural's share called right."""
    strategies = table["strategies"]
    ready = {k: v for k, v in strategies.items() if v["brier"] is not None and v["outcomes"] >= alert_min_samples}
    if ready:
        worst = max(ready, key=lambda k: ready[k]["brier"])
        others = ", ".join(f"{k} {v['brier']:.3f}" for k, v in ready.items() if k != worst)
        cal = Figure(ready[worst]["brier"], ready[worst]["outcomes"],
                     f"Brier of {worst} (worst of the strategies in use)" + (f"; {others}" if others else ""),
                     strategy=worst)
    else:
        seen = {k: v["outcomes"] for k, v in strategies.items() if v["outcomes"]}
        have = ", ".join(f"{k} {n}" for k, n in seen.items()) or "none"
        cal = Figure(None, max(seen.values(), default=0),
                     f"outcomes with a probability in the window: {have}; {alert_min_samples} needed per strategy")
    neural = strategies.get("neural") or {"outcomes": 0, "called_right": None, "note": "neural is not probabilistic"}
    right = neural["called_right"]
    acc = Figure(right, neural["outcomes"],
                 f"{round(right * neural['outcomes'])} of {neural['outcomes']} called right (p > 0.5 ↔ success)"
                 if right is not None else neural.get("note", ""))
    return {"calibration_brier": cal, "neural_accuracy": acc}


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
        "SELECT COUNT(*) AS n, COALESCE(SUM(CASE WHEN success = 1 THEN duration_s ELSE 0 END), 0) AS good, "
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


# --- what auto learns from: per-swarm estimator scores ------------------------------------------------------------

# Swarms shown (and exported to /metrics), newest first; the rest are counted.
MAX_SWARMS_SHOWN = 20


def prior_provenance() -> dict[str, Any]:
    """Where auto's starting belief comes from (the held-out prior file, SIMULATED data), or that there is none."""
    if not scoring.prior():  # what auto uses: read once per process
        return {"present": False, "file": scoring.PRIOR_FILE.name,
                "note": "no held-out prior in this process (file absent or empty): auto starts from the candidates' "
                "order until outcomes come in"}
    try:
        data = json.loads(scoring.PRIOR_FILE.read_text())
    except (OSError, ValueError):
        data = {}
    data = data if isinstance(data, dict) else {}
    return {"present": True, "file": scoring.PRIOR_FILE.name, "data": data.get("data"),
            "profile": data.get("profile"), "created_at": data.get("created_at")}


def estimator_scores(conn: sqlite3.Connection, neural_allowed: bool | None = None) -> dict[str, Any]:
    """Per swarm with reported outcomes: each probabilistic estimator's realised log-loss and Brier (the board's
    estimator_scores), its held-out prior, and what `auto` would use there now (scoring.choose, as swarm_status)."""
    from ansf_mcp.board.scores import tallies  # the board's own reader of estimator_scores

    candidates = list(AUTO_CANDIDATES)
    without_neural = [c for c in candidates if c != "neural"]
    pri = scoring.prior()
    swarms = conn.execute(
        "SELECT s.id, s.name FROM swarms s WHERE EXISTS (SELECT 1 FROM estimator_scores e WHERE e.swarm_id = s.id) "
        "ORDER BY s.created_at DESC, s.id"
    ).fetchall()
    total = conn.execute("SELECT COUNT(*) FROM swarms").fetchone()[0]
    shown = []
    for r in swarms[:MAX_SWARMS_SHOWN]:
        t = tallies(conn, r["id"])
        choice = scoring.choose(t, candidates)
        auto: dict[str, Any] = {"estimator": choice.estimator, "reason": choice.reason}
        if neural_allowed is False and choice.estimator == "neural" and without_neural:
            alt = scoring.choose(t, without_neural)
            auto["in_this_phase"] = alt.estimator
            auto["reason"] += f"; the network is disabled in the current phase, so auto uses {alt.estimator}"
        shown.append({
            "swarm_id": r["id"], "name": r["name"], "auto": auto,
            "scores": [{**s.model_dump(), "prior_brier": (pri.get(s.estimator) or {}).get("brier")}
                       for s in choice.scores],
        })
    fresh = scoring.choose({}, candidates)
    return {
        "candidates": candidates,
        "prior": {**prior_provenance(), "weight_outcomes": scoring.PRIOR_WEIGHT,
                  "estimators": {k: {"log_loss": v.get("log_loss"), "brier": v.get("brier")}
                                 for k, v in pri.items() if isinstance(v, dict)}},
        "swarms": shown,
        "swarms_with_outcomes": len(swarms),
        "swarms_total": total,
        "omitted": max(0, len(swarms) - MAX_SWARMS_SHOWN),
        "auto_without_outcomes": {"estimator": fresh.estimator, "reason": fresh.reason},
    }


# --- benchmark --------------------------------------------------------------------------------------------------


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
