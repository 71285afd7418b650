"""This machine's memory and the operating phase, as the governor reads them (one home for each: the governor)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from ansf_mcp.governor.memory import MemoryReading, read_memory


def memory_figures(reading: MemoryReading) -> dict[str, Any]:
    return {"used_bytes": int(reading.used_bytes), "limit_bytes": int(reading.limit_bytes) or None,
            "fraction": float(reading.fraction), "source": str(reading.source),
            "bound": str(reading.bound)}


def memory_reading(cgroup_root: Path | str = "/sys/fs/cgroup") -> dict[str, Any]:
    """The governor's reading: cgroup-aware (the limit this process is killed at), else the host's (psutil)."""
    return memory_figures(read_memory(Path(cgroup_root)))


def phase_info(app: Any, conn: sqlite3.Connection) -> dict[str, Any]:
    """This process's phase (app.limits()) and the last phase change any process recorded in the store."""
    current: dict[str, Any]
    try:
        limits = app.limits()
        current = {
            "phase": limits.phase,
            "level": limits.level,
            "reason": limits.reason,
            "neural_allowed": limits.neural_allowed,
            "max_active_agents": limits.max_active_agents,
        }
    except Exception as exc:
        current = {"phase": "unknown", "level": None, "reason": f"limits() failed: {type(exc).__name__}: {exc}"}
    recent = conn.execute(
        "SELECT from_phase, to_phase, reason, used_fraction, created_at FROM phase_changes ORDER BY id DESC LIMIT 10"
    ).fetchall()
    current["changes"] = [dict(r) for r in recent]
    current["last_change"] = current["changes"][0] if current["changes"] else None
    return current
