"""The dashboard in a real browser: Debian's headless Chromium driven by Playwright (executable_path).

One dashboard process and one browser serve the module; tests run in file order (load → calibration, estimator
scores, benchmark labels → breach → hidden tab → server restart). The store is seeded through the MCP tools. Timings measured here are written to test-artifacts/dashboard-timings.json.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from pathlib import Path

import anyio
import httpx
import pytest

from ansf_mcp.settings import Settings
from ansf_mcp.store.db import open_store
from tests.conftest import need
from tests.dashboard.conftest import (
    DashboardProcess,
    add_benchmark,
    add_decisions,
    add_outcomes,
    add_replay,
    next_snapshots,
    seed_through_tools,
)

pytestmark = pytest.mark.slow

CHROMIUM = os.environ.get("ANSF_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
TIMINGS: dict[str, object] = {}


def _have_playwright() -> bool:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return False
    return True


STRATEGIES = ["history", "history", "similarity", "history", "similarity"]  # never neural: no model needed


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    need(_have_playwright(), "playwright (pip)")
    need(Path(CHROMIUM).exists() or shutil.which("chromium") is not None, "chromium (apt)")
    from playwright.sync_api import sync_playwright

    root = tmp_path_factory.mktemp("dash")
    data_dir = root / "data"
    data_dir.mkdir()
    # Activity before the page opens, so that every chart has something real to draw: a team worked through the
    # board by the MCP tools (coordinate with history and similarity, claim, report), coordinate latencies, a
    # simulated coordination benchmark and a replay of real history.
    seeded = anyio.run(seed_through_tools, Settings.load(data_dir=data_dir, project_root=root), STRATEGIES)
    store = open_store(data_dir / "ansf.sqlite3")
    add_decisions(store, [3.0, 4.0, 5.5, 7.0, 12.0] * 4)
    add_benchmark(store)
    add_replay(store)
    proc = DashboardProcess(data_dir, root)
    base = proc.start()  # collection every 1 s; the alert check at its 2 s default
    pw = sync_playwright().start()
    browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
    page = browser.new_page(viewport={"width": 1400, "height": 2200})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        yield {"base": base, "page": page, "store": store, "proc": proc, "errors": errors, "seeded": seeded}
    finally:
        ARTIFACTS.mkdir(exist_ok=True)
        (ARTIFACTS / "dashboard-timings.json").write_text(json.dumps(TIMINGS, indent=2))
        browser.close()
        pw.stop()
        proc.stop()
        store.close()


def state(page, expr: str):
    return page.evaluate(f"() => window.__ansf && ({expr})")


def table(page, selector: str) -> list[list[str]]:
    return page.evaluate(
        f"() => Array.from(document.querySelectorAll('{selector} tbody tr'))"
        ".map(tr => Array.from(tr.children).map(td => td.textContent))"
    )


def expected_calibration(pairs: list[tuple[str, float, bool]]) -> dict[str, dict]:
    """From the tools' own answers (p_success per assignment, the outcome the agent reported), by definition."""
    out: dict[str, dict] = {}
    for strategy in sorted({s for s, _, _ in pairs}):
        rows = [(p, ok) for s, p, ok in pairs if s == strategy]
        n = len(rows)
        bins: dict[int, list[tuple[float, bool]]] = {}
        for p, ok in rows:
            bins.setdefault(min(int(p * 10), 9), []).append((p, ok))
        out[strategy] = {
            "n": n,
            "brier": sum((p - ok) ** 2 for p, ok in rows) / n,
            "log_loss": sum(-math.log(p if ok else 1 - p) for p, ok in rows) / n,
            "success_calls": [ok for p, ok in rows if p > 0.5],
            "mean_p": sum(p for p, _ in rows) / n,
            "observed": sum(ok for _, ok in rows) / n,
            "bins": [(k / 10, len(v), sum(p for p, _ in v) / len(v), sum(ok for _, ok in v) / len(v))
                     for k, v in sorted(bins.items())],
        }
    return out


