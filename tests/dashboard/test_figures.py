"""The figures, alerts, ring and trends, computed over rows written into a real store."""

from __future__ import annotations

import math
import time

import pytest

from ansf_mcp.bench import suites
from ansf_mcp.dashboard import alerts, auto_scores, benchmarks, figure, quality
from ansf_mcp.dashboard.collector import Collector, trends
from ansf_mcp.dashboard.config import DashboardConfig
from ansf_mcp.runtime import Runtime
from ansf_mcp.store.db import Store, open_store
from tests.dashboard.conftest import add_benchmark, add_decisions, add_outcomes, keep_report


@pytest.fixture
def settings(settings, store_spec):
    """This module runs on both engines: the store is this test's SQLite file or a fresh PostgreSQL database."""
    return settings.model_copy(update={"store": str(store_spec)})


def read(store: Store, figure, *args, **kwargs):
    """A figure computed on one of the store's reading connections (either engine)."""
    with store.reading() as conn:
        return figure(conn, *args, **kwargs)


def cfg(**kw) -> DashboardConfig:
    return DashboardConfig(**{"min_samples": 5, **kw})


def test_calibration_per_strategy_on_outcomes_with_a_probability(store: Store) -> None:
    add_outcomes(store, [(True, 0.8)] * 6 + [(False, 0.8)] * 4 + [(True, None)] * 5, strategy="history")
    add_outcomes(store, [(True, 0.95)] * 3 + [(False, 0.15)] * 3, strategy="similarity")
    # A non-probabilistic strategy's rows never count, even where an old version stored a hand-set p_success.
    add_outcomes(store, [(True, 0.9)] * 7, strategy="tags")
    with store.reading() as conn:
        table = quality.calibration(conn, 0, 5)
    h = table["strategies"]["history"]
    assert h["outcomes"] == 10  # outcomes without an estimate (reporter was not the assignee) do not count
    assert abs(h["brier"] - (6 * 0.2**2 + 4 * 0.8**2) / 10) < 1e-9
    assert abs(h["log_loss"] - (6 * -math.log(0.8) + 4 * -math.log(0.2)) / 10) < 1e-9
    assert h["success_calls"] == 10 and h["came_true"] == 0.6
    assert abs(h["mean_predicted"] - 0.8) < 1e-9 and h["observed_rate"] == 0.6
    assert [(b["lo"], b["n"], b["observed_rate"]) for b in h["bins"]] == [(0.8, 10, 0.6)]
    sim = table["strategies"]["similarity"]
    assert sim["outcomes"] == 6 and [(b["lo"], b["n"], b["observed_rate"]) for b in sim["bins"]] == [
        (0.1, 3, 0.0), (0.9, 3, 1.0)]
    assert "tags" not in table["strategies"] and table["counted"] == 16 and table["not_counted"] == 12
    assert table["strategies"]["neural"]["outcomes"] == 0 and table["strategies"]["neural"]["brier"] is None


def test_calibration_never_reads_above_one_where_the_old_accuracy_did(store: Store) -> None:
    # Successes from modest estimates: the old "accuracy" (successes / sum p) read 10 / 6 = 1.67 here.
    add_outcomes(store, [(True, 0.6)] * 10, strategy="history")
    with store.reading() as conn:
        h = quality.calibration(conn, 0, 5)["strategies"]["history"]
    for key in ("brier", "came_true", "mean_predicted", "observed_rate"):
        assert 0.0 <= h[key] <= 1.0, key
    assert all(0.0 <= b[k] <= 1.0 for b in h["bins"] for k in ("lo", "hi", "mean_predicted", "observed_rate"))
    assert abs(h["brier"] - 0.16) < 1e-9


def test_reliability_bins_are_equal_width_and_close_the_last() -> None:
    bins = quality.reliability([(0.0, False), (0.05, True), (0.1, True), (0.99, True), (1.0, False)])
    assert [(b["lo"], b["hi"], b["n"]) for b in bins] == [(0.0, 0.1, 2), (0.1, 0.2, 1), (0.9, 1.0, 2)]
    assert bins[0]["observed_rate"] == 0.5 and abs(bins[2]["mean_predicted"] - 0.995) < 1e-9


