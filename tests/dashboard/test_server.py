"""The dashboard over real HTTP and WebSocket: health, /metrics, /api/snapshot, tokens off loopback, busy port,
and the same routes mounted into the MCP HTTP app (one process, one store)."""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import sys
import threading
import time

import httpx
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from tests.conftest import free_port, subprocess_env
from tests.dashboard.conftest import add_outcomes


def test_health_metrics_snapshot_and_page(dashboard_process) -> None:
    base = dashboard_process.start()
    assert httpx.get(f"{base}/health").json()["status"] == "ok"
    page = httpx.get(f"{base}/")
    assert page.status_code == 200 and "uPlot.iife.min.js" in page.text
    assert httpx.get(f"{base}/static/uPlot.LICENSE").status_code == 200
    snap = httpx.get(f"{base}/api/snapshot").json()
    assert snap["memory"]["fraction"] is not None and snap["figures"]["calibration_brier"]["value"] is None
    assert snap["calibration"]["strategies"]["history"]["outcomes"] == 0 and snap["estimators"]["swarms"] == []
    text = httpx.get(f"{base}/metrics")
    assert text.headers["content-type"].startswith("text/plain")
    assert "ansf_memory_used_bytes" in text.text and 'ansf_tasks{state="ready"} 0.0' in text.text
    assert "ansf_neural_accuracy " not in text.text  # no data: left out, not reported as 0
    assert "ansf_calibration_brier_score{" not in text.text and "ansf_coordination_accuracy" not in text.text
    assert "ansf_claims_total 0.0" in text.text and 'ansf_outcomes_total{result="success"} 0.0' in text.text


def test_claims_and_outcomes_are_prometheus_counters(dashboard_process, store) -> None:
    """A burst between two scrapes is counted whatever the scrape interval; the per-minute gauges cover one
    collection interval only."""
    base = dashboard_process.start(env={"ANSF_DASHBOARD_INTERVAL_S": "1"})
    add_outcomes(store, [(True, 0.8)] * 3 + [(False, 0.8)] * 2)
    deadline = time.time() + 15
    while time.time() < deadline:
        text = httpx.get(f"{base}/metrics").text
        if 'ansf_outcomes_total{result="failure"} 2.0' in text:
            break
        time.sleep(0.3)
    else:
        pytest.fail("the counters did not reach the reported outcomes")
    assert 'ansf_outcomes_total{result="success"} 3.0' in text and "ansf_claims_total 5.0" in text
    assert "# TYPE ansf_claims_total counter" in text or "# TYPE ansf_claims counter" in text


def test_off_loopback_without_token_is_refused(data_dir, tmp_path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "ansf_mcp.dashboard", "--host", "0.0.0.0", "--port", str(free_port())],
        env=subprocess_env(data_dir), cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )
    assert out.returncode == 2 and "token" in out.stderr


