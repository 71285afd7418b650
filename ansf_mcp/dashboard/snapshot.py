"""The dashboard snapshot: one typed shape that the collector fills, /api/snapshot and the page's WebSocket send,
and /metrics renders. Sections whose shape belongs to another component (calibration tables, estimator scores,
replay cells, the semantic layer's status) stay plain JSON objects inside it."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class MemoryView(BaseModel):
    used_bytes: int | None = None
    limit_bytes: int | None = None
    fraction: float | None = None
    source: str = ""
    bound: str = ""  # "cgroup limit" or "physical memory": which one limit_bytes is


class PhaseView(BaseModel):
    phase: str = "unknown"  # "1 critical"
    level: int | None = None  # 1 critical, 2 enhanced, 3 optimal (the governor's RANK)
    reason: str = ""
    neural_allowed: bool | None = None
    max_active_agents: int | None = None
    last_change: dict[str, Any] | None = None
    changes: list[dict[str, Any]] = Field(default_factory=list)


class FigureView(BaseModel):
    value: float | None = None
    samples: int = 0
    note: str = ""
    strategy: str | None = None


class Rates(BaseModel):
    claims_per_min: float | None = None
    outcomes_per_min: float | None = None
    claims_total: int | None = None
    outcomes_total: dict[str, int] | None = None  # "success" / "failure"


class BenchmarkView(BaseModel):
    """The newest stored value ratios: SIMULATED by definition."""

    id: int
    suite: str
    created_at: float
    data: str = "simulated"
    measured_on: str = ""
    value_ratios: list[dict[str, Any]]


class Snapshot(BaseModel):
    ts: float
    interval_s: float
    memory: MemoryView
    phase: PhaseView
    tasks: dict[str, int]
    rates: Rates
    figures: dict[str, FigureView]
    calibration: dict[str, Any]
    estimators: dict[str, Any] | None = None
    benchmark: BenchmarkView | None = None
    model_load: FigureView
    replay: dict[str, Any] | None = None
    semantic: dict[str, Any] | None = None
    points: dict[str, float] = Field(description="this collection's numeric figures, one per series; finite only")
    trends: dict[str, dict[str, Any]]
    thresholds: dict[str, dict[str, Any]]
    alert_window_s: float
    failed: dict[str, str] = Field(description="sections that could not be measured this round, and why")
    live: bool = Field(default=False, description="pushed on board news between collections: only tasks, the "
                       "claims counter and their points were read again")

    def as_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")
