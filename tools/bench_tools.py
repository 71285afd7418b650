"""The `benchmark` tool: runs a suite in a worker thread, streams progress, honours cancellation."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import anyio
from ansf_mcp.tools.registry import Kind, Toolbox
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import BaseModel, Field

from ansf_mcp.bench.context import BenchCancelled, SuiteContext
from ansf_mcp.runtime import Runtime

Suite = Literal["mcp", "coordination", "semantic", "memory", "phases", "all"]


class BenchmarkReport(BaseModel):
    run_id: int
    suite: str
    version: str
    commit: str | None = None
    machine: dict[str, Any]
    started_at: float
    duration_s: float
    quick: bool
    results: dict[str, Any]
    markdown: str


def register(tools: Toolbox, app: Runtime) -> None:
    @tools.add(Kind.WRITE, "Run a benchmark")
    async def benchmark(
        ctx: Context,
        suite: Annotated[Suite, Field(description="which suite: mcp, coordination, semantic, memory, phases or all")]
        = "mcp",
        quick: Annotated[bool, Field(description="fewer repetitions (seconds, not minutes)")] = True,
    ) -> BenchmarkReport:
        """Measure this server: mcp latency, coordination quality vs oracle and baselines, semantic tools,
        memory, the phase matrix, or all. Streams progress; quick=False takes minutes. Stored for comparison."""
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
