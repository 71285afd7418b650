"""The benchmark report as stored and served: one typed shape that the runner writes, the `benchmark` tool returns
and the dashboard reads (it no longer guesses where value ratios sit)."""

from __future__ import annotations

import math
from typing import Any

from pydantic import BaseModel, Field


class ValueRatio(BaseModel):
    """One bar of coordination quality: Σ p* chosen ÷ Σ p* of the oracle. SIMULATED by definition (only a
    simulator knows the true success probabilities, docs/COORDINATION.md)."""

    label: str
    mean: float
    ci: tuple[float, float] | None = Field(default=None, description="95 % confidence interval")


class MachineInfo(BaseModel):
    cpu_count: int | None = None
    memory_total_bytes: int
    gpu: str
    platform: str
    python: str


class BenchmarkReport(BaseModel):
    suite: str
    version: str
    commit: str | None = None
    machine: MachineInfo
    started_at: float
    duration_s: float
    quick: bool
    results: dict[str, dict[str, Any]] = Field(description="per suite: its own figures, or {error}")
    value_ratios: list[ValueRatio] = Field(default_factory=list,
                                           description="coordination quality the suites measured (simulated)")
    markdown: str


def ratio(label: str, mean: Any, half_width: Any) -> ValueRatio | None:
    """A bar from a mean and a CI half-width, None when the mean is missing or not finite."""
    if not isinstance(mean, int | float) or isinstance(mean, bool) or not math.isfinite(mean):
        return None
    ok = isinstance(half_width, int | float) and not isinstance(half_width, bool) and math.isfinite(half_width)
    return ValueRatio(label=label, mean=float(mean),
                      ci=(float(mean) - float(half_width), float(mean) + float(half_width)) if ok else None)