def close(text: str, value: float, tol: float = 0.0006) -> bool:
    return abs(float(text) - value) <= tol  # the page prints 3 decimals


def test_page_loads_and_charts_update_from_the_websocket(env) -> None:
    page = env["page"]
    page.goto(env["base"] + "/")
    page.wait_for_function("() => document.getElementById('conn').textContent === 'live'", timeout=10_000)
    page.wait_for_function("() => window.__ansf.snapshots >= 1", timeout=10_000)
    before = int(page.get_attribute('.card[data-chart="memory"]', "data-points"))
    page.wait_for_function("() => window.__ansf.snapshots >= 3", timeout=10_000)
    page.wait_for_function(
        f"() => +document.querySelector('.card[data-chart=\"memory\"]').dataset.points > {before}", timeout=5_000
    )
    for chart in ("memory", "latency", "quality", "tasks", "rates", "reliability"):
        assert page.locator(f'.card[data-chart="{chart}"] canvas').count() >= 1, chart
    assert page.locator('.card[data-chart="benchmark"] svg .bench-bar').count() >= 1
    # No process on this store has used the semantic tools: the page says so instead of drawing an empty chart.
    assert page.inner_text('.card[data-chart="semantic"] .nodata') == "no data"
    assert "no server process" in page.inner_text('.card[data-chart="semantic"] .note')
    assert page.inner_text("#fig-neural_accuracy b") == "no data"  # history and similarity only: no neural calls
    assert page.inner_text("#alerts") == "no alerts"
    assert not env["errors"], env["errors"]


def test_calibration_on_real_outcomes_is_drawn_with_the_right_numbers(env) -> None:
    page = env["page"]
    want = expected_calibration(env["seeded"]["pairs"])
    assert set(want) == {"history", "similarity"} and want["history"]["n"] == 18 and want["similarity"]["n"] == 12
    rows = {r[0]: r for r in table(page, "#calibration")}
    assert set(rows) == {"neural", "similarity", "history"}
    # Each table says what it is measured on: the two with neural rows score different sets of real outcomes.
    assert page.inner_text("#calibration-card .measured-on").startswith("Measured on: REAL reported outcomes of the last")
    assert page.inner_text("#estimators-card .measured-on").startswith("Measured on: REAL reported outcomes of each swarm")
    assert "prior columns: SIMULATED" in page.inner_text("#estimators-card .measured-on")
    assert page.inner_text('.card[data-chart="benchmark"] .measured-on').startswith("Measured on: SIMULATED episodes")
    assert rows["neural"][1:] == ["0"] + ["no data"] * 5
    for strategy, w in want.items():
        _, n, brier, log_loss, right, mean_p, observed = rows[strategy]
        assert int(n) == w["n"], strategy
        assert close(brier, w["brier"]) and close(log_loss, w["log_loss"]), rows
        calls = w["success_calls"]
        if len(calls) >= 10:  # ANSF_ALERT_MIN_SAMPLES success calls
            assert close(right, sum(calls) / len(calls)), rows
        else:
            assert right == "no data", rows
        assert close(mean_p, w["mean_p"]) and close(observed, w["observed"]), rows
    # The reliability curve: the table beside it and the data the chart was drawn from.
    bins = table(page, "#reliability")
    for strategy, w in want.items():
        mine = [b for b in bins if b[0] == strategy]
        assert [(b[1], int(b[2])) for b in mine] == [(f"{lo:.1f}–{lo + 0.1:.1f}", n) for lo, n, _, _ in w["bins"]]
        assert all(close(b[3], mp) and close(b[4], ob) for b, (_, _, mp, ob) in zip(mine, w["bins"], strict=True))
    assert page.get_attribute('.card[data-chart="reliability"]', "data-strategies") == "similarity,history"
    drawn = state(page, "window.__ansf.plots.reliability.data")
    labels = state(page, "window.__ansf.plots.reliability.series.map(s => s.label)")
    assert labels[1:] == ["perfect calibration", "similarity (12 outcomes)", "history (18 outcomes)"]
    xs = drawn[0]
    assert drawn[1] == xs  # the diagonal
    for i, strategy in ((2, "similarity"), (3, "history")):
        points = sorted((x, y) for x, y in zip(xs, drawn[i], strict=True) if y is not None)
        assert [(round(x, 9), round(y, 9)) for x, y in points] == sorted(
            (round(mp, 9), round(ob, 9)) for _, _, mp, ob in want[strategy]["bins"]), strategy


