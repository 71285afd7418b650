"""Running suites: one report format with provenance, kept in the store, printed and optionally written."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ansf_mcp import __version__

Progress = Callable[[float, str], None]
SUITES = ("mcp",)


def commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
            cwd=Path(__file__).resolve().parent,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def machine() -> dict[str, Any]:
    import psutil

    return {
        "cpu_count": os.cpu_count(),
        "memory_total_bytes": psutil.virtual_memory().total,
        "gpu": None,  # the suites here run on the CPU; a GPU, if present, is not used by them
        "platform": platform.platform(),
        "python": sys.version.split()[0],
    }


def run_suite(suite: str, *, quick: bool = False, progress: Progress | None = None) -> dict[str, Any]:
    if suite not in SUITES:
        raise ValueError(f"unknown suite {suite!r}; available: {', '.join(SUITES)}")
    started = time.time()
    from ansf_mcp.bench import mcp_suite

    results = mcp_suite.run(quick=quick, progress=progress)
    table = mcp_suite.markdown(results)
    return {
        "suite": suite,
        "version": __version__,
        "commit": commit(),
        "machine": machine(),
        "started_at": started,
        "duration_s": round(time.time() - started, 2),
        "quick": quick,
        "results": results,
        "markdown": table,
    }


def keep(report: dict[str, Any], data_dir: Path | None) -> None:
    from ansf_mcp.settings import Settings
    from ansf_mcp.store.db import Store

    store = Store(Settings.load(data_dir=data_dir).db_path)
    with store.transaction() as conn:
        conn.execute(
            "INSERT INTO benchmark_runs (suite, created_at, report) VALUES (?, ?, ?)",
            (report["suite"], report["started_at"], json.dumps(report)),
        )
    store.close()


def run_cli(suite: str, *, json_path: Path | None, quick: bool, data_dir: Path | None) -> int:
    def progress(fraction: float, message: str) -> None:
        print(f"[{fraction:4.0%}] {message}", file=sys.stderr)

    try:
        report = run_suite(suite, quick=quick, progress=progress)
    except (ValueError, RuntimeError) as exc:
        print(f"ansf bench: {exc}", file=sys.stderr)
        return 2
    keep(report, data_dir)
    print(f"# ansf bench --suite {suite}  (commit {report['commit']}, {report['machine']['cpu_count']} CPUs)")
    print(report["markdown"])
    if json_path:
        json_path.write_text(json.dumps(report, indent=2))
    return 0
