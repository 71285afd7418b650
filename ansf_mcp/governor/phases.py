"""Operating phases chosen from memory use, with hysteresis so a reading at an edge cannot flap.

critical (1): at most 2 active agents per swarm, no torch, caches trimmed, GC forced.
enhanced (2): up to 8 active agents per swarm, the neural coordinator.
optimal (3): no per-swarm cap below the agents' capacity; multi-swarm presets allowed.
"""

from __future__ import annotations

import gc
import logging
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from ansf_mcp.governor.memory import MemoryReading, read_memory
from ansf_mcp.settings import Settings
from ansf_mcp.store.db import Store

log = logging.getLogger(__name__)

PhaseName = Literal["critical", "enhanced", "optimal"]
# A phase's level: the one home of the ranking (higher is better; the dashboard draws it, hysteresis compares it).
RANK: dict[str, int] = {"critical": 1, "enhanced": 2, "optimal": 3}
LIMITS: dict[str, tuple[bool, int | None]] = {
    "critical": (False, 2),
    "enhanced": (True, 8),
    "optimal": (True, None),
}


def target_phase(fraction: float, current: str | None, settings: Settings) -> str:
    """The phase for a memory fraction; moving to a better phase needs `hysteresis` of headroom."""
    margin = settings.phase_hysteresis
    raw = (
        "critical"
        if fraction >= settings.phase_critical_at
        else "enhanced"
        if fraction >= settings.phase_enhanced_at
        else "optimal"
    )
    if current is None or RANK[raw] <= RANK[current]:
        return raw  # getting worse (or the first reading) takes effect at once
    # Getting better: only as far as the reading clears each threshold by the margin.
    if current == "critical" and fraction > settings.phase_critical_at - margin:
        return "critical"
    if raw == "optimal" and fraction > settings.phase_enhanced_at - margin:
        return "enhanced"
    return raw


@dataclass
class PhaseLimits:
    """What the current operating phase allows."""

    neural_allowed: bool = True
    max_active_agents: int | None = None
    phase: str = "not governed"  # what people read: "1 critical"
    reason: str = "no resource governor is running"
    name: PhaseName | None = None  # what code reads; None when not governed
    level: int | None = None  # RANK[name]


@dataclass
class Governor:
    settings: Settings
    on_change: list[Callable[[str, str, str, MemoryReading], None]] = field(default_factory=list)
    on_pressure: list[Callable[[], None]] = field(default_factory=list)
    # Readings are cached this long: limits() sits on hot tool paths.
    min_interval_s: float = 0.5
    phase: str | None = None
    reason: str = "not yet measured"
    reading: MemoryReading | None = None
    changes: Counter[str] = field(default_factory=Counter)
    # When readings expire; tests step it instead of sleeping.
    clock: Callable[[], float] = time.monotonic
    _read_at: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def refresh(self, force: bool = False) -> str:
        with self._lock:
            now = self.clock()
            if not force and self.phase is not None and now - self._read_at < self.min_interval_s:
                return self.phase
            self._read_at = now
            reading = read_memory(self.settings.cgroup_root)
            self.reading = reading
            new = target_phase(reading.fraction, self.phase, self.settings)
            old = self.phase
            # The reason describes the reading it rests on now, not the one of the last change: a page showing
            # "1.8 % used" beside a live 2.9 % misleads.
            self.reason = (
                f"memory {reading.fraction:.1%} used ({reading.used_bytes // 2**20} of "
                f"{reading.limit_bytes // 2**20} MiB, {reading.source}); thresholds: critical ≥ "
                f"{self.settings.phase_critical_at:.0%}, enhanced ≥ {self.settings.phase_enhanced_at:.0%}, "
                f"hysteresis {self.settings.phase_hysteresis:.0%}"
            )
            if new != old:
                self.phase = new
                if old is not None:  # the first reading is where this process starts, not a change
                    self.changes[f"{old}->{new}"] += 1
                    log.warning("operating phase %s -> %s: %s", old, new, self.reason)
                    for hook in self.on_change:
                        hook(old, new, self.reason, reading)
                if new == "critical":
                    self.relieve()
        return new

    def relieve(self) -> None:
        """Critical phase: let components drop caches, release loaded models, then collect garbage."""
        for hook in [*self.on_pressure, release_models]:
            try:
                hook()
            except Exception:  # relief is best effort; one failing cache must not stop the rest
                log.exception("pressure hook failed")
        gc.collect()

    def limits(self) -> PhaseLimits:
        phase = self.refresh()
        neural, max_agents = LIMITS[phase]
        return PhaseLimits(
            neural_allowed=neural, max_active_agents=max_agents, phase=f"{RANK[phase]} {phase}", reason=self.reason,
            name=phase, level=RANK[phase],  # type: ignore[arg-type]
        )

    def snapshot(self) -> dict[str, object]:
        limits = self.limits()
        r = self.reading
        return {
            "phase": limits.phase,
            "reason": limits.reason,
            "neural_allowed": limits.neural_allowed,
            "max_active_agents": limits.max_active_agents,
            "memory": None
            if r is None
            else {"used_bytes": r.used_bytes, "limit_bytes": r.limit_bytes, "fraction": round(r.fraction, 4),
                  "source": r.source, "bound": r.bound},
            "changes": dict(self.changes),
        }


def release_models() -> None:
    """Drop the coordinator's loaded networks, if this process loaded any (never imports torch to find out)."""
    neural = sys.modules.get("ansf_mcp.coordinator.neural")
    if neural is not None:
        neural.unload()


def record_phase_change(store: Store, old: str, new: str, reason: str, reading: MemoryReading) -> None:
    with store.transaction() as conn:
        conn.execute(
            "INSERT INTO phase_changes (from_phase, to_phase, reason, used_fraction, created_at) VALUES (?,?,?,?,?)",
            (old or None, new, reason, reading.fraction, time.time()),
        )
