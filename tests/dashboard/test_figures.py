"""The figures, alerts, ring and trends, computed over rows written into a real store."""

from __future__ import annotations

import time

from ansf_mcp.dashboard import alerts, metrics
from ansf_mcp.dashboard.collector import Collector, trends
from ansf_mcp.dashboard.config import DashboardConfig
from ansf_mcp.runtime import Runtime
from ansf_mcp.store.db import Store
from tests.dashboard.conftest import add_benchmark, add_decisions, add_outcomes


def cfg(**kw) -> DashboardConfig:
    return DashboardConfig(**{"min_samples": 5, **kw})


def test_coordination_accuracy_is_realised_over_expected(store: Store) -> None:
    add_outcomes(store, [(True, 0.8)] * 6 + [(False, 0.8)] * 4 + [(True, None)] * 5)
    figs = alerts.live_figures(store, cfg())
    acc = figs["coordination_accuracy"]
    assert acc.samples == 10  # outcomes without an estimate (reporter was not the assignee) do not count
    assert abs(acc.value - 6 / 8.0) < 1e-9


def test_too_few_outcomes_say_no_data(store: Store) -> None:
    add_outcomes(store, [(True, 0.9)] * 3)
    figs = alerts.live_figures(store, cfg())
    assert figs["coordination_accuracy"].value is None and "5 needed" in figs["coordination_accuracy"].note
    assert figs["neural_accuracy"].value is None and "no outcomes of neural" in figs["neural_accuracy"].note
    assert figs["coordinate_p95_ms"].value is None and figs["efficiency"].value is None


def test_neural_accuracy_and_brier_only_over_neural_decisions(store: Store) -> None:
    add_outcomes(store, [(False, 0.9)] * 10, strategy="history")  # not the model's calls
    add_outcomes(store, [(True, 0.8)] * 3 + [(False, 0.3)] * 1 + [(False, 0.7)] * 1, strategy="neural")
    acc, brier = metrics.neural_accuracy(store._conn, 0, 5)
    assert acc.samples == 5 and abs(acc.value - 4 / 5) < 1e-9
    expected_brier = (3 * 0.2**2 + 0.3**2 + 0.7**2) / 5
    assert abs(brier.value - expected_brier) < 1e-9


def test_p95_and_window(store: Store) -> None:
    add_decisions(store, [float(i) for i in range(1, 101)])
    add_decisions(store, [10_000.0] * 50, at=time.time() - 10_000)  # outside the 900 s window
    figs = alerts.live_figures(store, cfg())
    assert abs(figs["coordinate_p95_ms"].value - 95.05) < 1e-6 and figs["coordinate_p95_ms"].samples == 100
    assert abs(figs["coordinate_p50_ms"].value - 50.5) < 1e-6


def test_efficiency_is_time_share_of_successful_attempts(store: Store) -> None:
    add_outcomes(store, [(True, 0.5)] * 6, duration_s=10.0)
    add_outcomes(store, [(False, 0.5)] * 2, duration_s=20.0)
    eff = alerts.live_figures(store, cfg())["efficiency"]
    assert abs(eff.value - 60 / 100) < 1e-9 and eff.samples == 8


def test_alert_raises_once_stores_and_clears_with_hysteresis(store: Store) -> None:
    config = cfg()
    add_outcomes(store, [(False, 0.9)] * 5 + [(True, 0.9)] * 5)  # 5 / 9 = 0.56 < 0.95
    _, events = alerts.check(store, config)
    assert [e["event"] for e in events] == ["raised"] and events[0]["name"] == "coordination_accuracy"
    assert alerts.check(store, config)[1] == []  # still breached: no second row
    # Back just above the threshold but inside the hysteresis band: stays raised.
    add_outcomes(store, [(True, 0.5)] * 80)  # realised 85 / expected 49 -> well above; check the band below
    fig = metrics.Figure(0.96, 100)
    figures = {**alerts.live_figures(store, config), "coordination_accuracy": fig}
    assert alerts.check(store, config, figures=figures)[1] == []
    figures["coordination_accuracy"] = metrics.Figure(0.99, 100)
    _, events = alerts.check(store, config, figures=figures)
    assert [e["event"] for e in events] == ["cleared"]
    with store.reading() as conn:
        rows = conn.execute("SELECT name, cleared_at, value, threshold FROM alerts").fetchall()
    assert len(rows) == 1 and rows[0]["cleared_at"] is not None and rows[0]["threshold"] == 0.95


def test_latency_alert_above_threshold(store: Store) -> None:
    add_decisions(store, [900.0] * 10)
    _, events = alerts.check(store, cfg())
    assert {e["name"] for e in events} == {"coordinate_p95"}
    assert "above 500" in events[0]["message"]


def test_ring_keeps_the_newest_1000_points_and_survives_a_restart(settings) -> None:
    store = Store(settings.db_path)
    app = Runtime(settings=settings, store=store)
    c = Collector(app, DashboardConfig())
    for i in range(1005):
        c.persist(1000.0 + i, {"x.series": float(i)})
    store.close()
    store = Store(settings.db_path)  # a restart: a new connection over the same file
    h = Collector(Runtime(settings=settings, store=store), DashboardConfig()).history()
    assert len(h["x.series"]) == 1000 and h["x.series"][0] == [1005.0, 5.0] and h["x.series"][-1][1] == 1004.0
    store.close()


