"""GET /metrics: the latest snapshot in Prometheus text format, from a registry of our own (not the global one)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector as PromCollector
from starlette.responses import Response

if TYPE_CHECKING:
    from ansf_mcp.dashboard.app import Dashboard


class SnapshotCollector(PromCollector):
    """Yields gauges from the dashboard's latest collection; a figure without data is left out, never 0."""

    def __init__(self, dashboard: Dashboard):
        self.dashboard = dashboard

    def collect(self) -> Iterator[Metric]:
        dash = self.dashboard
        snap: dict[str, Any] | None = dash.collector.latest
        clients = dash.hub.counts()
        g = GaugeMetricFamily("ansf_dashboard_clients", "Connected dashboard pages", labels=["state"])
        g.add_metric(["connected"], clients["connected"])
        g.add_metric(["paused"], clients["paused"])
        yield g
        active = {a["name"] for a in dash.active}
        g = GaugeMetricFamily("ansf_alert_active", "1 while the alert is raised", labels=["name"])
        for name in snap["thresholds"] if snap else ():
            g.add_metric([name], 1.0 if name in active else 0.0)
        yield g
        if snap is None:
            return
        yield GaugeMetricFamily("ansf_collection_timestamp_seconds", "When the latest collection ran", value=snap["ts"])
        mem = snap["memory"]
        for key, name, doc in (
            ("used_bytes", "ansf_memory_used_bytes", "Memory used (governor reading, else machine)"),
            ("limit_bytes", "ansf_memory_limit_bytes", "Memory limit the fraction is taken of"),
            ("fraction", "ansf_memory_used_fraction", "Memory used / limit"),
        ):
            if mem.get(key) is not None:
                yield GaugeMetricFamily(name, doc, value=float(mem[key]))
        phase = snap["phase"]
        g = GaugeMetricFamily("ansf_phase_info", "Operating phase of this process", labels=["phase"])
        g.add_metric([str(phase.get("phase"))], 1.0)
        yield g
        g = GaugeMetricFamily("ansf_tasks", "Tasks on the board by state", labels=["state"])
        for state, n in snap["tasks"].items():
            g.add_metric([state], float(n))
        yield g
        points = snap["points"]
        for series, name, doc in (
            ("rate.claims_per_min", "ansf_claims_per_minute", "Claims (next_task) per minute since the last collection"),
            ("rate.outcomes_per_min", "ansf_outcomes_per_minute", "Reported outcomes per minute since the last collection"),
            ("process.rss_bytes", "ansf_dashboard_process_rss_bytes", "Resident memory of the dashboard's process"),
        ):
            if series in points:
                yield GaugeMetricFamily(name, doc, value=points[series])
        figures = snap["figures"]
        lat = GaugeMetricFamily(
            "ansf_coordinate_latency_ms", "coordinate decision time over the alert window", labels=["quantile"]
        )
        for q, key in (("0.5", "coordinate_p50_ms"), ("0.95", "coordinate_p95_ms")):
            if figures[key]["value"] is not None:
                lat.add_metric([q], figures[key]["value"])
        yield lat
        for key, name, doc in (
            ("coordination_accuracy", "ansf_coordination_accuracy", "Realised successes / expected successes"),
            ("neural_accuracy", "ansf_neural_accuracy", "Share of neural-decision outcomes called right"),
            ("neural_brier", "ansf_neural_brier_score", "Brier score of neural-decision estimates"),
            ("efficiency", "ansf_system_efficiency", "Share of reported agent time spent on successful attempts"),
        ):
            if figures[key]["value"] is not None:
                yield GaugeMetricFamily(name, doc, value=figures[key]["value"])
        load = snap.get("model_load") or {}
        if load.get("value") is not None:
            yield GaugeMetricFamily("ansf_model_load_ms", "Last neural model load (kept out of coordinate latency)",
                                    value=load["value"])
        bench = snap.get("benchmark")
        if bench:
            g = GaugeMetricFamily("ansf_benchmark_value_ratio", "Value ratio in the latest benchmark", labels=["label"])
            for entry in bench["value_ratios"]:
                g.add_metric([entry["label"]], entry["mean"])
            yield g


def metrics_response(dashboard: Dashboard) -> Response:
    registry = getattr(dashboard, "_registry", None)
    if registry is None:
        registry = CollectorRegistry(auto_describe=False)
        registry.register(SnapshotCollector(dashboard))
        dashboard._registry = registry  # type: ignore[attr-defined]
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
