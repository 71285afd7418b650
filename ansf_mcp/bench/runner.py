"""Running suites: one report format with provenance, kept in the store, written as JSON, Markdown and charts."""

from __future__ import annotations

import contextlib
import logging
import os
import platform
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ansf_mcp import __version__
from ansf_mcp.bench import suites
from ansf_mcp.bench.context import BenchCancelled, SuiteContext, SuiteInputError
from ansf_mcp.store.db import Store, StoreError, open_store
from ansf_mcp.system.report import BenchmarkReport, MachineInfo, ValueRatio

if TYPE_CHECKING:
    from ansf_mcp.settings import Settings

SUITE_NAMES = suites.NAMES
log = logging.getLogger(__name__)


def failure(exc: BaseException) -> str:
    """What failed, for the report: the exceptions inside a task group (its own message only counts them), each
    with the line that raised it."""
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(failure(inner) for inner in exc.exceptions)
    where = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
    at = f" (at {Path(where[0].filename).name}:{where[0].lineno})" if where else ""
    return f"{type(exc).__name__}: {exc}{at}"


def commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(__file__).resolve().parent,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return (out.stdout.strip() or None) if out.returncode == 0 else None


def machine() -> MachineInfo:
    from ansf_mcp.system.measure import machine_figures

    gpu = None
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=5)
        gpu = out.stdout.strip() or None if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        pass
    return MachineInfo(
        cpu_count=os.cpu_count(),
        memory_total_bytes=machine_figures().memory_total_bytes,
        gpu=gpu or "none found (nvidia-smi absent or no device); suites run on the CPU",
        platform=platform.platform(),
        python=sys.version.split()[0],
    )


def run_suite(suite: str, ctx: SuiteContext) -> BenchmarkReport:
    if suite not in SUITE_NAMES:
        raise ValueError(f"unknown suite {suite!r}; available: {', '.join(SUITE_NAMES)}")
    names = suites.ALL_ORDER if suite == suites.ALL else (suite,)
    started = time.time()
    results: dict[str, Any] = {}
    ratios: list[ValueRatio] = []
    sections = []
    report_progress = ctx.report
    for k, name in enumerate(names):
        record = suites.BY_NAME[name]
        run, markdown, source = record.run_fn(), record.markdown_fn(), record.source
        ctx.report = _scaled(report_progress, k / len(names), (k + 1) / len(names), name)
        t0 = time.time()
        try:
            result = run(ctx)
        except BenchCancelled:
            raise
        except SuiteInputError as exc:  # known and said in one sentence: no traceback
            log.error("suite %s: %s", name, exc)
            result = {"error": str(exc)}
        except Exception as exc:  # a suite that fails says so in the report; the others still run
            log.error("suite %s failed", name, exc_info=exc)
            result = {"error": failure(exc)}
        result["duration_s"] = round(time.time() - t0, 2)
        result["source"] = source
        ctx.previous[name] = result
        results[name] = result
        ratios += record.value_ratios(result)
        body = f"**failed:** {result['error']}" if "error" in result else markdown(result)
        result["store"] = record.store
        sections.append(f"## {name}\n\nSource: {source}. Store measured: {record.store}. Took {result['duration_s']} s."
                        f"\n\n{body}\n")
    ctx.report = report_progress
    ctx.progress(1.0, f"{suite}: done")
    return BenchmarkReport(
        suite=suite, version=__version__, commit=commit(), machine=machine(), started_at=started,
        duration_s=round(time.time() - started, 2), quick=ctx.quick, results=results, value_ratios=ratios,
        markdown="\n".join(sections),
    )


def _scaled(report: Callable[[float, str], None], start: float, end: float, name: str) -> Callable[[float, str], None]:
    return lambda f, m: report(start + (end - start) * f, f"{name}: {m}")


def keep(report: BenchmarkReport, store: Store) -> int:
    """Store the run so later runs (and the dashboard) can compare against it."""
    with store.transaction() as conn:
        cur = conn.execute(
            "INSERT INTO benchmark_runs (suite, created_at, report) VALUES (?, ?, ?) RETURNING id",
            (report.suite, report.started_at, report.model_dump_json()),
        )
        run_id = cur.fetchone()[0]
    return int(run_id)


def prepare_out_dir(out_dir: Path) -> None:
    """Create the report folder and make sure files can be written in it: checked before a run, which may take
    minutes, rather than after it."""
    out_dir.mkdir(parents=True, exist_ok=True)
    if not os.access(out_dir, os.W_OK | os.X_OK):
        raise PermissionError(f"cannot write in {out_dir}")