def test_scores_per_estimator_and_what_auto_uses(env) -> None:
    page = env["page"]
    seeded = env["seeded"]
    sw = seeded["swarm_id"]
    rows = {r[1].split(" ")[0]: r for r in table(page, "#estimators") if sw in r[0]}
    # the estimators auto chooses among, and the reported p_success (the success model) scored as its own row
    assert set(rows) == {"neural", "similarity", "history", "p_success"}
    for score in seeded["estimators"]:  # the page shows what swarm_status says, estimator by estimator
        r = rows[score["estimator"]]
        assert int(r[2]) == score["outcomes"] == (0 if score["estimator"] == "neural" else 30)
        for col, key in ((3, "log_loss"), (4, "brier"), (7, "blended_log_loss")):
            assert r[col] == "no data" if score[key] is None else close(r[col], score[key]), (r, score)
        recalibrated = score.get("recalibrated_log_loss")  # and the kept outcomes it is computed on (absent: none)
        assert r[8] == "no data" if recalibrated is None else (
            close(r[8].split(" ")[0], recalibrated) and r[8].endswith(f" ({score['kept_outcomes']})")), (r, score)
    uses = seeded["auto_uses"].split(" ")[0]
    assert [k for k, r in rows.items() if "← auto uses" in r[1]] == [uses]
    # The history estimator's score is its own p_success on the outcomes its decisions got back... and more: every
    # assigned pair is scored for every probabilistic estimator, whichever strategy decided.
    snap = httpx.get(env["base"] + "/api/snapshot").json()
    est = next(s for s in snap["estimators"]["swarms"] if s["swarm_id"] == sw)
    assert est["auto"]["estimator"] == uses
    metrics = httpx.get(env["base"] + "/metrics").text
    for score in seeded["estimators"]:
        if score["brier"] is not None:
            line = f'ansf_estimator_brier_score{{estimator="{score["estimator"]}",swarm="{sw}"}}'
            value = float(next(x for x in metrics.splitlines() if x.startswith(line)).split()[-1])
            assert abs(value - score["brier"]) < 1e-4
    assert f'ansf_auto_estimator{{estimator="{uses}",swarm="{sw}"}} 1.0' in metrics
    prior_note = page.inner_text("#estimators-card .note")
    assert "Prior:" in prior_note and ("simulated" in prior_note.lower() or "no held-out prior" in prior_note)


def test_benchmark_card_says_simulated_and_replay_says_real(env) -> None:
    page = env["page"]
    bench = page.locator('.card[data-chart="benchmark"]')
    assert "simulated" in bench.locator("h2").inner_text().lower()
    assert bench.locator(".note").inner_text().startswith("SIMULATED episodes")
    assert "history: 0.880" in bench.locator(".note").inner_text()
    assert "SIMULATED" in bench.locator("svg .bench-caption").text_content()
    replay = page.locator("#replay-card")
    assert "real" in replay.locator("h2").inner_text().lower() and "simulated" not in replay.inner_text().lower()
    assert replay.locator(".note").inner_text().startswith("REAL data")
    rows = {r[0]: r[1:] for r in table(page, "#replay")}
    assert rows["similarity"] == ["0.617 ± 0.040", "0.600 ± 0.040"]
    assert rows["history"] == ["0.590", "0.580"]  # no interval over one episode (NaN in the report)
    assert rows["random expectation"] == ["0.448 ± 0.030", "0.430 ± 0.030"]
    metrics = httpx.get(env["base"] + "/metrics").text
    help_lines = [x for x in metrics.splitlines() if x.startswith("# HELP ansf_benchmark")]
    assert any(x.startswith("# HELP ansf_benchmark_simulated_value_ratio SIMULATED") for x in help_lines)
    assert any(x.startswith("# HELP ansf_benchmark_replay_top1_accuracy REAL") for x in help_lines)
    assert "ansf_benchmark_value_ratio" not in metrics  # the unlabelled name is gone


