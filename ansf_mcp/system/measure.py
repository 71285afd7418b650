"""What the server can say about itself, measured at the moment of asking."""

from __future__ import annotations

import os
import platform
import sys

import psutil
from pydantic import BaseModel


class ProcessFigures(BaseModel):
    pid: int
    rss_bytes: int
    cpu_percent: float
    threads: int


class MachineFigures(BaseModel):
    cpu_count: int | None = None
    memory_total_bytes: int
    memory_available_bytes: int
    memory_used_percent: float
    load_average_1m: float | None = None
    python: str
    platform: str


def process_rss(proc: psutil.Process | None = None) -> int:
    """Resident memory of a process (this one by default): the one home of RSS readings."""
    return int((proc or _PROC).memory_info().rss)


def tree_rss(pid: int) -> int:
    """Resident memory of a process and all its descendants (a server and its language servers)."""
    p = psutil.Process(pid)
    return sum(q.memory_info().rss for q in [p, *p.children(recursive=True)])


def peak_rss(pid: int | str = "self") -> int | None:
    """The peak resident set of a live process (VmHWM from /proc; getrusage's ru_maxrss survives fork+exec, so a
    child would report its parent's peak), None where /proc does not say."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            line = next((ln for ln in fh if ln.startswith("VmHWM:")), None)
    except OSError:
        return None
    return int(line.split()[1]) * 1024 if line else None


def process_figures() -> ProcessFigures:
    with _PROC.oneshot():
        return ProcessFigures(
            pid=_PROC.pid,
            rss_bytes=process_rss(),
            # Since the previous call on this (module-wide) Process object, so it needs to be the same one.
            cpu_percent=_PROC.cpu_percent(None),
            threads=_PROC.num_threads(),
        )


def machine_figures() -> MachineFigures:
    vm = psutil.virtual_memory()
    return MachineFigures(
        cpu_count=os.cpu_count(),
        memory_total_bytes=vm.total,
        memory_available_bytes=vm.available,
        memory_used_percent=vm.percent,
        load_average_1m=os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        python=sys.version.split()[0],
        platform=platform.platform(),
    )


def loaded_models() -> dict[str, object]:
    """Which heavy pieces this process has actually loaded (not which it could load)."""
    info: dict[str, object] = {"torch_imported": "torch" in sys.modules}
    neural = sys.modules.get("ansf_mcp.coordinator.neural")
    loaded = getattr(neural, "loaded_profiles", None)
    info["neural_profiles"] = loaded() if callable(loaded) else []
    return info


_PROC = psutil.Process()
_PROC.cpu_percent(None)
