"""The board's MCP App view in a real browser: a host page frames the ui:// HTML read through an MCP client, answers
its handshake as an Apps host does (postMessage JSON-RPC) and hands it a real swarm_status result to draw."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import anyio
import pytest
from mcp import Client

from ansf_mcp.server.app import build_server
from ansf_mcp.settings import Settings
from tests.conftest import need
from tests.dashboard.test_browser import ARGS, CHROMIUM, _have_playwright
from tests.mcp_calls import call

pytestmark = pytest.mark.slow

HOST = """<!doctype html><html><body><iframe id="view" style="width:900px;height:600px"></iframe><script>
window.seen = [];
const frame = document.getElementById("view");
window.addEventListener("message", (e) => {
  if (e.source !== frame.contentWindow) return;
  const m = e.data; window.seen.push(m.method);
  if (m.method === "ui/initialize") frame.contentWindow.postMessage({ jsonrpc: "2.0", id: m.id, result: {
    protocolVersion: "2026-01-26", hostInfo: { name: "test-host", version: "1" }, hostCapabilities: {}, hostContext: {} } }, "*");
  if (m.method === "ui/notifications/initialized") frame.contentWindow.postMessage({ jsonrpc: "2.0",
    method: "ui/notifications/tool-result", params: window.RESULT }, "*");
});
</script></body></html>"""


async def _view_and_result(settings: Settings) -> tuple[str, dict]:
    server, runtime = build_server(settings)
    try:
        async with Client(server) as client:
            sw = (await call(client, "spawn_swarm", name="view", agents=[{"role": "backend"}, {"role": "qa"}]))
            await call(client, "coordinate", swarm_id=sw["swarm_id"], strategy="round-robin",
                       tasks=[{"id": "api", "description": "write the endpoint"},
                              {"id": "check", "description": "test it", "depends_on": ["api"]}])
            html = (await client.read_resource("ui://ansf/board.html")).contents[0].text
            result = await client.call_tool("swarm_status", {"swarm_id": sw["swarm_id"]})
            return html, {"content": [c.model_dump(mode="json") for c in result.content],
                          "structuredContent": result.structured_content}
    finally:
        runtime.shutdown()


def test_the_view_draws_the_swarm_status_it_is_handed(settings: Settings) -> None:
    need(_have_playwright(), "playwright (pip)")
    need(Path(CHROMIUM).exists() or shutil.which("chromium") is not None, "chromium (apt)")
    from playwright.sync_api import sync_playwright

    html, result = anyio.run(_view_and_result, settings)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            page = browser.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.set_content(HOST)
            page.evaluate("(r) => { window.RESULT = r; }", result)
            page.evaluate("(h) => { document.getElementById('view').srcdoc = h; }", html)
            view = page.frame_locator("#view")
            view.locator("#tasks tbody tr").nth(1).wait_for(timeout=10_000)
            tasks = [r.split("\t") for r in view.locator("#tasks tbody tr").all_inner_texts()]
            assert [(t[0], t[1], t[4]) for t in tasks] == [("api", "ready", "write the endpoint"),
                                                           ("check", "blocked", "test it")], tasks
            assert view.locator("#agents tbody tr").count() == 2
            swarm = result["structuredContent"]["swarm"]
            assert swarm["swarm_id"] in view.locator("#title").inner_text()
            counts = view.locator("#counts").inner_text()
            assert all(f"{k}: {n}" in counts for k, n in swarm["tasks_by_state"].items()), (counts, swarm)
            assert page.evaluate("window.seen") == ["ui/initialize", "ui/notifications/initialized"]
            assert errors == [], json.dumps(errors)
        finally:
            browser.close()
