"""Collection: one snapshot every `interval_s`, its numeric figures kept as a persisted ring per series, and trends."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from typing import Any, TypeVar

from ansf_mcp.board.lifecycle import TASK_STATES
from ansf_mcp.dashboard import (
    activity,
    alerts,
    auto_scores,
    benchmarks,
    figure,
    machine,
    quality,
    semantic_health,
)
from ansf_mcp.dashboard.config import DashboardConfig
from ansf_mcp.dashboard.snapshot import Snapshot
from ansf_mcp.runtime import Runtime
from ansf_mcp.system import measure

log = logging.getLogger(__name__)
T = TypeVar("T")

# series name -> (label, unit) — what the page and /api/snapshot call each ring.
SERIES: dict[str, tuple[str, str]] = {
    "memory.used_fraction": ("memory used", "fraction"),
    "memory.used_bytes": ("memory used", "bytes"),
    "process.rss_bytes": ("this process RSS", "bytes"),
    "phase.level": ("phase (1 critical, 2 enhanced, 3 optimal)", "level"),
    "tasks.ready": ("tasks ready", "count"),
    "tasks.blocked": ("tasks blocked", "count"),
    "tasks.claimed": ("tasks claimed", "count"),
    "tasks.succeeded": ("tasks succeeded", "count"),
    "tasks.failed": ("tasks failed", "count"),
    "rate.claims_per_min": ("claims per minute", "1/min"),
    "rate.outcomes_per_min": ("outcomes per minute", "1/min"),
    "latency.p50_ms": ("coordinate p50", "ms"),
    "latency.p95_ms": ("coordinate p95", "ms"),
    **{f"calibration.{name}.brier": (f"{name}: Brier score on real outcomes", "score 0-1")
       for name in quality.PROBABILISTIC},
    "quality.neural_accuracy": ("neural's assignments: share of success calls (p > 0.5) that came true", "fraction"),
    "quality.efficiency": ("system efficiency", "fraction"),
    "semantic.cache_hit_ratio": ("semantic cache hit ratio", "fraction"),
    "semantic.cache_bytes": ("semantic cache on disk", "bytes"),
    "semantic.servers_alive": ("language servers alive", "count"),
    "semantic.lsp_rss_bytes": ("language servers RSS", "bytes"),
}


class Collector:
    def __init__(self, app: Runtime, config: DashboardConfig):
        self.app = app
        self.config = config
        self._last_ts: float | None = None
        self._last_claims: int | None = None
        self.latest: Snapshot | None = None
        self.board = app.board  # the runtime's: its policy and its clock

    # -- one collection ------------------------------------------------------------------------------------------

    def collect(self, now: float | None = None) -> Snapshot:
        """Measure everything, persist the numeric points, and return the snapshot (blocking: run in a thread)."""
        now = time.time() if now is None else now
        store = self.app.store
        failed: dict[str, str] = {}

        def part(name: str, compute: Callable[[], T], fallback: T) -> T:
            """One section of the snapshot: a bad row costs that section, never the whole collection."""
            try:
                return compute()
            except Exception as exc:
                log.warning("dashboard: %s could not be measured this round: %r", name, exc)
                failed[name] = f"{type(exc).__name__}: {exc}"[:300]
                return fallback

        def read(compute: Callable[[Any], T]) -> Callable[[], T]:
            def run() -> T:
                with store.reading() as conn:
                    return compute(conn)
            return run

        measured = part("figures", lambda: alerts.measure(store, self.config, now), None)
        figures = measured.figures if measured is not None else {}
        calibration = measured.calibration if measured is not None else {"strategies": {}}
        memory = part("memory", self._memory, {})
        model_load = part("model_load", read(quality.model_load), figure.Figure(None, 0, "could not be read"))
        phase = part("phase", read(lambda conn: machine.phase_info(self.app, conn)), {})
        tasks = part("tasks", read(lambda conn: activity.task_counts(conn, self.board, now)), {})
        claims = part("claims", read(activity.claims_counter), None)
        elapsed = (now - self._last_ts) if self._last_ts else self.config.interval_s
        outcomes = part("outcomes", read(lambda conn: activity.outcomes_since(conn, now - elapsed)), None)
        outcome_totals = part("outcome_totals", read(activity.outcome_totals), None)
        benchmark = part("benchmark", read(benchmarks.latest_benchmark), None)
        replay = part("replay", read(benchmarks.latest_replay), None)
        estimators = part("estimators",
                          read(lambda conn: auto_scores.estimator_scores(conn, phase.get("neural_allowed"),
                                                                         self.board.records)), None)
        claims_rate = None
        if claims is not None and self._last_claims is not None and claims >= self._last_claims and elapsed > 0:
            claims_rate = (claims - self._last_claims) * 60.0 / elapsed
        self._last_ts, self._last_claims = now, claims
        semantic = part("semantic", lambda: semantic_health.semantic_health(self.app), None)

        def fig(name: str) -> float | None:
            f = figures.get(name)
            return None if f is None else f.value

        points: dict[str, float | None] = {
            "memory.used_fraction": memory.get("fraction"),
            "memory.used_bytes": memory.get("used_bytes"),
            "process.rss_bytes": measure.process_rss(),
            "phase.level": phase.get("level"),
            **{f"tasks.{k}": v for k, v in tasks.items() if k in TASK_STATES},
            "rate.claims_per_min": claims_rate,
            "rate.outcomes_per_min": outcomes * 60.0 / elapsed if outcomes is not None and elapsed > 0 else None,
            "latency.p50_ms": fig("coordinate_p50_ms"),
            "latency.p95_ms": fig("coordinate_p95_ms"),
            **{f"calibration.{name}.brier": cell["brier"] for name, cell in calibration["strategies"].items()},
            "quality.neural_accuracy": fig("neural_accuracy"),
            "quality.efficiency": fig("efficiency"),
        }
        if semantic and "error" not in semantic:
            cache = semantic.get("cache") or {}
            servers = semantic.get("servers") or []
            points["semantic.cache_hit_ratio"] = cache.get("hit_ratio")
            points["semantic.cache_bytes"] = cache.get("bytes_on_disk")
            points["semantic.servers_alive"] = sum(1 for s in servers if s.get("alive"))
            points["semantic.lsp_rss_bytes"] = sum(s.get("rss_bytes") or 0 for s in servers) if servers else None
        points = {k: float(v) for k, v in points.items() if v is not None and math.isfinite(float(v))}
        part("persist", lambda: self.persist(now, points), None)
        history = part("history", lambda: self.history(since=now - self.config.trend_window_s), {})
        snapshot = {
            "ts": now,
            "interval_s": self.config.interval_s,
            "memory": memory,
            "phase": phase,
            "tasks": tasks,
            "rates": {"claims_per_min": claims_rate, "outcomes_per_min": points.get("rate.outcomes_per_min"),
                      "claims_total": claims, "outcomes_total": outcome_totals},
            "figures": {k: f.as_dict() for k, f in figures.items()},
            "calibration": calibration,
            "estimators": estimators,
            "benchmark": benchmark,
            "model_load": model_load.as_dict(),
            "replay": replay,
            "semantic": semantic,
            "points": points,
            "trends": trends(history, now, self.config.trend_window_s),
            "thresholds": thresholds(self.config),
            "alert_window_s": self.config.alert_window_s,
            "failed": failed,
        }
        typed = Snapshot.model_validate(finite(snapshot))
        self.latest = typed
        return typed

    def board_now(self, now: float | None = None) -> Snapshot:
        """The latest snapshot with tasks per state and the claims counter read again now (`live`: only
        `points` of those series are new; nothing is persisted, the next collection keeps the ring)."""
        now = time.time() if now is None else now
        latest = self.latest
        assert latest is not None
        with self.app.store.reading() as conn:
            tasks = activity.task_counts(conn, self.board, now)
            claims = activity.claims_counter(conn)
        points = {f"tasks.{k}": float(v) for k, v in tasks.items() if k in TASK_STATES}
        self.latest = latest.model_copy(update={"tasks": tasks,
                                                "rates": latest.rates.model_copy(update={"claims_total": claims})})
        return self.latest.model_copy(update={"ts": now, "points": points, "live": True})

    def _memory(self) -> dict[str, Any]:
        """The governor's own reading when there is a governor, so the memory card and the phase's reason (which
        quotes the reading it rests on) show the same number."""
        governor = getattr(self.app, "governor", None)
        if governor is None:
            return machine.memory_reading(self.app.settings.cgroup_root)
        try:
            governor.refresh(force=True)
        except Exception:  # fall back to the dashboard's own reading, which says where it came from
            return machine.memory_reading(self.app.settings.cgroup_root)
        return machine.memory_figures(governor.reading)

    # -- the ring ------------------------------------------------------------------------------------------------

    def persist(self, ts: float, points: dict[str, float]) -> None:
        if not points:
            return
        keep = self.config.ring_size
        with self.app.store.transaction() as conn:
            conn.executemany(
                "INSERT INTO metric_points (series, ts, value) VALUES (?, ?, ?) "
                "ON CONFLICT (series, ts) DO UPDATE SET value = excluded.value",
                [(series, ts, value) for series, value in points.items()],
            )
            for series in points:
                conn.execute(
                    "DELETE FROM metric_points WHERE series = ? AND ts < ("
                    "SELECT ts FROM metric_points WHERE series = ? ORDER BY ts DESC LIMIT 1 OFFSET ?)",
                    (series, series, keep - 1),
                )

    def history(self, since: float | None = None) -> dict[str, list[list[float]]]:
        out: dict[str, list[list[float]]] = {}
        with self.app.store.reading() as conn:
            rows = conn.execute(
                "SELECT series, ts, value FROM metric_points WHERE ts >= ? ORDER BY series, ts",
                (since if since is not None else 0.0,),
            ).fetchall()
        for r in rows:
            out.setdefault(r["series"], []).append([r["ts"], r["value"]])
        return out


def finite(value: Any) -> Any:
    """The snapshot with every non-finite number as None: JSON has no NaN or infinity, browsers reject them."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value


