"""Smaller edges (issue 10, item 9), through the SDK client: unbounded capability strings, integers past
SQLite's range, paths longer than the file system allows, and absolute paths of definitions outside the project."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest
from ansf_mcp.tools.answers import MAX_ANSWER_CHARS
from mcp import Client

from ansf_mcp.server.app import build_server
from ansf_mcp.settings import Settings

pytestmark = pytest.mark.anyio


async def test_capability_strings_are_bounded_and_status_stays_small(client: Client) -> None:
    huge = await client.call_tool("spawn_swarm", {"name": "s", "agents": [{"role": "r",
                                                                            "capabilities": ["x" * 5_000_000]}]})
    assert huge.is_error and "capabilities" in huge.content[0].text
    bad_lead = await client.call_tool("spawn_swarm", {"name": "s", "topology": "hierarchical",
                                                      "agents": [{"role": "r", "lead": "y" * 5000}]})
    assert bad_lead.is_error
    widest = [{"role": "r" * 200, "capabilities": [f"{i:02d}" + "c" * 98 for i in range(50)]} for _ in range(64)]
    sw = (await client.call_tool("spawn_swarm", {"name": "wide", "agents": widest})).structured_content
    status = await client.call_tool("swarm_status", {"swarm_id": sw["swarm_id"]})
    size = len(status.content[0].text)
    assert status.structured_content["swarm"]["shrunk"].startswith("counts")
    assert size <= 2 * MAX_ANSWER_CHARS, f"{size} characters"


async def test_a_nul_character_in_any_argument_is_refused_and_nothing_is_written(client: Client) -> None:
    """PostgreSQL cannot store NUL in text and SQLite can: one rule for both, said before anything is written."""
    named = await client.call_tool("spawn_swarm", {"name": "a\x00b", "agents": [{"role": "r"}]})
    assert named.is_error and "name contains a NUL character" in named.content[0].text
    deep = await client.call_tool("spawn_swarm", {"name": "s", "agents": [{"role": "r", "capabilities": ["x\x00"]}]})
    assert deep.is_error and "agents[0].capabilities[0] contains a NUL" in deep.content[0].text
    status = await client.call_tool("swarm_status", {})
    assert status.structured_content["swarms"] == []


async def test_integers_past_sqlite_range_are_a_clear_error(client: Client, caplog) -> None:
    sw = (await client.call_tool("spawn_swarm", {"name": "s", "agents": [{"role": "r", "id": "a"}]})
          ).structured_content["swarm_id"]
    with caplog.at_level(logging.ERROR):
        result = await client.call_tool("read_messages", {"swarm_id": sw, "agent_id": "a", "since": 2**63})
    assert result.is_error and "since" in result.content[0].text
    assert not [r for r in caplog.records if r.exc_info], "no server traceback"


async def test_paths_too_long_or_not_text_are_a_clear_error(client: Client, caplog) -> None:
    with caplog.at_level(logging.ERROR):
        for path in ("a" * 4096, "b/" * 2100, "\ud800"):
            result = await client.call_tool("symbols_overview", {"relative_path": path})
            assert result.is_error, path[:20]
            text = result.content[0].text
            assert "cannot read that path" in text or "not valid Unicode" in text or "outside" in text, text[:300]
    assert not [r for r in caplog.records if r.exc_info], "no server traceback"


@pytest.mark.slow
async def test_definitions_outside_the_project_carry_no_absolute_path(tmp_path: Path) -> None:
    project = tmp_path / "proj"
    shutil.copytree(Path(__file__).parent / "fixtures" / "semantic" / "pyproj", project)
    (project / "src" / "geo" / "dump.py").write_text("import json\n\n\ndef dump(x):\n    return json.dumps(x)\n")
    server, runtime = build_server(Settings(data_dir=tmp_path / "data", project_root=project, warm_model=False))
    async with Client(server) as client:
        result = await client.call_tool("goto_definition", {"relative_path": "src/geo/dump.py", "line": 5,
                                                            "column": 17})
    assert not result.is_error, result.content
    outside = [d for d in result.structured_content["definitions"] if d["relative_path"] is None]
    assert outside, result.structured_content
    for d in outside:
        assert not d["external_path"].startswith("/") and str(tmp_path) not in d["external_path"], d
        assert d["external_path"].startswith("json/"), d
    runtime.shutdown()