def no_fraction_above_one(page) -> list[str]:
    """Every figure the page shows as a fraction, read back from the DOM and the drawn charts; returns offenders."""
    bad: list[str] = []

    def check(where: str, text: str) -> None:
        try:
            v = float(text)
        except ValueError:
            return  # "no data", "—"
        if not 0.0 <= v <= 1.0:
            bad.append(f"{where}: {text}")

    for r in table(page, "#calibration"):
        for col in (2, 4, 5, 6):  # Brier, success calls that came true, mean p, observed (log-loss is not a fraction)
            check(f"calibration {r[0]} col {col}", r[col])
    for r in table(page, "#reliability"):
        check(f"reliability {r[0]}", r[3])
        check(f"reliability {r[0]}", r[4])
    for fig in ("calibration_brier", "neural_accuracy", "efficiency"):
        check(fig, page.inner_text(f"#fig-{fig} b"))
    for r in table(page, "#replay"):
        for cell in r[1:]:
            check(f"replay {r[0]}", cell.split(" ")[0])
    for chart in ("quality", "reliability", "benchmark"):
        data = state(page, f"window.__ansf.plots.{chart} && window.__ansf.plots.{chart}.data.slice(1)") or []
        for series in data:
            for v in series:
                if v is not None and not 0.0 <= v <= 1.0:
                    bad.append(f"chart {chart}: {v}")
    return bad


def test_no_fraction_reads_above_one_even_where_the_old_accuracy_did(env) -> None:
    page = env["page"]
    # Successes from modest estimates: realised ÷ Σ p_success, the figure this page used to show, reads 1.67 here.
    add_outcomes(env["store"], [(True, 0.6)] * 10, strategy="similarity", duration_s=1.0)
    page.wait_for_function(
        "() => [...document.querySelectorAll('#calibration tbody tr')]"
        ".some(tr => tr.dataset.strategy === 'similarity' && tr.children[1].textContent === '22')", timeout=10_000)
    assert no_fraction_above_one(page) == []
    assert "coordination accuracy" not in page.inner_text("body").lower()


def _breach_to_page(env, rows, strategy: str, name: str) -> float:
    page = env["page"]
    add_outcomes(env["store"], rows, strategy=strategy)
    committed = time.time()
    page.wait_for_selector(f'#alerts li.alert[data-name="{name}"]', timeout=10_000)
    seen = page.evaluate(
        f"() => Object.values(window.__ansf.alertSeenAt).find(a => a.name === '{name}')"
    )
    return seen["shownAt"] - committed, seen["raisedAt"] - committed


def test_injected_breach_shows_an_alert_on_the_page_within_5_s(env) -> None:
    page = env["page"]
    # 30 failures the estimates called likely successes: history's Brier over its 48 outcomes rises above 0.25.
    shown, raised = _breach_to_page(env, [(False, 0.9)] * 30, "history", "calibration")
    # Neural success calls that failed: 0 of 12 came true < 0.7 (a second, independent measurement).
    shown_n, raised_n = _breach_to_page(env, [(False, 0.95)] * 12, "neural", "neural_accuracy")
    TIMINGS["breach_to_page_s"] = {"calibration": round(shown, 3), "neural_accuracy": round(shown_n, 3)}
    TIMINGS["breach_to_stored_alert_s"] = {"calibration": round(raised, 3), "neural_accuracy": round(raised_n, 3)}
    print(f"\nbreach -> alert on page: {shown:.2f} s, {shown_n:.2f} s (stored after {raised:.2f} s, {raised_n:.2f} s)")
    assert 0 <= shown < 5 and 0 <= shown_n < 5
    alerts_text = page.inner_text("#alerts")
    assert "calibration: Brier score of history" in alerts_text and "is above 0.250" in alerts_text
    assert "breach" in (page.get_attribute("#fig-calibration_brier", "class") or "")
    page.wait_for_function("() => window.__ansf.snapshots >= 5", timeout=10_000)
    page.wait_for_function(
        "() => [...document.querySelectorAll('#calibration tbody tr')]"
        ".some(tr => tr.dataset.strategy === 'neural' && tr.children[1].textContent === '12')", timeout=10_000)
    assert no_fraction_above_one(page) == []
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)
    metrics = httpx.get(env["base"] + "/metrics").text
    assert 'ansf_alert_active{name="calibration"} 1.0' in metrics
    assert 'ansf_calibration_outcomes{strategy="neural"} 12.0' in metrics