def trends(history: dict[str, list[list[float]]], now: float, window_s: float) -> dict[str, dict[str, Any]]:
    """Least-squares slope per series over the window, per minute, and a direction (flat within 1 % of scale)."""
    out: dict[str, dict[str, Any]] = {}
    for series, pts in history.items():
        pts = [p for p in pts if p[0] >= now - window_s]
        n = len(pts)
        if n < 3:
            out[series] = {"points": n, "slope_per_min": None, "direction": "no data"}
            continue
        xs = [p[0] for p in pts]
        ys = [p[1] for p in pts]
        mx, my = sum(xs) / n, sum(ys) / n
        sxx = sum((x - mx) ** 2 for x in xs)
        if sxx <= 0:
            out[series] = {"points": n, "slope_per_min": None, "direction": "no data"}
            continue
        slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx  # per second
        change = slope * (xs[-1] - xs[0])  # fitted change over the span covered
        scale = max(abs(my), max(ys) - min(ys), 1e-12)
        direction = "flat" if abs(change) < 0.01 * scale else ("rising" if slope > 0 else "falling")
        out[series] = {"points": n, "slope_per_min": slope * 60.0, "direction": direction,
                       "span_s": xs[-1] - xs[0]}
    return out


def thresholds(config: DashboardConfig) -> dict[str, dict[str, Any]]:
    return {
        rule.name: {"figure": rule.figure, "direction": rule.direction, "threshold": rule.threshold(config),
                    "severity": rule.severity}
        for rule in alerts.RULES
    }
