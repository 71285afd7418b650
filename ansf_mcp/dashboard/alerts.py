"""Alerts on live figures measured from reported outcomes and coordinate decisions, with hysteresis on clear.

The `alerts` table is the state: an open alert is a row with `cleared_at IS NULL`. Several processes may watch
one store (`ansf serve --dashboard` and `ansf dashboard`); the check re-reads open rows inside its write
transaction, so a breach is raised once, not once per watcher.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Literal

from ansf_mcp.dashboard import figure, quality
from ansf_mcp.dashboard.config import DashboardConfig
from ansf_mcp.store.db import Store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AlertRule:
    name: str
    label: str
    figure: str  # key into the figures dict
    direction: Literal["below", "above"]
    threshold_field: str  # DashboardConfig field
    severity: str = "warning"
    unit: str = ""

    def threshold(self, config: DashboardConfig) -> float:
        return float(getattr(config, self.threshold_field))

    def breached(self, value: float, config: DashboardConfig) -> bool:
        t = self.threshold(config)
        return value < t if self.direction == "below" else value > t

    def recovered(self, value: float, config: DashboardConfig) -> bool:
        """Hysteresis: clear only once the value is a margin beyond the threshold, not merely back across it."""
        t = self.threshold(config)
        h = config.hysteresis
        return value >= t * (1 + h) if self.direction == "below" else value <= t * (1 - h)


RULES: tuple[AlertRule, ...] = (
    AlertRule("calibration", "calibration: Brier score", "calibration_brier", "above",
              "calibration_brier_max", severity="critical"),
    AlertRule("neural_accuracy", "neural's assignments: share of success calls (p > 0.5) that came true",
              "neural_accuracy", "below", "neural_accuracy_min"),
    AlertRule("coordinate_p95", "coordinate p95 latency", "coordinate_p95_ms", "above",
              "coordinate_p95_max_ms", unit=" ms"),
    AlertRule("system_efficiency", "system efficiency", "efficiency", "below", "efficiency_min"),
)


@dataclass
class Measured:
    figures: dict[str, figure.Figure]
    calibration: dict[str, Any]


def measure(store: Store, config: DashboardConfig, now: float | None = None) -> Measured:
    """The live figures and the calibration table they come from, in one read of the store."""
    now = time.time() if now is None else now
    since = now - config.alert_window_s
    with store.reading() as conn:
        table = quality.calibration(conn, since, config.min_samples)
        latency = quality.coordinate_latency(conn, since, config.min_samples)
        eff = quality.efficiency(conn, since, config.min_samples)
    table["measured_on"] = quality.calibration_measured_on(config.alert_window_s)
    cal = quality.calibration_figures(table, max(config.calibration_min_samples, config.min_samples))
    figures = {
        "calibration_brier": cal["calibration_brier"],
        "neural_accuracy": cal["neural_accuracy"],
        "coordinate_p50_ms": latency["p50"],
        "coordinate_p95_ms": latency["p95"],
        "efficiency": eff,
    }
    return Measured(figures, table)


def live_figures(store: Store, config: DashboardConfig, now: float | None = None) -> dict[str, figure.Figure]:
    return measure(store, config, now).figures


def open_alerts(store: Store) -> list[dict[str, Any]]:
    with store.reading() as conn:
        rows = conn.execute(
            "SELECT id, name, severity, message, value, threshold, raised_at FROM alerts "
            "WHERE cleared_at IS NULL ORDER BY raised_at"
        ).fetchall()
    return [dict(r) for r in rows]


def recent_alerts(store: Store, limit: int = 20) -> list[dict[str, Any]]:
    with store.reading() as conn:
        rows = conn.execute(
            "SELECT id, name, severity, message, value, threshold, raised_at, cleared_at FROM alerts "
            "ORDER BY id DESC LIMIT ?",
            (limit,),
        ).fetchall()
    return [dict(r) for r in rows]


def check(
    store: Store, config: DashboardConfig, figures: dict[str, figure.Figure] | None = None,
    now: float | None = None,
) -> tuple[dict[str, figure.Figure], list[dict[str, Any]]]:
    """Measure, then raise or clear alerts; returns the figures and the events (raised/cleared) this call made."""
    now = time.time() if now is None else now
    figures = live_figures(store, config, now) if figures is None else figures
    currently_open = {a["name"] for a in open_alerts(store)}
    wanted: list[tuple[AlertRule, str]] = []
    retired = currently_open - {rule.name for rule in RULES}
    for rule in RULES:
        fig = figures[rule.figure]
        is_open = rule.name in currently_open
        if not is_open and fig.value is not None and rule.breached(fig.value, config):
            wanted.append((rule, "raise"))
        elif is_open and (fig.value is None or rule.recovered(fig.value, config)):
            wanted.append((rule, "clear"))
    if not wanted and not retired:
        return figures, []
    events: list[dict[str, Any]] = []
    with store.transaction() as conn:
        for name in sorted(retired):  # raised by an earlier version under a rule that no longer exists
            for row in conn.execute("SELECT id FROM alerts WHERE name = ? AND cleared_at IS NULL", (name,)).fetchall():
                conn.execute("UPDATE alerts SET cleared_at = ? WHERE id = ?", (now, row["id"]))
                events.append({"event": "cleared", "id": row["id"], "name": name,
                               "reason": "this alert no longer exists (replaced in this version)", "at": now})
        for rule, action in wanted:
            row = conn.execute(
                "SELECT id FROM alerts WHERE name = ? AND cleared_at IS NULL ORDER BY id DESC LIMIT 1", (rule.name,)
            ).fetchone()
            fig = figures[rule.figure]
            threshold = rule.threshold(config)
            if action == "raise" and row is None:
                about = f" of {fig.strategy}" if fig.strategy else ""
                message = (
                    f"{rule.label}{about} {_fmt(fig.value)}{rule.unit} is {rule.direction} {_fmt(threshold)}{rule.unit} "
                    f"({fig.samples} samples in the last {config.alert_window_s:g} s)"
                )
                cur = conn.execute(
                    "INSERT INTO alerts (name, severity, message, value, threshold, raised_at) VALUES (?,?,?,?,?,?) "
                    "RETURNING id",
                    (rule.name, rule.severity, message, fig.value, threshold, now),
                )
                events.append({"event": "raised", "id": cur.fetchone()[0], "name": rule.name, "severity": rule.severity,
                               "message": message, "value": fig.value, "threshold": threshold, "at": now})
                log.warning("alert raised: %s", message)
            elif action == "clear" and row is not None:
                conn.execute("UPDATE alerts SET cleared_at = ? WHERE id = ?", (now, row["id"]))
                why = "no data in the window" if fig.value is None else f"back to {_fmt(fig.value)}{rule.unit}"
                events.append({"event": "cleared", "id": row["id"], "name": rule.name, "reason": why, "at": now})
                log.warning("alert cleared: %s (%s)", rule.name, why)
    return figures, events


def with_live_text(active: list[dict[str, Any]], figures: dict[str, figure.Figure], config: DashboardConfig
                   ) -> list[dict[str, Any]]:
    """Open alerts with `message` saying what the figure is now (the text written when the alert was raised
    stays as `raised_message`): an alert must not read "0.692 (13 samples)" beside a card showing 0.851."""
    rules = {rule.name: rule for rule in RULES}
    out = []
    for alert in active:
        rule = rules.get(alert["name"])
        fig = figures.get(rule.figure) if rule else None
        if rule is None or fig is None:
            out.append(alert)
            continue
        t, h = rule.threshold(config), config.hysteresis
        clear = t * (1 + h) if rule.direction == "below" else t * (1 - h)
        about = f" of {fig.strategy}" if getattr(fig, "strategy", None) else ""
        if fig.value is not None:
            where = "is" if rule.breached(fig.value, config) else "is no longer"
            now = (f"{_fmt(fig.value)}{rule.unit} now ({fig.samples} samples in the last {config.alert_window_s:g} s) "
                   f"{where} {rule.direction} {_fmt(t)}{rule.unit}")
        else:
            now = f"has no figure now ({fig.note})"
        message = (f"{rule.label}{about} {now}; clears {'at or above' if rule.direction == 'below' else 'at or below'}"
                   f" {_fmt(clear)}{rule.unit}; raised at {_fmt(alert.get('value'))}{rule.unit}")
        out.append({**alert, "message": message, "raised_message": alert["message"], "current_value": fig.value,
                    "current_samples": fig.samples})
    return out


def _fmt(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:.3f}" if abs(value) < 10 else f"{value:.0f}"