def test_collect_snapshot_has_every_chart_source(settings, store: Store) -> None:
    add_outcomes(store, [(True, 0.9)] * 10, duration_s=1.0)
    add_decisions(store, [5.0] * 10)
    add_benchmark(store)
    app = Runtime(settings=settings, store=store)
    c = Collector(app, cfg(interval_s=1))
    t = time.time()
    c.collect(now=t - 1)
    with store.transaction() as conn:
        conn.execute("UPDATE tasks SET claim_seq = claim_seq + 1 WHERE id IN ('t1', 't2')")  # two claims
    snap = c.collect(now=t)
    assert snap["tasks"]["succeeded"] == 10
    assert abs(snap["rates"]["claims_per_min"] - 120.0) < 1e-6  # 2 claims in 1 s
    assert snap["points"]["latency.p95_ms"] == 5.0
    assert [v["label"] for v in snap["benchmark"]["value_ratios"]] == ["round-robin", "history", "neural"]
    assert snap["benchmark"]["value_ratios"][2]["ci"] == [0.91, 0.95]
    assert snap["memory"]["fraction"] is not None and snap["memory"]["source"]
    assert snap["semantic"] is None  # no semantic layer in this process: the page says so


def test_trend_directions() -> None:
    now = 10_000.0
    hist = {
        "up": [[now - 600 + 60 * i, float(i)] for i in range(10)],
        "down": [[now - 600 + 60 * i, 10.0 - i] for i in range(10)],
        "flat": [[now - 600 + 60 * i, 5.0] for i in range(10)],
        "few": [[now - 10, 1.0]],
    }
    t = trends(hist, now, 900)
    assert t["up"]["direction"] == "rising" and abs(t["up"]["slope_per_min"] - 1.0) < 1e-9
    assert t["down"]["direction"] == "falling"
    assert t["flat"]["direction"] == "flat"
    assert t["few"]["direction"] == "no data"


def test_settings_come_from_the_environment(monkeypatch) -> None:
    monkeypatch.setenv("ANSF_DASHBOARD_INTERVAL_S", "7")
    monkeypatch.setenv("ANSF_ALERT_P95_MS", "250")
    c = DashboardConfig.load()
    assert c.interval_s == 7 and c.coordinate_p95_max_ms == 250 and c.coordination_accuracy_min == 0.95


def test_benchmark_value_ratios_are_found_in_the_suites_formats(store: Store) -> None:
    import json

    # As the phases suite writes it: each row has its phase and the strategy it used (two phases share one).
    phases = {"suite": "phases", "results": {"phases": {"matrix": {
        "0.5": {"phase": "3 optimal", "strategy": ["neural"],
                "quality": {"value_ratio": 0.91, "ci95": 0.02, "episodes": 300}},
        "0.9": {"phase": "2 enhanced", "strategy": ["neural"],
                "quality": {"value_ratio": 0.9, "ci95": 0.03, "episodes": 300}},
        "0.995": {"phase": "1 critical", "strategy": ["history"],
                  "quality": {"value_ratio": None, "why": "no simulator"}},
    }}}}
    with store.transaction() as conn:
        conn.execute("INSERT INTO benchmark_runs (suite, created_at, report) VALUES ('phases', 1, ?)",
                     (json.dumps(phases),))
        conn.execute("INSERT INTO benchmark_runs (suite, created_at, report) VALUES ('mcp', 2, ?)", ('{"p50": 1}',))
    b = metrics.latest_benchmark(store._conn)
    assert b["suite"] == "phases" and b["value_ratios"] == [
        {"label": "3 optimal (neural)", "mean": 0.91, "ci": [0.89, 0.93]},
        {"label": "2 enhanced (neural)", "mean": 0.9, "ci": [0.87, 0.93]},
    ]
    with store.transaction() as conn:
        conn.execute("INSERT INTO benchmark_runs (suite, created_at, report) VALUES ('coordination', 3, ?)",
                     (json.dumps({"methods": {"history": {"value_ratio": 0.8}, "neural": {"value_ratio": 0.9}}}),))
    b = metrics.latest_benchmark(store._conn)
    assert [(e["label"], e["mean"]) for e in b["value_ratios"]] == [("history", 0.8), ("neural", 0.9)]


def test_every_dashboard_setting_is_documented() -> None:
    from pathlib import Path

    from ansf_mcp.dashboard.config import ENV_VARS

    doc = (Path(__file__).resolve().parents[2] / "docs" / "DASHBOARD.md").read_text()
    assert [env for env in ENV_VARS if env not in doc] == []


def test_semantic_health_points_when_the_layer_runs_in_process(settings, store: Store) -> None:
    app = Runtime(settings=settings, store=store)
    app.status_providers["semantic"] = lambda: {
        "cache": {"hits": 3, "misses": 1, "hit_ratio": 0.75, "entries": 4, "bytes_on_disk": 4096,
                  "budget_bytes": 25 * 2**20},
        "servers": [{"language": "python", "server": "jedi-language-server", "alive": True, "rss_bytes": 50_000_000,
                     "restarts": 0, "requests": 12}],
        "unavailable": {"go": "gopls not on PATH"},
    }
    snap = Collector(app, cfg()).collect()
    assert snap["points"]["semantic.cache_hit_ratio"] == 0.75 and snap["points"]["semantic.servers_alive"] == 1
    assert snap["semantic"]["unavailable"] == {"go": "gopls not on PATH"}
    app.status_providers["semantic"] = lambda: 1 / 0
    snap = Collector(app, cfg()).collect()
    assert "ZeroDivisionError" in snap["semantic"]["error"] and "semantic.cache_hit_ratio" not in snap["points"]