def test_too_few_outcomes_say_no_data(store: Store) -> None:
    add_outcomes(store, [(True, 0.9)] * 3)
    figs = alerts.live_figures(store, cfg())
    assert figs["calibration_brier"].value is None and "history 3" in figs["calibration_brier"].note
    assert figs["neural_accuracy"].value is None and "0 success call(s)" in figs["neural_accuracy"].note
    assert figs["coordinate_p95_ms"].value is None and figs["efficiency"].value is None


def test_calibration_alert_figure_is_the_worst_strategy_with_enough_outcomes(store: Store) -> None:
    add_outcomes(store, [(True, 0.9)] * 10, strategy="similarity")  # Brier 0.01
    add_outcomes(store, [(False, 0.7)] * 10, strategy="history")  # Brier 0.49
    add_outcomes(store, [(False, 1.0)] * 4, strategy="neural")  # worse, but too few to alert on
    fig = alerts.live_figures(store, cfg(calibration_min_samples=10))["calibration_brier"]
    assert fig.strategy == "history" and abs(fig.value - 0.49) < 1e-9 and fig.samples == 10
    assert "similarity 0.010" in fig.note


def test_neural_alert_figure_is_the_share_of_its_success_calls_that_came_true(store: Store) -> None:
    add_outcomes(store, [(False, 0.9)] * 10, strategy="history")  # not the model's calls
    add_outcomes(store, [(True, 0.8)] * 4 + [(False, 0.3)] * 1 + [(False, 0.7)] * 1 + [(True, 0.4)] * 2,
                 strategy="neural")
    figs = alerts.measure(store, cfg())
    acc = figs.figures["neural_accuracy"]
    assert acc.samples == 5 and abs(acc.value - 4 / 5) < 1e-9 and "4 of 5 success calls" in acc.note
    neural = figs.calibration["strategies"]["neural"]
    assert neural["came_true"] == acc.value  # the card reads the table's cell: one computation
    expected_brier = (4 * 0.2**2 + 0.3**2 + 0.7**2 + 2 * 0.6**2) / 8
    assert abs(neural["brier"] - expected_brier) < 1e-9


def test_a_healthy_run_raises_no_alert(store: Store) -> None:
    """The issue's run: all 14 tasks the network assigned succeeded, some from a p under 0.5; and an ordinary
    20 % failure rate, failed attempts taking twice as long, from a network that calls every task a success."""
    config = DashboardConfig()  # the shipped thresholds and sample counts
    add_outcomes(store, [(True, 0.45)] * 6 + [(True, 0.7)] * 8, strategy="neural", duration_s=10.0)
    assert alerts.check(store, config)[1] == []
    add_outcomes(store, [(True, 0.6)] * 48, strategy="neural", duration_s=10.0)
    add_outcomes(store, [(False, 0.6)] * 12, strategy="neural", duration_s=20.0)
    figures, events = alerts.check(store, config)
    assert events == [] and alerts.open_alerts(store) == []
    assert abs(figures["efficiency"].value - 620 / 860) < 1e-9  # (14 + 48) × 10 s of (62 × 10 + 12 × 20) s
    assert abs(figures["neural_accuracy"].value - 56 / 68) < 1e-9


def test_a_truly_bad_run_raises_the_neural_and_efficiency_alerts(store: Store) -> None:
    # Half of what the network called a success failed, and failures took three times as long.
    add_outcomes(store, [(True, 0.9)] * 10, strategy="neural", duration_s=10.0)
    add_outcomes(store, [(False, 0.9)] * 10, strategy="neural", duration_s=30.0)
    _, events = alerts.check(store, DashboardConfig())
    assert {e["name"] for e in events if e["event"] == "raised"} == {"neural_accuracy", "system_efficiency"}
    text = {e["name"]: e["message"] for e in events}
    assert "0.500 is below 0.700" in text["neural_accuracy"] and "0.250 is below 0.600" in text["system_efficiency"]


