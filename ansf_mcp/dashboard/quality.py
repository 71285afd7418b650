"""Live quality figures from REAL reported outcomes and decisions: calibration, latency, efficiency, model loads."""

from __future__ import annotations

import sqlite3
import time
from typing import Any

from ansf_mcp.coordinator.scoring import AUTO_CANDIDATES, brier, log_loss
from ansf_mcp.dashboard.figure import Figure
from ansf_mcp.system.stats import min_samples as min_samples_for
from ansf_mcp.system.stats import percentile

# Strategies whose `p_success` is a probability. `auto` chooses among exactly the estimators that produce one (it
# compares them by log-loss), so its candidates are that list; `tags` and `round-robin` report no p_success.
PROBABILISTIC = AUTO_CANDIDATES
# Equal-width bins of the predicted probability for the reliability curve.
RELIABILITY_BINS = 10


def calibration(conn: sqlite3.Connection, since: float, min_samples: int) -> dict[str, Any]:
    """How well `p_success` matched REAL reported outcomes in the window, per strategy that assigned the task.

    Every probabilistic strategy reports the one shared success model's p as `p_success` (strategies.decide), so a
    strategy's row scores that success model on the tasks this strategy assigned, not the strategy's own estimator
    (the estimator table scores those). Per probabilistic strategy (tasks.strategy joined to outcomes,
    outcomes.p_success not null): the number of
    outcomes, the Brier score, the log-loss (clipped as the estimator scores are, scoring.EPS), the success calls
    (p > 0.5) and the share of them that came true (`came_true`, needing `min_samples` success calls), mean predicted
    p beside the observed success rate, and the reliability curve: per equal-width bin of p, the mean predicted p,
    the observed success rate and the count. Scores need `min_samples` outcomes; the count is always given. Every
    figure but log-loss lies in [0, 1].
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
        calls = [ok for p, ok in pairs if p > 0.5]
        entry: dict[str, Any] = {"outcomes": n, "success_calls": len(calls), "success_calls_true": sum(calls),
                                 "came_true": sum(calls) / len(calls) if len(calls) >= min_samples else None,
                                 "brier": None, "log_loss": None,
                                 "mean_predicted": None, "observed_rate": None, "bins": []}
        if n < min_samples:
            entry["note"] = (f"no outcomes of {name} decisions in the window" if n == 0
                             else f"{n} outcome(s); {min_samples} needed")
        else:
            entry.update(
                brier=sum(brier(p, ok) for p, ok in pairs) / n,
                log_loss=sum(log_loss(p, ok) for p, ok in pairs) / n,
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


def calibration_measured_on(window_s: float) -> str:
    """What the calibration table (and the cards and the alerts read from it) is measured on, said once."""
    return (f"REAL reported outcomes of the last {window_s:g} s in every swarm, each scored with its task's "
            "p_success: the shared success model's p, whichever strategy decided; a row groups the outcomes by the "
            "strategy that assigned its task (it does not score that strategy's own estimator)")


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
    """The alert's figure (the worst Brier among strategies with enough outcomes) and the share of the success
    model's calls on the tasks neural assigned that came true: the table's own cell (`success_calls_figure`), so the
    card and the table's row agree."""
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
    neural = strategies.get("neural") or {"outcomes": 0, "success_calls": 0, "success_calls_true": 0, "came_true": None}
    acc = success_calls_figure(neural, table["min_samples"])
    return {"calibration_brier": cal, "neural_accuracy": acc}


def success_calls_figure(entry: dict[str, Any], min_samples: int) -> Figure:
    """Of the tasks a strategy assigned with p_success > 0.5 (the shared success model's success calls), the share
    that succeeded: the calibration table's `came_true` cell, with its counts.

    This, not "called right", is what the neural alert reads: a task the success model doubted (p ≤ 0.5) that
    succeeded cost nothing, so a run where every assigned task succeeded reads 1.0 (or no figure) however low
    p was; how far p sits from the outcomes is the Brier alert's question. It needs `min_samples` success calls.
    """
    n, true = entry.get("success_calls", 0), entry.get("success_calls_true", 0)
    if entry.get("came_true") is None:
        return Figure(None, n, f"{n} success call(s) (p > 0.5) on neural's assignments in the window; {min_samples} needed"
                      f" ({entry.get('outcomes', 0)} outcome(s) in all)")
    return Figure(entry["came_true"], n, f"{true} of {n} success calls (p > 0.5) came true")


def coordinate_latency(conn: sqlite3.Connection, since: float, min_samples: int = 1) -> dict[str, Figure]:
    values = [
        r[0] for r in conn.execute("SELECT elapsed_ms FROM decisions WHERE created_at >= ?", (since,)).fetchall()
    ]
    n = len(values)
    if n < min_samples:
        note = f"{n} coordinate decision(s) in the window; {min_samples} needed"
        return {"p50": Figure(None, n, note), "p95": Figure(None, n, note)}
    # A p95 of fewer than 20 decisions is the slowest one or two under another name (stats.min_samples).
    tail = min_samples_for(95)
    p95 = (Figure(percentile(values, 95), n) if n >= tail
           else Figure(None, n, f"{n} coordinate decision(s) in the window; a p95 needs {tail}"))
    return {"p50": Figure(percentile(values, 50), n), "p95": p95}


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


def model_load(conn: sqlite3.Connection) -> Figure:
    """The last model load (ms), kept apart from decision latency: the alert on coordinate p95 never sees it."""
    row = conn.execute("SELECT profile, trigger, elapsed_ms, created_at, (SELECT COUNT(*) FROM model_loads) AS n "
                       "FROM model_loads ORDER BY id DESC LIMIT 1").fetchone()
    if row is None:
        return Figure(None, 0, "no model loaded by a server on this store yet")
    return Figure(row["elapsed_ms"], row["n"], f"{row['profile']} ({row['trigger']}) at "
                  f"{time.strftime('%H:%M:%S', time.localtime(row['created_at']))}")
