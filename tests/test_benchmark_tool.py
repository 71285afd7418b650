"""Benchmarks through a real client: started in the background with a handle, followed with benchmark_status,
stopped with benchmark_cancel; the report is stored."""

from __future__ import annotations

import json

import anyio
import pytest
from mcp import Client

pytestmark = [pytest.mark.anyio, pytest.mark.slow]


async def status(client: Client, run_id: str) -> dict:
    result = await client.call_tool("benchmark_status", {"run_id": run_id})
    assert not result.is_error, result.content[0].text
    return result.structured_content


async def follow(client: Client, run_id: str, until: set[str], limit_s: float = 300) -> list[dict]:
    """benchmark_status until the run reaches one of `until` (a poll, as a client would; not a timing check)."""
    seen: list[dict] = []
    with anyio.fail_after(limit_s):
        while True:
            seen.append(await status(client, run_id))
            if seen[-1]["state"] in until:
                return seen
            await anyio.sleep(0.2)


async def test_benchmark_returns_a_handle_at_once_and_stores_the_report(client: Client, settings) -> None:
    started = await client.call_tool("benchmark", {"suite": "mcp", "quick": True})
    assert not started.is_error, started.content[0].text
    run = started.structured_content
    assert run["run_id"].startswith("bench-") and run["state"] == "running" and run["report"] is None
    second = await client.call_tool("benchmark", {"suite": "memory"})
    assert second.is_error and run["run_id"] in second.content[0].text  # one run at a time
    seen = await follow(client, run["run_id"], {"succeeded", "failed"})
    final = seen[-1]
    assert final["state"] == "succeeded", final.get("error")
    progress = [s["progress"] for s in seen]
    assert progress == sorted(progress) and progress[-1] == 1.0
    report = final["report"]
    latency = report["results"]["mcp"]["latency"]
    assert latency["echo"]["n"] > 0 and latency["swarm_status"]["p50_ms"] > 0
    assert report["results"]["mcp"]["answer_size"]["swarm_status (64-task board, defaults)"]["tokens"] > 0
    assert report["machine"]["cpu_count"] >= 1 and "| swarm_status |" in report["markdown"]
    from ansf_mcp.store.db import open_store

    store = open_store(settings.db_path)
    with store.reading() as conn:
        row = conn.execute("SELECT suite, report FROM benchmark_runs WHERE id = ?", (report["run_id"],)).fetchone()
    assert row["suite"] == "mcp" and json.loads(row["report"])["results"]["mcp"]["latency"] == latency


async def test_unknown_suite_and_unknown_run_are_refused(client: Client) -> None:
    result = await client.call_tool("benchmark", {"suite": "speed-of-light"})
    assert result.is_error and "suite" in result.content[0].text
    result = await client.call_tool("benchmark_status", {"run_id": "bench-000000000000"})
    assert result.is_error and "no benchmark run" in result.content[0].text


async def test_a_suite_whose_input_cannot_be_used_is_refused_before_it_starts(client: Client) -> None:
    # The fixture's project is a plain folder: the replay suite has no git history to read.
    result = await client.call_tool("benchmark", {"suite": "replay"})
    assert result.is_error
    assert "is not a readable git repository" in result.content[0].text
    assert "nothing was started" in result.content[0].text
    started = await client.call_tool("benchmark", {"suite": "mcp", "quick": True})
    assert not started.is_error, started.content[0].text  # no failed run left holding the one slot
    await client.call_tool("benchmark_cancel", {"run_id": started.structured_content["run_id"]})
    await follow(client, started.structured_content["run_id"], {"cancelled", "succeeded", "failed"})


async def test_benchmark_can_be_cancelled(client: Client, settings) -> None:
    run = (await client.call_tool("benchmark", {"suite": "phases", "quick": True})).structured_content
    await follow(client, run["run_id"], {"running"})
    with anyio.fail_after(120):
        while (await status(client, run["run_id"]))["progress"] == 0:  # the suite has started working
            await anyio.sleep(0.2)
    cancelled = (await client.call_tool("benchmark_cancel", {"run_id": run["run_id"]})).structured_content
    assert cancelled["state"] in ("cancelling", "cancelled")
    final = (await follow(client, run["run_id"], {"cancelled", "succeeded", "failed"}))[-1]
    assert final["state"] == "cancelled" and final["report"] is None
    import psutil

    from ansf_mcp.store.db import open_store

    def phase_servers() -> int:
        # The phases suite keeps a stdio server subprocess running nearly all the time it works.
        return sum("ansf_mcp" in " ".join(p.cmdline()) for p in psutil.Process().children(recursive=True))

    with anyio.fail_after(30):
        while phase_servers():
            await anyio.sleep(0.2)
    store = open_store(settings.db_path)
    with store.reading() as conn:
        assert conn.execute("SELECT COUNT(*) FROM benchmark_runs").fetchone()[0] == 0


async def test_the_description_says_what_is_simulated_and_the_suites_are_the_runner_s(client: Client) -> None:
    from ansf_mcp.bench.runner import SUITE_NAMES

    tool = next(t for t in (await client.list_tools()).tools if t.name == "benchmark")
    assert "SIMULATED episodes" in tool.description and "real git history" in tool.description
    assert "phase matrix (quality simulated)" in tool.description
    assert len(tool.description) < 300, "every tool description costs client context"
    assert set(tool.input_schema["properties"]["suite"]["enum"]) == set(SUITE_NAMES)