def test_too_few_success_calls_say_no_data(store: Store) -> None:
    add_outcomes(store, [(False, 0.9)] * 9 + [(True, 0.2)] * 20, strategy="neural")
    acc = alerts.live_figures(store, DashboardConfig())["neural_accuracy"]
    assert acc.value is None and acc.samples == 9 and "10 needed" in acc.note


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
    config = cfg(calibration_min_samples=10)
    add_outcomes(store, [(False, 0.9)] * 5 + [(True, 0.9)] * 5)  # Brier (5 * 0.81 + 5 * 0.01) / 10 = 0.41 > 0.25
    _, events = alerts.check(store, config)
    assert [e["event"] for e in events] == ["raised"] and events[0]["name"] == "calibration"
    assert "Brier score of history 0.410 is above 0.250" in events[0]["message"]
    assert alerts.check(store, config)[1] == []  # still breached: no second row
    # Back just under the threshold but inside the hysteresis band (0.25 * 0.97 = 0.2425): stays raised.
    figures = {**alerts.live_figures(store, config), "calibration_brier": figure.Figure(0.245, 100)}
    assert alerts.check(store, config, figures=figures)[1] == []
    figures["calibration_brier"] = figure.Figure(0.2, 100)
    _, events = alerts.check(store, config, figures=figures)
    assert [e["event"] for e in events] == ["cleared"]
    with store.reading() as conn:
        rows = conn.execute("SELECT name, cleared_at, value, threshold FROM alerts").fetchall()
    assert len(rows) == 1 and rows[0]["cleared_at"] is not None and rows[0]["threshold"] == 0.25


def test_an_alert_of_a_retired_rule_is_cleared(store: Store) -> None:
    with store.transaction() as conn:  # left open by a version that still had coordination accuracy
        conn.execute("INSERT INTO alerts (name, severity, message, value, threshold, raised_at) "
                     "VALUES ('coordination_accuracy', 'critical', 'old', 0.5, 0.95, 1)")
    _, events = alerts.check(store, cfg())
    assert [(e["event"], e["name"]) for e in events] == [("cleared", "coordination_accuracy")]
    assert alerts.open_alerts(store) == []


def test_latency_alert_above_threshold(store: Store) -> None:
    add_decisions(store, [900.0] * 20)
    _, events = alerts.check(store, cfg())
    assert {e["name"] for e in events} == {"coordinate_p95"}
    assert "above 500" in events[0]["message"]


def test_ring_keeps_the_newest_1000_points_and_survives_a_restart(settings) -> None:
    store = open_store(settings.store_spec)
    app = Runtime(settings=settings, store=store)
    c = Collector(app, DashboardConfig())
    for i in range(1005):
        c.persist(1000.0 + i, {"x.series": float(i)})
    store.close()
    store = open_store(settings.store_spec)  # a restart: a new connection over the same file
    h = Collector(Runtime(settings=settings, store=store), DashboardConfig()).history()
    assert len(h["x.series"]) == 1000 and h["x.series"][0] == [1005.0, 5.0] and h["x.series"][-1][1] == 1004.0
    store.close()


def test_collect_snapshot_has_every_chart_source(settings, store: Store) -> None:
    add_outcomes(store, [(True, 0.9)] * 10, duration_s=1.0)
    add_decisions(store, [5.0] * 20)
    add_benchmark(store)
    app = Runtime(settings=settings, store=store)
    c = Collector(app, cfg(interval_s=1))
    t = time.time()
    c.collect(now=t - 1)
    with store.transaction() as conn:
        conn.execute("UPDATE tasks SET claim_seq = claim_seq + 1 WHERE id IN ('t1', 't2')")  # two claims
    snap = c.collect(now=t).as_json()  # as /api/snapshot and the page's WebSocket send it
    assert snap["tasks"]["succeeded"] == 10
    assert abs(snap["rates"]["claims_per_min"] - 120.0) < 1e-6  # 2 claims in 1 s
    assert snap["points"]["latency.p95_ms"] == 5.0
    assert [v["label"] for v in snap["benchmark"]["value_ratios"]] == ["round-robin", "history", "neural"]
    assert snap["benchmark"]["value_ratios"][2]["ci"] == [0.91, 0.95]
    assert snap["memory"]["fraction"] is not None and snap["memory"]["source"]
    assert snap["semantic"] is None  # no semantic layer in this process: the page says so


