"""One bad number cannot blank the dashboard (issue 10, item 7): non-finite or absurd numbers are refused at the
edge, and the collector survives rows that got into the store anyway."""

from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path

import httpx
import pytest
from mcp import Client

from ansf_mcp.store.db import open_store
from tests.conftest import ansf_command, subprocess_env
from tests.dashboard.conftest import DashboardProcess, add_outcomes, next_snapshots
from tests.test_stdio_answers import HANDSHAKE, read_message


def _strict(text: str):
    def refuse(name: str):
        raise ValueError(f"{name} is not JSON")

    return json.loads(text, parse_constant=refuse)


@pytest.mark.anyio
@pytest.mark.parametrize("duration", [1e308, 40 * 24 * 3600.0, -1.0])
async def test_report_outcome_refuses_durations_no_task_takes(client: Client, duration: float) -> None:
    sw = (await client.call_tool("spawn_swarm", {"name": "s", "agents": [{"role": "r", "id": "a"}]})
          ).structured_content["swarm_id"]
    await client.call_tool("coordinate", {"swarm_id": sw, "tasks": [{"id": "t", "description": "work"}]})
    claim = (await client.call_tool("next_task", {"swarm_id": sw, "agent_id": "a"})).structured_content
    assert claim["claimed"]
    result = await client.call_tool("report_outcome", {"swarm_id": sw, "task_id": "t", "agent_id": "a",
                                                       "success": True, "duration_s": duration})
    assert result.is_error and "duration_s" in result.content[0].text
    status = (await client.call_tool("swarm_status", {"swarm_id": sw})).structured_content
    assert status["swarm"]["tasks"][0]["state"] == "claimed", "a refused report wrote nothing"


@pytest.mark.slow
def test_dashboard_snapshot_survives_poisoned_rows(data_dir: Path, tmp_path: Path) -> None:
    store = open_store(data_dir / "ansf.sqlite3")
    add_outcomes(store, [(True, 0.9)] * 12, duration_s=1e308)
    add_outcomes(store, [(False, 0.2)] * 12, duration_s=1e308)
    add_outcomes(store, [(True, 0.8)], duration_s=math.inf)
    add_outcomes(store, [(False, math.nan)], duration_s=math.nan)
    store.close()
    dash = DashboardProcess(data_dir, tmp_path)
    try:
        base = dash.start()
        next_snapshots(base, 1)  # a collection has run over the poisoned rows
        snapshot = httpx.get(f"{base}/api/snapshot", timeout=10)
        assert snapshot.status_code == 200, snapshot.text
        body = _strict(snapshot.text)
        assert body is not None, "no snapshot after a collection: it failed"
        assert body["tasks"] and body["points"]
        assert all(math.isfinite(v) for v in body["points"].values())
        metrics = httpx.get(f"{base}/metrics", timeout=10)
        assert metrics.status_code == 200
    finally:
        dash.stop()
    assert b"NOT NULL constraint failed" not in dash.proc.stderr.read()


@pytest.mark.slow
def test_non_finite_json_numbers_are_refused_over_stdio(data_dir: Path, tmp_path: Path) -> None:
    """JSON cannot say infinity, but `1e999` parses to it and some encoders write `Infinity` or `NaN`."""
    proc = subprocess.Popen([*ansf_command(), "serve"], env=subprocess_env(data_dir), cwd=tmp_path,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0)

    def send(message: dict | str) -> None:
        proc.stdin.write(((message if isinstance(message, str) else json.dumps(message)) + "\n").encode())

    def tool(rid: int, tool_name: str, /, **arguments: object) -> dict:
        send({"jsonrpc": "2.0", "id": rid, "method": "tools/call",
              "params": {"name": tool_name, "arguments": arguments}})
        answer = read_message(proc, tool_name)
        assert answer["id"] == rid
        return answer

    try:
        for message in HANDSHAKE:
            send(message)
        read_message(proc)
        sw = tool(2, "spawn_swarm", name="s", agents=[{"role": "r", "id": "a"}])["result"]["structuredContent"]
        tool(3, "coordinate", swarm_id=sw["swarm_id"], tasks=[{"id": "t", "description": "work"}])
        assert tool(4, "next_task", swarm_id=sw["swarm_id"], agent_id="a")["result"]["structuredContent"]["claimed"]
        for rid, number in enumerate(("1e999", "-1e999", "NaN", "Infinity"), start=10):
            arguments = (f'{{"swarm_id":"{sw["swarm_id"]}","task_id":"t","agent_id":"a","success":true,'
                         f'"duration_s":{number}}}')
            send(f'{{"jsonrpc":"2.0","id":{rid},"method":"tools/call","params":{{"name":"report_outcome",'
                 f'"arguments":{arguments}}}}}')
            answer = read_message(proc, number)
            assert answer["id"] == rid, answer
            refused = answer.get("error") or answer["result"].get("isError")
            assert refused, (number, answer)
        status = tool(20, "swarm_status", swarm_id=sw["swarm_id"])["result"]["structuredContent"]
        assert status["swarm"]["tasks"][0]["state"] == "claimed", "a refused report wrote nothing"
    finally:
        proc.kill()
