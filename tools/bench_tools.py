"""Benchmarks in the background: `benchmark` starts a run and returns its handle at once (a whole suite takes
longer than many clients wait for one call), `benchmark_status` reports progress and then the stored report,
`benchmark_cancel` stops it at its next progress step."""

from __future__ import annotations

import threading
import time
import uuid
from typing import Annotated, Literal

import anyio
from ansf_mcp.tools.answers import Shrinking
from ansf_mcp.tools.registry import Kind, Toolbox
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import BaseModel, Field

from ansf_mcp.bench import suites
from ansf_mcp.bench.context import BenchCancelled, SuiteContext, SuiteInputError
from ansf_mcp.runtime import Runtime
from ansf_mcp.system.report import BenchmarkReport

# From the registry, not the runner: importing the runner pulls in numpy, which an idle server should not carry.
Suite = Literal[suites.NAMES]  # type: ignore[valid-type]
RunState = Literal["running", "cancelling", "succeeded", "failed", "cancelled"]
RunId = Annotated[str, Field(pattern=r"^bench-[0-9a-f]{12}$")]  # undescribed: copied from an answer (HINTS)


class StoredReport(BenchmarkReport):
    run_id: int = Field(description="the stored run's id (benchmark_runs)")


class BenchmarkRun(BaseModel):
    run_id: str = Field(description="pass to benchmark_status and benchmark_cancel")
    suite: str
    quick: bool
    state: RunState
    progress: float = Field(description="0 to 1")
    message: str = ""
    started_at: float
    elapsed_s: float
    error: str | None = None
    report: StoredReport | None = Field(default=None, description="once succeeded: the stored report")
    shrunk: str | None = None


class _Run:
    def __init__(self, suite: str, quick: bool, ctx: SuiteContext):
        self.id = f"bench-{uuid.uuid4().hex[:12]}"
        self.suite, self.quick, self.ctx = suite, quick, ctx
        self.state: str = "running"
        self.progress, self.message = 0.0, "starting"
        self.started_at = time.time()
        self.finished_at: float | None = None
        self.error: str | None = None
        self.report: StoredReport | None = None
        self.thread: threading.Thread | None = None

    def view(self) -> BenchmarkRun:
        end = self.finished_at or time.time()
        return BenchmarkRun(run_id=self.id, suite=self.suite, quick=self.quick, state=self.state,  # type: ignore[arg-type]
                            progress=round(self.progress, 4), message=self.message, started_at=self.started_at,
                            elapsed_s=round(end - self.started_at, 3), error=self.error, report=self.report)


def run_steps(run: BenchmarkRun) -> Shrinking[BenchmarkRun]:
    """Full -> the report's markdown without its raw results -> state only."""
    if run.report is None:
        return Shrinking(run)
    return Shrinking(
        run,
        lambda: run.model_copy(update={"report": run.report.model_copy(update={"results": {}}),  # type: ignore[union-attr]
                                       "shrunk": "raw results left out: see report.markdown, or ansf bench --json"}),
        lambda: run.model_copy(update={"report": None,
                                       "shrunk": f"report left out; it is stored as benchmark run "
                                                 f"{run.report.run_id}"}),  # type: ignore[union-attr]
    )


def register(tools: Toolbox, app: Runtime) -> None:
    runs: dict[str, _Run] = {}
    lock = threading.Lock()

    def work(run: _Run) -> None:
        from ansf_mcp.bench import runner  # the suites pull in numpy and friends; only when asked

        try:
            result = runner.run_suite(run.suite, run.ctx)
            stored = runner.keep(result, app.store)
            run.report = StoredReport(run_id=stored, **dict(result))
            run.state, run.progress, run.message = "succeeded", 1.0, "done"
        except BenchCancelled:
            run.state, run.message = "cancelled", "cancelled; nothing was stored"
        except Exception as exc:  # the run fails, the server goes on
            run.state, run.error = "failed", f"{type(exc).__name__}: {exc}"
        finally:
            run.finished_at = time.time()

    def stop_all() -> None:
        for run in list(runs.values()):
            run.ctx.cancelled.set()
        for run in list(runs.values()):
            if run.thread is not None:
                run.thread.join(timeout=30)

    app.on_shutdown.append(stop_all)

    def find(run_id: str) -> _Run:
        run = runs.get(run_id)
        if run is None:
            raise ToolError(f"no benchmark run {run_id!r} in this server process (runs live until it stops; stored "
                            "reports stay in the data directory)")
        return run

    async def benchmark(
        suite: Annotated[Suite, Field(description=f"which suite: {suites.names_text()}")] = "mcp",
        quick: Annotated[bool, Field(description="fewer repetitions (seconds to a minute, not many minutes)")] = True,
    ) -> BenchmarkRun:
        # As `ansf bench` does: input the suite cannot use is refused now, not found minutes later as a failed run.
        probe = SuiteContext(quick=quick, project=app.settings.project_root, data_dir=app.settings.data_dir,
                             store=app.settings.store)
        try:
            await anyio.to_thread.run_sync(suites.check_input, suite, probe)
        except SuiteInputError as exc:
            raise ToolError(f"benchmark {suite}: {exc}; nothing was started") from exc
        with lock:
            busy = [r for r in runs.values() if r.state in ("running", "cancelling")]
            if busy:
                raise ToolError(f"benchmark run {busy[0].id} ({busy[0].suite}) is still running; follow it with "
                                "benchmark_status or stop it with benchmark_cancel (two runs would skew each other)")

            def report(fraction: float, message: str) -> None:
                run.progress, run.message = fraction, message

            # The server's own store, as `ansf bench --store` passes it: without it `scale` measured a throw-away
            # PostgreSQL cluster even on a server configured with one (the other suites keep their own on purpose:
            # suites.Suite.store, said in the report).
            ctx = SuiteContext(quick=quick, project=app.settings.project_root, data_dir=app.settings.data_dir,
                               store=app.settings.store, report=report)
            run = _Run(suite, quick, ctx)
            runs[run.id] = run
            run.thread = threading.Thread(target=work, args=(run,), name=f"ansf-{run.id}", daemon=True)
            run.thread.start()
        return run.view()

    benchmark.__doc__ = suites.tool_description()
    tools.add(Kind.WRITE, "Start a benchmark")(benchmark)

    @tools.add(Kind.READ, "Benchmark status")
    async def benchmark_status(run_id: RunId) -> Shrinking[BenchmarkRun]:
        """Progress of a benchmark run; once it succeeded, its report (also stored)."""
        return run_steps(find(run_id).view())

    @tools.add(Kind.IDEMPOTENT, "Cancel a benchmark")
    async def benchmark_cancel(run_id: RunId) -> BenchmarkRun:
        """Stop a benchmark run at its next progress step; nothing of it is stored."""
        run = find(run_id)
        if run.state == "running":
            run.ctx.cancelled.set()
            run.state, run.message = "cancelling", "stopping at the next progress step"
        return run.view()