def test_each_neural_figure_comes_from_one_computation_and_says_what_it_is_measured_on(settings, store: Store) -> None:
    """The page's two neural tables score different sets, so they may differ; each says which, and the neural card
    is the calibration table's own cell, not a second computation."""
    from tests.dashboard.conftest import seed_swarm

    add_outcomes(store, [(True, 0.9)] * 10, strategy="neural")  # the p that decided: Brier 0.01 in the window
    swarm_id = seed_swarm(store)
    with store.transaction() as conn:  # the board's running score: every estimator's p since the swarm began
        conn.execute("INSERT INTO estimator_scores (swarm_id, estimator, n, log_loss_sum, brier_sum) "
                     "VALUES (?, 'neural', 40, 20.0, 8.0)", (swarm_id,))
    add_benchmark(store)
    snap = Collector(Runtime(settings=settings, store=store), cfg(interval_s=1)).collect().as_json()
    cal = snap["calibration"]
    neural_row = cal["strategies"]["neural"]
    [swarm] = snap["estimators"]["swarms"]
    [neural_score] = [sc for sc in swarm["scores"] if sc["estimator"] == "neural"]
    assert abs(neural_row["brier"] - 0.01) < 1e-9 and abs(neural_score["brier"] - 0.2) < 1e-9
    assert cal["measured_on"].startswith("REAL reported outcomes of the last 900 s")
    # The label says what is measured: the one success model's p on each strategy's assignments (D2 of the QA pass:
    # "that strategy's own p" read as if the history row were the history estimator's score, 0.151 against 0.25).
    assert "that assigned its task" in cal["measured_on"] and "shared success model" in cal["measured_on"]
    assert "own p" not in cal["measured_on"]
    assert snap["estimators"]["measured_on"].startswith("REAL reported outcomes of each swarm since it began")
    assert "whichever strategy decided" in snap["estimators"]["measured_on"]
    assert snap["estimators"]["prior"]["measured_on"].startswith("SIMULATED")
    assert snap["benchmark"]["measured_on"].startswith("SIMULATED episodes of the latest benchmark run #")
    card = snap["figures"]["neural_accuracy"]
    assert card["value"] == neural_row["came_true"] == 1.0 and card["samples"] == neural_row["success_calls"] == 10


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
    assert c.interval_s == 7 and c.coordinate_p95_max_ms == 250 and c.calibration_brier_max == 0.25


def test_a_retired_setting_is_named_in_a_warning(monkeypatch, caplog) -> None:
    monkeypatch.setenv("ANSF_ALERT_COORDINATION_ACCURACY", "0.9")
    monkeypatch.setenv("ANSF_ALERT_CALIBRATION_BRIER", "0.2")
    with caplog.at_level("WARNING"):
        c = DashboardConfig.load()
    assert c.calibration_brier_max == 0.2
    assert "ANSF_ALERT_COORDINATION_ACCURACY is set but no longer read" in caplog.text


def test_the_suites_value_ratios_reach_the_dashboard_through_the_typed_report(store: Store) -> None:
    # As the phases suite writes it: each row has its phase and the strategy it used (two phases share one).
    phases = {"matrix": {
        "0.5": {"phase": "3 optimal", "strategy": ["neural"],
                "quality": {"value_ratio": 0.91, "ci95": 0.02, "episodes": 300}},
        "0.9": {"phase": "2 enhanced", "strategy": ["neural"],
                "quality": {"value_ratio": 0.9, "ci95": 0.03, "episodes": 300}},
        "0.995": {"phase": "1 critical", "strategy": ["history"],
                  "quality": {"value_ratio": None, "why": "no simulator"}},
    }}
    keep_report(store, "phases", {"phases": phases}, suites.BY_NAME["phases"].value_ratios(phases))
    with store.transaction() as conn:  # a row that is not a typed report is passed over, not guessed at
        conn.execute("INSERT INTO benchmark_runs (suite, created_at, report) VALUES ('mcp', 2, ?)", ('{"p50": 1}',))
    b = read(store, benchmarks.latest_benchmark)
    assert b["suite"] == "phases" and [e["label"] for e in b["value_ratios"]] == [
        "3 optimal (neural)", "2 enhanced (neural)"]
    assert b["value_ratios"][0]["ci"] == pytest.approx([0.89, 0.93])
    assert b["value_ratios"][1]["mean"] == 0.9
    # As the lab's coordination bench writes it: per method, per split, a mean and a CI half-width.
    coordination = {"quality": {"history": {"heldout": {"mean": 0.8, "ci95": 0.01}},
                                "neural": {"heldout": {"mean": 0.9, "ci95": float("nan")}}}}
    keep_report(store, "coordination", {"coordination": coordination},
                suites.BY_NAME["coordination"].value_ratios(coordination))
    b = read(store, benchmarks.latest_benchmark)
    assert [(e["label"], e["mean"], e.get("ci")) for e in b["value_ratios"]] == [
        ("history · heldout", 0.8, pytest.approx([0.79, 0.81])), ("neural · heldout", 0.9, None)]


