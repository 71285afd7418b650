"""What the dashboard draws, checked in a real browser (Debian's headless Chromium through Playwright): alert text
that follows its figure, a benchmark chart whose labels do not overlap and which draws its confidence intervals,
phase labels that name the phase, a memory card and caption that agree, a favicon, and the language-server panel
of a standalone dashboard fed by the serving process. Screenshots go to test-artifacts/."""

from __future__ import annotations

import os
import re
import threading
from pathlib import Path

import anyio
import httpx
import pytest

from ansf_mcp.bench import suites
from ansf_mcp.store.db import open_store
from tests.conftest import need
from tests.dashboard.conftest import DashboardProcess, add_outcomes, keep_report
from tests.dashboard.test_browser import ARGS, ARTIFACTS, CHROMIUM, _have_playwright

pytestmark = pytest.mark.slow

PYPROJ = Path(__file__).resolve().parents[1] / "fixtures" / "semantic" / "pyproj"

# The phases suite's rows (phase + strategy, two phases on one strategy) and long coordination labels.
PHASES_RESULT = {"matrix": {
    "0.5": {"phase": "3 optimal", "strategy": ["neural"],
            "quality": {"value_ratio": 0.91, "ci95": 0.02, "episodes": 300}},
    "0.9": {"phase": "2 enhanced", "strategy": ["neural"],
            "quality": {"value_ratio": 0.89, "ci95": 0.03, "episodes": 300}},
    "0.995": {"phase": "1 critical", "strategy": ["history"],
              "quality": {"value_ratio": 0.84, "ci95": 0.04, "episodes": 300}},
}}