def test_updates_pause_while_the_tab_is_hidden(env) -> None:
    page = env["page"]

    def set_hidden(hidden: bool) -> None:
        page.evaluate(
            """(hidden) => {
                Object.defineProperty(document, 'hidden', {configurable: true, get: () => hidden});
                Object.defineProperty(document, 'visibilityState', {configurable: true,
                                      get: () => hidden ? 'hidden' : 'visible'});
                document.dispatchEvent(new Event('visibilitychange'));
            }""",
            hidden,
        )

    set_hidden(True)
    deadline = time.monotonic() + 5
    while httpx.get(env["base"] + "/api/snapshot").json()["clients"]["paused"] != 1:
        assert time.monotonic() < deadline, "the server never heard the page pause"
        time.sleep(0.2)
    received = state(page, "window.__ansf.received")
    next_snapshots(env["base"], 2)  # two collections go by, seen by a page that is not paused
    assert state(page, "window.__ansf.received") == received
    assert page.inner_text("#conn").startswith("paused")
    set_hidden(False)
    page.wait_for_function(f"() => window.__ansf.received > {received}", timeout=5_000)
    assert page.inner_text("#conn") == "live"


def test_reconnects_by_itself_after_a_server_restart_and_keeps_history(env) -> None:
    page = env["page"]
    proc: DashboardProcess = env["proc"]
    points = int(page.get_attribute('.card[data-chart="memory"]', "data-points"))
    proc.stop()
    page.wait_for_function("() => document.getElementById('conn').textContent === 'reconnecting'", timeout=5_000)
    proc.start()  # same port, same store
    page.wait_for_function("() => window.__ansf.connects >= 2", timeout=20_000)
    page.wait_for_function("() => document.getElementById('conn').textContent === 'live'", timeout=5_000)
    # The ring is persisted: after the restart the page's history starts from the points kept before it.
    after = int(page.get_attribute('.card[data-chart="memory"]', "data-points"))
    assert after >= points
    assert page.locator('#alerts li.alert[data-name="calibration"]').count() == 1
    assert not env["errors"], env["errors"]


def test_a_page_opened_with_the_token_keeps_it_out_of_its_html_and_address(env, tmp_path) -> None:
    """The token arrives once in the URL; the page then runs on the HttpOnly cookie: live charts, and the token in
    neither the HTML, the address bar nor anything a script can read."""
    proc = DashboardProcess(env["proc"].data_dir, tmp_path)
    base = proc.start("--token", "pAge-t0ken")
    page = env["page"].context.browser.new_page()
    try:
        page.goto(f"{base}/?token=pAge-t0ken")
        page.wait_for_function("() => document.getElementById('conn').textContent === 'live'", timeout=15_000)
        page.wait_for_function("() => window.__ansf.snapshots >= 1", timeout=15_000)
        assert page.url == f"{base}/"
        assert "pAge-t0ken" not in page.content()
        assert page.evaluate("() => document.cookie") == ""  # HttpOnly: no script on the page can read it
    finally:
        page.close()
        proc.stop()