def test_every_dashboard_setting_is_documented() -> None:
    from pathlib import Path

    from ansf_mcp.dashboard.config import ENV_VARS, RETIRED_ENV_VARS

    root = Path(__file__).resolve().parents[2]
    for doc in (root / "docs" / "DASHBOARD.md", root / "README.md"):
        text = doc.read_text()
        assert [env for env in ENV_VARS if f"`{env}`" not in text] == [], doc.name
        assert [env for env in RETIRED_ENV_VARS if f"`{env}`" in text and "no longer read" not in text] == [], doc.name


def test_both_prior_columns_are_on_the_yardstick_auto_blends(settings, store: Store, monkeypatch, tmp_path) -> None:
    """QA D3: once a swarm's record is recalibrated, the prior log-loss beside it is the recalibrated one; the prior
    Brier in the same row was the raw one (0.238 beside 0.659). Both now follow the same yardstick, and say it."""
    import json

    import anyio

    from ansf_mcp.coordinator import scoring
    from tests.dashboard.conftest import seed_through_tools

    prior = {"data": "SIMULATED held-out episodes", "estimators": {
        name: {"log_loss": 0.70 + k / 100, "brier": 0.25 + k / 100,
               "recalibrated_log_loss": 0.60 + k / 100, "recalibrated_brier": 0.20 + k / 100}
        for k, name in enumerate(("neural", "similarity", "history"))}}
    (tmp_path / "prior.json").write_text(json.dumps(prior))
    monkeypatch.setattr(scoring, "PRIOR_FILE", tmp_path / "prior.json")
    scoring.prior.cache_clear()
    try:
        # 18 outcomes, successes and failures: at least RECALIBRATE_MIN kept, so every candidate's is recalibrated.
        anyio.run(seed_through_tools, settings, ["history", "similarity", "history"])
        (swarm,) = read(store, auto_scores.estimator_scores, neural_allowed=True)["swarms"]
        assert swarm["prior_yardstick"] == "recalibrated"
        rows = {s["estimator"]: s for s in swarm["scores"] if s["estimator"] in prior["estimators"]}
        for name, row in rows.items():
            assert row["prior_log_loss"] == prior["estimators"][name]["recalibrated_log_loss"], row
            assert row["prior_brier"] == prior["estimators"][name]["recalibrated_brier"], row
    finally:
        scoring.prior.cache_clear()


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
    assert snap.points["semantic.cache_hit_ratio"] == 0.75 and snap.points["semantic.servers_alive"] == 1
    assert snap.semantic is not None and snap.semantic["unavailable"] == {"go": "gopls not on PATH"}
    app.status_providers["semantic"] = lambda: 1 / 0
    snap = Collector(app, cfg()).collect()
    assert snap.semantic is not None and "ZeroDivisionError" in snap.semantic["error"]
    assert "semantic.cache_hit_ratio" not in snap.points


def test_the_probabilistic_strategies_are_the_registry_s() -> None:
    from ansf_mcp.coordinator.baselines import PROBABILISTIC

    assert set(quality.PROBABILISTIC) == {"neural", *PROBABILISTIC}


def test_replay_results_are_real_and_nan_free(store: Store) -> None:
    import json

    cell = {"episodes": 1, "tasks": 16, "random": {"mean": 0.41, "ci95": float("nan")},
            "similarity": {"mean": 0.62, "ci95": float("nan"), "vs_similarity": 0.0},
            "history": {"mean": 0.59, "ci95": float("nan")}, "per_episode": {"history": [0.59]}}
    report = {"suite": "replay", "results": {"replay": {
        "repo": "demo", "head": "abc123", "commits": 140, "authors": 3,
        "results": {"none": {"16": cell, "32": {"episodes": 0, "tasks": 0}}}}}}
    keep_report(store, "replay", report["results"])
    keep_report(store, "all", {"replay": {"error": "ReplayError: not a git repository"}})
    r = read(store, benchmarks.latest_replay)
    assert r["data"] == "real" and r["repo"] == "demo" and len(r["cells"]) == 1  # the failed run is skipped
    assert r["cells"][0]["methods"] == {"similarity": {"mean": 0.62, "ci95": None}, "history": {"mean": 0.59, "ci95": None}}
    assert r["cells"][0]["random"] == {"mean": 0.41, "ci95": None}
    json.dumps(r, allow_nan=False)  # a browser's JSON.parse refuses NaN
    assert read(store, benchmarks.latest_benchmark) is None  # top-1 accuracies are not value ratios