class ServingProcess:
    """A server on the same store, in a thread of this process: it answers one semantic call and keeps its
    language server until stopped (as `ansf serve` would)."""

    def __init__(self, data_dir: Path):
        self.data_dir = data_dir
        self.ready, self.stop = threading.Event(), threading.Event()
        self.thread = threading.Thread(target=anyio.run, args=(self._run,), daemon=True)

    async def _run(self) -> None:
        from mcp import Client

        from ansf_mcp.server.app import build_server
        from ansf_mcp.settings import Settings

        server, _ = build_server(Settings(data_dir=self.data_dir, project_root=PYPROJ, warm_model=False))
        async with Client(server) as client:
            result = await client.call_tool("symbols_overview", {"relative_path": "src/geo/units.py"})
            assert not result.is_error, result.content
            self.ready.set()
            await anyio.to_thread.run_sync(self.stop.wait)

    def start(self) -> None:
        self.thread.start()
        assert self.ready.wait(120), "the serving thread did not answer its semantic call"

    def close(self) -> None:
        self.stop.set()
        self.thread.join(60)


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    need(_have_playwright(), "playwright (pip)")
    need(Path(CHROMIUM).exists(), "chromium (apt)")
    from playwright.sync_api import sync_playwright

    root = tmp_path_factory.mktemp("truth")
    data_dir = root / "data"
    data_dir.mkdir()
    store = open_store(data_dir / "ansf.sqlite3")
    keep_report(store, "phases", {"phases": PHASES_RESULT}, suites.BY_NAME["phases"].value_ratios(PHASES_RESULT))
    serving = ServingProcess(data_dir)
    serving.start()
    proc = DashboardProcess(data_dir, root)
    base = proc.start()
    pw = sync_playwright().start()
    browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
    page = browser.new_page(viewport={"width": 1000, "height": 1400})
    failed: list[str] = []
    page.on("response", lambda r: failed.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    page.goto(base + "/")
    page.wait_for_function("() => window.__ansf && window.__ansf.snapshots >= 1", timeout=15_000)
    ARTIFACTS.mkdir(exist_ok=True)
    try:
        yield {"base": base, "page": page, "store": store, "failed": failed, "serving": serving}
    finally:
        serving.close()
        browser.close()
        pw.stop()
        proc.stop()
        store.close()


def boxes(page, selector: str) -> list[dict]:
    return page.evaluate(f"""() => [...document.querySelectorAll('{selector}')].map(e => {{
        const b = e.getBoundingClientRect(); return {{x: b.x, y: b.y, w: b.width, h: b.height, text: e.textContent,
        lo: e.dataset ? e.dataset.lo : undefined, hi: e.dataset ? e.dataset.hi : undefined,
        mean: e.dataset ? e.dataset.mean : undefined}}; }})""")


def overlap(a: dict, b: dict) -> bool:
    return a["x"] < b["x"] + b["w"] and b["x"] < a["x"] + a["w"] and a["y"] < b["y"] + b["h"] and b["y"] < a["y"] + a["h"]


def test_benchmark_chart_draws_intervals_and_labels_that_name_each_phase(env) -> None:
    page = env["page"]
    page.wait_for_selector('.card[data-chart="benchmark"] svg .bench-bar')
    labels = boxes(page, '.card[data-chart="benchmark"] .bench-label')
    assert [lb["text"] for lb in labels] == ["3 optimal (neural)", "2 enhanced (neural)", "1 critical (history)"]
    assert not any(overlap(a, b) for i, a in enumerate(labels) for b in labels[i + 1:]), labels
    bars = boxes(page, '.card[data-chart="benchmark"] .bench-bar')
    whiskers = boxes(page, '.card[data-chart="benchmark"] .bench-ci')
    assert len(bars) == len(whiskers) == 3
    for bar, whisker, label in zip(bars, whiskers, labels, strict=True):
        assert not overlap(label, bar)  # a label never sits on a bar
        end = bar["x"] + bar["w"]
        assert whisker["x"] < end < whisker["x"] + whisker["w"]  # the interval spans the mean
        assert float(whisker["lo"]) < float(bar["mean"]) < float(whisker["hi"])
    page.locator('.card[data-chart="benchmark"]').screenshot(path=str(ARTIFACTS / "dashboard-benchmark.png"))


def test_alert_text_follows_its_figure(env) -> None:
    page = env["page"]
    add_outcomes(env["store"], [(False, 0.95)] * 12, strategy="neural")  # 0 of 12 success calls came true
    page.wait_for_selector('#alerts li.alert[data-name="neural_accuracy"]', timeout=10_000)
    assert "0.000 now (12 samples" in page.inner_text('#alerts li[data-name="neural_accuracy"]')
    # 29 calls come true: 29 / 41 = 0.707, above the 0.7 threshold but short of the hysteresis (0.721): still open.
    add_outcomes(env["store"], [(True, 0.9)] * 29, strategy="neural")
    page.wait_for_function(
        "() => (document.querySelector('#alerts li[data-name=\"neural_accuracy\"]') || {}).textContent"
        "?.includes('41 samples')", timeout=10_000)
    # the card beside it is redrawn from the same check, not a collection later
    assert "41 samples" in page.inner_text("#fig-neural_accuracy small")
    alert = page.inner_text('#alerts li[data-name="neural_accuracy"]')
    card = page.inner_text("#fig-neural_accuracy b")
    assert card == "0.707" and "0.707 now (41 samples" in alert and "raised at 0.000" in alert, (card, alert)
    page.screenshot(path=str(ARTIFACTS / "dashboard-alert-live.png"), full_page=True)


def test_memory_card_and_caption_agree(env) -> None:
    page = env["page"]
    page.wait_for_function("() => window.__ansf.snapshots >= 2", timeout=10_000)
    card = page.inner_text("#fig-memory b")
    caption = page.inner_text('.card[data-chart="memory"] .note')
    shown = float(card.rstrip(" %"))
    quoted = float(re.search(r"memory ([0-9.]+)% used", caption).group(1))
    assert abs(shown - quoted) <= 0.1, (card, caption)


def test_favicon_and_no_failed_requests(env) -> None:
    response = httpx.get(env["base"] + "/favicon.ico")
    assert response.status_code == 200 and response.headers["content-type"] == "image/x-icon"
    assert response.content[:4] == b"\x00\x00\x01\x00"  # an ICO file
    env["page"].reload()
    env["page"].wait_for_function("() => window.__ansf && window.__ansf.snapshots >= 1", timeout=15_000)
    assert env["failed"] == [], env["failed"]


def test_standalone_language_server_panel_shows_the_serving_process(env) -> None:
    page = env["page"]
    note = page.inner_text('.card[data-chart="semantic"] .note')
    assert "Python/jedi-language-server: alive" in note, note
    assert f"reported by server process {os.getpid()}" in note, note
    assert page.get_attribute('.card[data-chart="semantic"]', "data-state") == "chart"
    page.locator('.card[data-chart="semantic"]').screenshot(path=str(ARTIFACTS / "dashboard-semantic.png"))
    env["serving"].close()  # the serving process stops: the panel says so instead of showing it alive
    page.wait_for_function(
        "() => document.querySelector('.card[data-chart=\"semantic\"] .note').textContent.includes('stopped')",
        timeout=10_000)
    assert "Python/jedi-language-server: alive" not in page.inner_text('.card[data-chart="semantic"] .note')