def write_outputs(report: BenchmarkReport, out_dir: Path) -> list[Path]:
    from ansf_mcp.bench.charts import draw_charts

    prepare_out_dir(out_dir)
    header = (
        f"# ANSF-MCP benchmark: {report.suite}\n\nVersion {report.version}, commit {report.commit}, "
        f"{report.machine.cpu_count} CPUs, GPU: {report.machine.gpu}, "
        f"started {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime(report.started_at))}, "
        f"took {report.duration_s} s{' (quick)' if report.quick else ''}.\n\n"
    )
    written = [out_dir / "report.json", out_dir / "report.md"]
    written[0].write_text(report.model_dump_json(indent=2))
    written[1].write_text(header + report.markdown)
    written += draw_charts(report, out_dir)
    return written


def run_cli(
    suite: str, *, json_path: Path | None, out_dir: Path | None, quick: bool, data_dir: Path | None,
    project: Path | None, repo: Path | None = None, store: str | None = None,
) -> int:
    from pydantic import ValidationError

    from ansf_mcp.settings import Settings, invalid_setting

    try:
        settings = Settings.load(data_dir=data_dir, project_root=project, store=store)
    except ValidationError as exc:
        print(f"ansf bench: invalid setting: {invalid_setting(exc)}", file=sys.stderr)
        return 2

    def progress(fraction: float, message: str) -> None:
        print(f"[{fraction:4.0%}] {message}", file=sys.stderr, flush=True)

    ctx = SuiteContext(
        quick=quick, project=settings.project_root, data_dir=settings.data_dir, report=progress, store=settings.store,
        repo=repo.resolve() if repo else None,
    )
    out = out_dir or settings.data_dir / "bench" / time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    out_is_new = not out.exists()
    # Everything a run needs at its end is checked before it starts: a run takes minutes, and an unwritable folder
    # or an unreachable store found afterwards lost its report.
    refusal = _refusal(suite, ctx, settings, out, json_path)
    if refusal:
        print(f"ansf bench: {refusal}", file=sys.stderr)
        return 2
    try:
        report = run_suite(suite, ctx)
    except KeyboardInterrupt:
        # A suite stopped halfway has no figures worth keeping: nothing is stored or written, and the report folder
        # made for this run does not stay behind empty.
        if out_is_new:
            with contextlib.suppress(OSError):
                out.rmdir()
        print("ansf bench: interrupted; nothing stored or written", file=sys.stderr)
        return 130
    print(report.markdown)  # first: a store or disk that fails now cannot hide the results
    failed = [name for name, r in report.results.items() if "error" in r]
    code = 1 if failed else 0
    try:
        with contextlib.closing(open_store(settings.store_spec, **settings.store_options)) as kept:
            stored = f"run {keep(report, kept)} stored in {settings.store_label}"
    except StoreError as exc:
        stored, code = f"run not stored: {exc}", 1
    try:
        written = write_outputs(report, out)
        if json_path:
            json_path.write_text(report.model_dump_json(indent=2))
            written.append(json_path)
        files = "written: " + ", ".join(str(p) for p in written)
    except OSError as exc:
        files, code = f"report files not written: {exc}", 1
    print(f"\n{stored}; {files}")
    return code


def _can_write(path: Path) -> bool:
    """Whether `path` can be written, found by opening it as the report will be: os.access on its folder says yes
    to root everywhere (/proc included) and says nothing of a read-only file already there."""
    existed = path.exists()
    try:
        with path.open("a"):
            pass
    except OSError:
        return False
    if not existed:
        path.unlink(missing_ok=True)
    return True


def _refusal(suite: str, ctx: SuiteContext, settings: Settings, out: Path, json_path: Path | None) -> str | None:
    """Why `ansf bench` cannot run `suite` as asked (None: it can): an unknown suite, a --json file or report folder
    that cannot be written, a store that cannot be opened, or an input the named suite cannot use."""
    if suite not in SUITE_NAMES:
        return f"unknown suite {suite!r}; available: {', '.join(SUITE_NAMES)}"
    if json_path is not None and not _can_write(json_path):
        return f"cannot write the JSON report to {json_path}"
    try:
        open_store(settings.store_spec, **settings.store_options).close()
    except StoreError as exc:
        return str(exc)
    try:
        suites.check_input(suite, ctx)
    except SuiteInputError as exc:
        return str(exc)
    try:  # last: a refused run leaves no empty report folder behind
        prepare_out_dir(out)
    except OSError as exc:
        return f"cannot write the report to {out}: {exc.strerror or exc}"
    return None