def test_benchmark_value_ratios_say_simulated(store: Store) -> None:
    add_benchmark(store)
    assert read(store, benchmarks.latest_benchmark)["data"] == "simulated"


def test_estimator_scores_per_swarm_what_auto_uses_and_the_prior(settings, store: Store, monkeypatch, tmp_path) -> None:
    import json

    import anyio

    from ansf_mcp.coordinator import scoring
    from tests.dashboard.conftest import seed_through_tools

    # No prior while seeding too, so swarm_status (at seeding) and the dashboard judge alike.
    monkeypatch.setattr(scoring, "PRIOR_FILE", tmp_path / "absent.json")
    scoring.prior.cache_clear()
    try:
        seeded = anyio.run(seed_through_tools, settings, ["history", "similarity"])
        est = read(store, auto_scores.estimator_scores, neural_allowed=True)
        assert not est["prior"]["present"] and "no held-out prior" in est["prior"]["note"]
        (swarm,) = est["swarms"]
        assert swarm["swarm_id"] == seeded["swarm_id"] and est["swarms_with_outcomes"] == 1
        board_view = {s["estimator"]: s for s in seeded["estimators"]}  # what swarm_status answered
        for s in swarm["scores"]:
            assert s["outcomes"] == board_view[s["estimator"]]["outcomes"] == (0 if s["estimator"] == "neural" else 12)
            assert s["brier"] == board_view[s["estimator"]]["brier"] and s["prior_brier"] is None
        assert swarm["auto"]["estimator"] == seeded["auto_uses"].split(" ")[0]

        # A held-out prior that trusts the network: auto would use it, except in a phase that disables it.
        prior = {"data": "SIMULATED held-out episodes", "estimators": {
            "neural": {"log_loss": 0.1, "brier": 0.03}, "similarity": {"log_loss": 0.7, "brier": 0.25},
            "history": {"log_loss": 0.69, "brier": 0.24}}}
        (tmp_path / "prior.json").write_text(json.dumps(prior))
        monkeypatch.setattr(scoring, "PRIOR_FILE", tmp_path / "prior.json")
        scoring.prior.cache_clear()
        est = read(store, auto_scores.estimator_scores, neural_allowed=True)
        assert est["prior"]["present"] and est["prior"]["data"] == "SIMULATED held-out episodes"
        assert est["swarms"][0]["auto"] == {"estimator": "neural", "reason": est["swarms"][0]["auto"]["reason"]}
        # the reported p_success is scored on the swarm's outcomes but has no prior: it is never a candidate
        assert {s["estimator"]: s["prior_brier"] for s in est["swarms"][0]["scores"]} == {
            "neural": 0.03, "similarity": 0.25, "history": 0.24, "p_success": None}
        assert est["swarms"][0]["prior_yardstick"] == "raw"  # 12 outcomes: too few to recalibrate
        held = read(store, auto_scores.estimator_scores, neural_allowed=False)["swarms"][0]["auto"]
        assert held["estimator"] == "neural" and held["in_this_phase"] in ("similarity", "history")
        assert "disabled in the current phase" in held["reason"]
    finally:
        scoring.prior.cache_clear()


def test_no_p95_from_fewer_than_twenty_decisions(store: Store) -> None:
    """A p95 of 19 decisions is the slowest one under another name: no figure, and no alert on it."""
    add_decisions(store, [900.0] * 19)
    figs, events = alerts.check(store, cfg())
    assert figs["coordinate_p95_ms"].value is None and "a p95 needs 20" in figs["coordinate_p95_ms"].note
    assert figs["coordinate_p50_ms"].value == 900.0
    assert events == []
