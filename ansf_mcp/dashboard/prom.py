"""GET /metrics: the latest snapshot in Prometheus text format, from a registry of our own (not the global one)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector as PromCollector
from starlette.responses import Response

from ansf_mcp.dashboard.snapshot import BenchmarkView, Snapshot


@dataclass(frozen=True)
class Watched:
    """What /metrics reads from the dashboard, handed over as readers so this module needs nothing of the app."""

    latest: Callable[[], Snapshot | None]
    clients: Callable[[], dict[str, int]]
    active: Callable[[], set[str]]


class SnapshotCollector(PromCollector):
    """Yields gauges from the dashboard's latest collection; a figure without data is left out, never 0."""

    def __init__(self, watched: Watched):
        self.watched = watched

    def collect(self) -> Iterator[Metric]:
        snap = self.watched.latest()
        clients = self.watched.clients()
        g = GaugeMetricFamily("ansf_dashboard_clients", "Connected dashboard pages", labels=["state"])
        g.add_metric(["connected"], clients["connected"])
        g.add_metric(["paused"], clients["paused"])
        yield g
        active = self.watched.active()
        g = GaugeMetricFamily("ansf_alert_active", "1 while the alert is raised", labels=["name"])
        for name in snap.thresholds if snap else ():
            g.add_metric([name], 1.0 if name in active else 0.0)
        yield g
        if snap is None:
            return
        yield GaugeMetricFamily("ansf_collection_timestamp_seconds", "When the latest collection ran", value=snap.ts)
        mem = snap.memory
        for key, name, doc in (
            ("used_bytes", "ansf_memory_used_bytes", "Memory used (governor reading, else machine)"),
            ("limit_bytes", "ansf_memory_limit_bytes", "Memory limit the fraction is taken of"),
            ("fraction", "ansf_memory_used_fraction", "Memory used / limit"),
        ):
            value = getattr(mem, key)
            if value is not None:
                yield GaugeMetricFamily(name, doc, value=float(value))
        g = GaugeMetricFamily("ansf_phase_info", "Operating phase of this process", labels=["phase"])
        g.add_metric([snap.phase.phase], 1.0)
        yield g
        g = GaugeMetricFamily("ansf_tasks", "Tasks on the board by state", labels=["state"])
        for state, n in snap.tasks.items():
            g.add_metric([state], float(n))
        yield g
        points = snap.points
        for series, name, doc in (
            ("rate.claims_per_min", "ansf_claims_per_minute", "Claims (next_task) per minute since the last collection"),
            ("rate.outcomes_per_min", "ansf_outcomes_per_minute", "Reported outcomes per minute since the last collection"),
            ("process.rss_bytes", "ansf_dashboard_process_rss_bytes", "Resident memory of the dashboard's process"),
        ):
            if series in points:
                yield GaugeMetricFamily(name, doc, value=points[series])
        # Counters beside the per-minute gauges: a gauge covers one collection interval, so a scraper that reads
        # less often than the dashboard collects never sees a burst; rate() over a counter does.
        if snap.rates.claims_total is not None:
            yield CounterMetricFamily("ansf_claims", "Claims (next_task) handed out on the board's tasks",
                                      value=float(snap.rates.claims_total))
        if snap.rates.outcomes_total is not None:
            c = CounterMetricFamily("ansf_outcomes", "Outcomes reported on the board, by result", labels=["result"])
            for result, n in sorted(snap.rates.outcomes_total.items()):
                c.add_metric([result], float(n))
            yield c
        figures = snap.figures
        lat = GaugeMetricFamily(
            "ansf_coordinate_latency_ms", "coordinate decision time over the alert window", labels=["quantile"]
        )
        for q, key in (("0.5", "coordinate_p50_ms"), ("0.95", "coordinate_p95_ms")):
            if key in figures and figures[key].value is not None:
                lat.add_metric([q], figures[key].value)
        yield lat
        for key, name, doc in (
            ("neural_accuracy", "ansf_neural_accuracy",
             "Share (0-1) of the tasks the neural strategy assigned with p_success > 0.5 (the shared success "
             "model's p) that succeeded, real outcomes in the alert window"),
            ("efficiency", "ansf_system_efficiency", "Share of reported agent time spent on successful attempts"),
        ):
            if key in figures and figures[key].value is not None:
                yield GaugeMetricFamily(name, doc, value=figures[key].value)
        if snap.model_load.value is not None:
            yield GaugeMetricFamily("ansf_model_load_ms", "Last neural model load (kept out of coordinate latency)",
                                    value=snap.model_load.value)
        yield from calibration_gauges(snap.calibration)
        yield from estimator_gauges(snap.estimators)
        yield from benchmark_gauges(snap.benchmark, snap.replay)


CALIBRATION = (
    ("outcomes", "ansf_calibration_outcomes",
     "Real reported outcomes with a p_success, per strategy that assigned the task, in the alert window"),
    ("brier", "ansf_calibration_brier_score",
     "Brier score (0-1, lower is better) of p_success (the shared success model's p, not the strategy's own "
     "estimator) on real reported outcomes of the tasks each strategy assigned, alert window"),
    ("log_loss", "ansf_calibration_log_loss",
     "Log-loss (lower is better) of p_success (the shared success model's p, not the strategy's own estimator) on "
     "real reported outcomes of the tasks each strategy assigned, alert window"),
    ("mean_predicted", "ansf_calibration_mean_predicted",
     "Mean p_success (the shared success model's p) of the tasks each strategy assigned whose real outcomes came "
     "back, alert window"),
    ("observed_rate", "ansf_calibration_observed_success_rate",
     "Observed success rate of those real outcomes, per strategy that assigned the task, alert window"),
)


