"""The MCP Inspector CLI (npm @modelcontextprotocol/inspector) lists and calls our tools over stdio."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import ansf_command, need, subprocess_env

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]


def inspector() -> Path:
    prefix = Path(os.environ.get("ANSF_NODE_PREFIX", REPO / ".cache" / "node"))
    binary = prefix / "node_modules" / ".bin" / "mcp-inspector"
    need(binary.exists(), f"the MCP Inspector CLI ({binary})")
    return binary


def run_inspector(data_dir: Path, *args: str) -> dict:
    out = subprocess.run(
        [str(inspector()), "--cli", *ansf_command(), "serve", *args],
        env=subprocess_env(data_dir),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout)


def test_inspector_lists_tools(data_dir: Path) -> None:
    listing = run_inspector(data_dir, "--method", "tools/list")
    names = {t["name"] for t in listing["tools"]}
    assert {"spawn_swarm", "coordinate", "next_task", "report_outcome", "system_status"} <= names


def test_inspector_calls_tools(data_dir: Path) -> None:
    spawned = run_inspector(
        data_dir,
        "--method", "tools/call", "--tool-name", "spawn_swarm",
        "--tool-arg", "name=inspected", "--tool-arg", 'agents=[{"role": "backend"}]',
    )
    swarm_id = spawned["structuredContent"]["swarm_id"]
    status = run_inspector(
        data_dir, "--method", "tools/call", "--tool-name", "swarm_status", "--tool-arg", f"swarm_id={swarm_id}"
    )
    assert status["structuredContent"]["swarm"]["name"] == "inspected"