def test_busy_port_names_the_flag(data_dir, tmp_path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        out = subprocess.run(
            [sys.executable, "-m", "ansf_mcp.dashboard", "--port", str(port)],
            env=subprocess_env(data_dir), cwd=tmp_path, capture_output=True, text=True, timeout=60,
        )
    assert out.returncode == 2 and "--port" in out.stderr and str(port) in out.stderr


def test_a_port_out_of_range_is_refused_in_one_line(data_dir, tmp_path) -> None:
    for port in ("99999", "-1"):
        out = subprocess.run(
            [sys.executable, "-m", "ansf_mcp.dashboard", "--port", port],
            env=subprocess_env(data_dir), cwd=tmp_path, capture_output=True, text=True, timeout=60,
        )
        assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
        assert f"argument --port: {port} is not a port (0-65535)" in out.stderr


def test_token_is_enforced_off_loopback_on_http_and_websocket(dashboard_process) -> None:
    base = dashboard_process.start("--token", "s3cret", host="0.0.0.0")
    ws_url = base.replace("http://", "ws://") + "/ws"
    assert httpx.get(f"{base}/health").status_code == 200  # health stays open for probes
    for path in ("/", "/api/snapshot", "/metrics", "/static/dashboard.js"):
        assert httpx.get(f"{base}{path}").status_code == 401, path
        assert httpx.get(f"{base}{path}?token=wrong").status_code == 401, path
    assert httpx.get(f"{base}/?token=s3cret").status_code == 200
    page = httpx.get(f"{base}/?token=s3cret").text
    assert "s3cret" not in page  # the page gets its token as a cookie, never inside its HTML
    assert httpx.get(f"{base}/metrics", headers={"Authorization": "Bearer s3cret"}).status_code == 200
    assert httpx.get(f"{base}/api/snapshot", headers={"X-ANSF-Token": "s3cret"}).status_code == 200
    with pytest.raises(InvalidStatus):
        with connect(ws_url, open_timeout=5):
            pass
    with pytest.raises(InvalidStatus):
        with connect(ws_url + "?token=wrong", open_timeout=5):
            pass
    with connect(ws_url + "?token=s3cret", open_timeout=5) as ws:
        hello = json.loads(ws.recv(timeout=5))
        assert hello["type"] == "hello" and "history" in hello


def test_alert_pushed_on_the_websocket(dashboard_process, store) -> None:
    base = dashboard_process.start(env={"ANSF_DASHBOARD_INTERVAL_S": "30"})  # the push must not wait for collection
    with connect(base.replace("http://", "ws://") + "/ws", open_timeout=5) as ws:
        assert json.loads(ws.recv(timeout=5))["type"] == "hello"
        add_outcomes(store, [(False, 0.9)] * 30)  # history's Brier 0.81 over 30 outcomes > 0.25
        breach = time.time()
        deadline = breach + 10
        while time.time() < deadline:
            msg = json.loads(ws.recv(timeout=10))
            if msg["type"] == "alerts" and any(a["name"] == "calibration" for a in msg["active"]):
                break
        else:
            pytest.fail("no alert message within 10 s")
        assert time.time() - breach < 5


def test_mounted_into_the_mcp_http_app(settings) -> None:
    """The integration recipe: dashboard routes before Mount('/'), its context inside the server's lifespan."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.routing import Mount

    from ansf_mcp.dashboard.app import build_dashboard
    from ansf_mcp.dashboard.config import DashboardConfig
    from ansf_mcp.server.app import build_server
    from ansf_mcp.web import health_route

    server, app = build_server(settings)
    inner = server.streamable_http_app(host="127.0.0.1")
    routes, running = build_dashboard(app, DashboardConfig(interval_s=1))

    @contextlib.asynccontextmanager
    async def lifespan(_):
        async with server.session_manager.run(), running():
            app.ready = True
            yield
        app.shutdown()

    asgi = Starlette(routes=[health_route(app), *routes, Mount("/", app=inner)], lifespan=lifespan)
    port = free_port()
    uv = uvicorn.Server(uvicorn.Config(asgi, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            time.sleep(0.1)
        deadline = time.monotonic() + 10
        while httpx.get(f"{base}/api/snapshot").json() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        snap = httpx.get(f"{base}/api/snapshot").json()
        assert snap["phase"]["phase"] != "not governed"  # the serving process's own governor
        assert "ansf_phase_info" in httpx.get(f"{base}/metrics").text
        init = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}
        r = httpx.post(f"{base}/mcp", json=init,
                       headers={"Accept": "application/json, text/event-stream", "Content-Type": "application/json"})
        assert r.status_code == 200  # MCP still answers beside the dashboard
    finally:
        uv.should_exit = True
        thread.join(timeout=10)


def test_loopback_refuses_rebound_hosts_and_foreign_origins(dashboard_process) -> None:
    """Without a token on loopback, a DNS-rebound name or another site's page must not read the figures."""
    base = dashboard_process.start()
    ws_url = base.replace("http://", "ws://") + "/ws"
    assert httpx.get(f"{base}/api/snapshot", headers={"Host": "evil.example"}).status_code == 403
    assert httpx.get(f"{base}/metrics", headers={"Host": f"localhost:{dashboard_process.port}"}).status_code == 200
    with pytest.raises(InvalidStatus):
        with connect(ws_url, origin="http://evil.example", open_timeout=5):
            pass
    with connect(ws_url, origin=base, open_timeout=5) as ws:
        assert json.loads(ws.recv(timeout=5))["type"] == "hello"


def test_the_hello_carries_open_alerts_before_the_first_check(settings) -> None:
    """A page that connects right after a restart, before the new process has checked alerts or collected, is told
    what is still open (it was shown 'no alerts' until the next snapshot: failed once in the whole suite)."""
    import anyio

    from ansf_mcp.dashboard.app import Dashboard
    from ansf_mcp.dashboard.config import DashboardConfig
    from ansf_mcp.server.app import build_server

    _, app = build_server(settings)
    try:
        with app.store.transaction() as conn:
            conn.execute("INSERT INTO alerts (name, severity, message, value, threshold, raised_at) "
                         "VALUES ('calibration', 'critical', 'raised before the restart', 0.8, 0.25, 1)")
        hello = anyio.run(Dashboard(app, DashboardConfig()).hello)
        assert hello["snapshot"] is None
        assert [(a["name"], a["message"]) for a in hello["alerts"]] == [("calibration", "raised before the restart")]
    finally:
        app.shutdown()


def test_the_standalone_dashboard_loads_no_model_and_records_nothing(settings) -> None:
    """`ansf dashboard` watches the store: with the user's default (warm-up on) it must neither load the model
    (~300 MB of the memory it watches) nor write a model load or phase change that would be shown as the server's."""
    from ansf_mcp.dashboard.app import open_runtime

    runtime = open_runtime(settings.model_copy(update={"warm_model": True}))
    try:
        runtime.start()
        assert runtime.on_start == [] and runtime.governor is not None and runtime.governor.on_change == []
        assert runtime.warmer.status()["state"] == "skipped"
        with runtime.store.reading() as conn:
            assert conn.execute("SELECT COUNT(*) FROM model_loads").fetchone()[0] == 0
    finally:
        runtime.shutdown()