def calibration_gauges(table: dict[str, Any] | None) -> Iterator[Metric]:
    strategies = (table or {}).get("strategies") or {}
    for key, name, doc in CALIBRATION:
        g = GaugeMetricFamily(name, doc, labels=["strategy"])
        for strategy, cell in strategies.items():
            if cell.get(key) is not None:
                g.add_metric([strategy], float(cell[key]))
        yield g


ESTIMATOR = (
    ("outcomes", "ansf_estimator_outcomes",
     "Real outcomes reported to the swarm that the estimator had a prediction for (what auto learns from)"),
    ("log_loss", "ansf_estimator_log_loss", "Mean RAW log-loss (p as given: calibration) of the estimator on the swarm's real reported "
     "outcomes since it began (every estimator's p for each assigned task, whichever strategy assigned it)"),
    ("brier", "ansf_estimator_brier_score", "Mean RAW Brier score (p as given: calibration) of the estimator on the swarm's real "
     "reported outcomes since it began (every estimator's p for each assigned task, whichever strategy assigned it)"),
    ("kept_outcomes", "ansf_estimator_kept_outcomes",
     "The newest real reported outcomes (at most 512) whose p is kept to recalibrate"),
    ("recalibrated_log_loss", "ansf_estimator_recalibrated_log_loss",
     "Mean log-loss on the kept real outcomes after a monotone recalibration fitted out of sample (how well the "
     "estimator orders them, not its scale)"),
    ("blended_log_loss", "ansf_estimator_blended_log_loss",
     "What auto compares: the SIMULATED held-out prior and the swarm's real outcomes (recalibrated when every "
     "candidate's can be, else raw), weighted by count"),
)


def estimator_gauges(est: dict[str, Any] | None) -> Iterator[Metric]:
    if not est:
        return
    swarms = est.get("swarms") or []
    for key, name, doc in ESTIMATOR:
        g = GaugeMetricFamily(name, doc, labels=["swarm", "estimator"])
        for sw in swarms:
            for score in sw["scores"]:
                if score.get(key) is not None:
                    g.add_metric([sw["swarm_id"], score["estimator"]], float(score[key]))
        yield g
    g = GaugeMetricFamily("ansf_auto_estimator", "1 for the estimator auto would use on the swarm now",
                          labels=["swarm", "estimator"])
    for sw in swarms:
        auto = sw["auto"]
        g.add_metric([sw["swarm_id"], auto.get("in_this_phase") or auto["estimator"]], 1.0)
    yield g
    prior = (est.get("prior") or {}).get("estimators") or {}
    for key, name, doc in (
        ("log_loss", "ansf_estimator_prior_log_loss",
         "SIMULATED: the estimator's raw log-loss (p as given) on held-out simulated episodes, auto's starting "
         "belief before a swarm's record is recalibrated"),
        ("brier", "ansf_estimator_prior_brier_score",
         "SIMULATED: the estimator's raw Brier score (p as given) on held-out simulated episodes, auto's starting "
         "belief before a swarm's record is recalibrated"),
    ):
        g = GaugeMetricFamily(name, doc, labels=["estimator"])
        for estimator, values in prior.items():
            if values.get(key) is not None:
                g.add_metric([estimator], float(values[key]))
        yield g


def benchmark_gauges(bench: BenchmarkView | None, replay: dict[str, Any] | None) -> Iterator[Metric]:
    if bench:
        g = GaugeMetricFamily(
            "ansf_benchmark_simulated_value_ratio",
            "SIMULATED: value ratio against the oracle on simulated episodes (latest benchmark run); not real work",
            labels=["label"],
        )
        for entry in bench.value_ratios:
            g.add_metric([entry["label"]], entry["mean"])
        yield g
    if replay:
        g = GaugeMetricFamily(
            "ansf_benchmark_replay_top1_accuracy",
            "REAL: top-1 accuracy (share of tasks given to their real author) on the replayed git history of repo",
            labels=["repo", "method", "tags", "window"],
        )
        r = GaugeMetricFamily(
            "ansf_benchmark_replay_random_expectation",
            "REAL: top-1 accuracy a random assignment under the same capacities is expected to reach",
            labels=["repo", "tags", "window"],
        )
        repo = str(replay.get("repo"))
        for cell in replay["cells"]:
            for method, v in cell["methods"].items():
                if v["mean"] is not None:
                    g.add_metric([repo, method, str(cell["tags"]), str(cell["window"])], v["mean"])
            if cell["random"]["mean"] is not None:
                r.add_metric([repo, str(cell["tags"]), str(cell["window"])], cell["random"]["mean"])
        yield g
        yield r


class Metrics:
    """One registry of our own per dashboard (not prometheus_client's global one)."""

    def __init__(self, watched: Watched):
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(SnapshotCollector(watched))

    def response(self) -> Response:
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)
