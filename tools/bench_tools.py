"""The `benchmark` tool: runs a suite in a worker thread, streams progress, honours cancellation."""

from __future__ import annotations

from typing import Any, Literal

import anyio
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations
from pydantic import BaseModel

from ansf_mcp.bench.context import BenchCancelled, SuiteContext
from ansf_mcp.runtime import Runtime

# runner.SUITE_NAMES, spelled out: importing the runner pulls in numpy, which an idle server should not carry.
Suite = Literal["mcp", "coordination", "replay", "semantic", "memory", "phases", "chaos", "all"]


class BenchmarkReport(BaseModel):
    run_id: int
    suite: str
    version: str
    commit: str | None
    machine: dict[str, Any]
    started_at: float
    duration_s: float
    quick: bool
    results: dict[str, Any]
    markdown: str


def register(server: MCPServer, app: Runtime) -> None:
    async def benchmark(ctx: Context, suite: Suite = "mcp", quick: bool = True) -> BenchmarkReport:
        """Measure this server: mcp latency, coordination quality vs oracle and baselines on SIMULATED episodes,
        replay (top-1 on the project's real git history), semantic tools, memory, the phase matrix (quality
        simulated), chaos (kills, shared store, fuzz), or all. Streams progress; stored for comparison."""
        from ansf_mcp.bench import runner  # the suites pull in numpy and friends; only when asked

        async def send(fraction: float, message: str) -> None:
            await ctx.report_progress(fraction, 1.0, message)

        def report(fraction: float, message: str) -> None:
            anyio.from_thread.run(send, fraction, message)

        suite_ctx = SuiteContext(
            quick=quick, project=app.settings.project_root, data_dir=app.settings.data_dir, report=report
        )

        def work() -> dict[str, Any]:
            return runner.run_suite(suite, suite_ctx)

        try:
            result = await anyio.to_thread.run_sync(work, abandon_on_cancel=True)
        except anyio.get_cancelled_exc_class():
            suite_ctx.cancelled.set()  # the worker stops at its next progress report
            raise
        except BenchCancelled as exc:
            raise ToolError("benchmark cancelled") from exc
        run_id = runner.keep(result, app.store)
        return BenchmarkReport(run_id=run_id, **result)

    server.add_tool(
        benchmark,
        description=" ".join((benchmark.__doc__ or "").split()),
        annotations=ToolAnnotations(
            read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=False
        ),
    )
