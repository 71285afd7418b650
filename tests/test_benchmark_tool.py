"""The benchmark tool through a real client: progress notifications, a stored report, cancellation."""

from __future__ import annotations

import json

import anyio
import pytest
from mcp import Client

pytestmark = [pytest.mark.anyio, pytest.mark.slow]


async def test_benchmark_streams_progress_and_stores_the_report(client: Client, settings) -> None:
    progress: list[tuple[float, str | None]] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append((value, message))

    result = await client.call_tool("benchmark", {"suite": "mcp", "quick": True}, progress_callback=on_progress)
    assert not result.is_error, result.content[0].text
    report = result.structured_content
    latency = report["results"]["mcp"]["latency"]
    assert latency["echo"]["n"] > 0 and latency["swarm_status"]["p50_ms"] > 0
    assert report["machine"]["cpu_count"] >= 1 and "gpu" in report["machine"]
    assert "| swarm_status |" in report["markdown"]
    assert len(progress) >= 3 and progress[-1][0] == pytest.approx(1.0)
    assert [v for v, _ in progress] == sorted(v for v, _ in progress)
    from ansf_mcp.store.db import Store

    store = Store(settings.db_path)
    with store.reading() as conn:
        row = conn.execute("SELECT suite, report FROM benchmark_runs WHERE id = ?", (report["run_id"],)).fetchone()
    assert row["suite"] == "mcp" and json.loads(row["report"])["results"]["mcp"]["latency"] == latency


async def test_unknown_suite_is_refused(client: Client) -> None:
    result = await client.call_tool("benchmark", {"suite": "speed-of-light"})
    assert result.is_error and "suite" in result.content[0].text


async def test_benchmark_can_be_cancelled(client: Client, settings) -> None:
    seen = anyio.Event()

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        seen.set()

    with anyio.move_on_after(120):
        async with anyio.create_task_group() as tg:

            async def run() -> None:
                await client.call_tool("benchmark", {"suite": "phases", "quick": True}, progress_callback=on_progress)

            tg.start_soon(run)
            await seen.wait()
            tg.cancel_scope.cancel()
    import psutil

    from ansf_mcp.store.db import Store

    def phase_servers() -> int:
        # The phases suite keeps a stdio server subprocess running nearly all the time it works.
        return sum("ansf_mcp" in " ".join(p.cmdline()) for p in psutil.Process().children(recursive=True))

    await anyio.sleep(2)  # the worker notices at its next progress report
    for _ in range(5):
        assert phase_servers() == 0, "the benchmark kept running after cancellation"
        await anyio.sleep(1)
    store = Store(settings.db_path)
    with store.reading() as conn:
        assert conn.execute("SELECT COUNT(*) FROM benchmark_runs").fetchone()[0] == 0


async def test_the_description_says_what_is_simulated_and_the_suites_are_the_runner_s(client: Client) -> None:
    from ansf_mcp.bench.runner import SUITE_NAMES

    tool = next(t for t in (await client.list_tools()).tools if t.name == "benchmark")
    assert "SIMULATED episodes" in tool.description and "real git history" in tool.description
    assert "phase matrix (quality simulated)" in tool.description
    assert len(tool.description) < 300, "every tool description costs client context"
    assert set(tool.input_schema["properties"]["suite"]["enum"]) == set(SUITE_NAMES)
