"""The public episode and result formats (docs/COORDINATION.md)."""

from __future__ import annotations

from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, model_validator

# The one registry of strategy names: the CLI, the tools' schema, the lab and the benchmarks all read these two.
Strategy = Literal["auto", "neural", "similarity", "history", "tags", "round-robin"]
STRATEGIES: tuple[str, ...] = get_args(Strategy)
# Strategies that are neither `auto` nor the network: the non-learned estimators every table compares against.
NON_LEARNED: tuple[str, ...] = tuple(s for s in STRATEGIES if s not in ("auto", "neural"))


class ModelUnavailable(RuntimeError):
    """The neural coordinator cannot be used (no checkpoint, bad checkpoint, not enough memory...)."""

MAX_TEXT_CHARS = 8_000
MAX_AGENTS = 1_000
MAX_TASKS = 5_000
MAX_HISTORY = 500


class HistoryItem(BaseModel):
    model_config = ConfigDict(extra="ignore")
    task: str = Field(max_length=MAX_TEXT_CHARS)
    success: bool


class EpisodeAgent(BaseModel):
    model_config = ConfigDict(extra="ignore")
    id: str = Field(min_length=1, max_length=200)
    role: str = Field(default="", max_length=200)
    capabilities: list[str] = Field(default_factory=list, max_length=100)
    capacity: int = Field(default=1, ge=1, le=1_000)
    history: list[HistoryItem] = Field(default_factory=list, max_length=MAX_HISTORY)


class EpisodeTask(BaseModel):
    model_config = ConfigDict(extra="ignore")
    id: str = Field(min_length=1, max_length=200)
    description: str = Field(min_length=1, max_length=MAX_TEXT_CHARS)
    priority: int = Field(default=1, ge=0, le=1_000)
    depends_on: list[str] = Field(default_factory=list, max_length=200)


class Episode(BaseModel):
    model_config = ConfigDict(extra="ignore")
    id: str = Field(default="", max_length=200)
    agents: list[EpisodeAgent] = Field(min_length=1, max_length=MAX_AGENTS)
    tasks: list[EpisodeTask] = Field(default_factory=list, max_length=MAX_TASKS)

    @model_validator(mode="after")
    def _unique_ids(self) -> Episode:
        for kind, ids in (("agent", [a.id for a in self.agents]), ("task", [t.id for t in self.tasks])):
            seen: set[str] = set()
            for i in ids:
                if i in seen:
                    raise ValueError(f"duplicate {kind} id {i!r}")
                seen.add(i)
        return self


class Assignment(BaseModel):
    task: str
    agent: str
    p_success: float | None = Field(
        ge=0.0, le=1.0, description="estimated chance that the work succeeds if this agent does it (the success model, "
        "not the fit the assignment was ranked by); null for strategies that only rank"
    )
    confidence: float = Field(ge=0.0, le=1.0, description="0.5 + margin over the best other agent, clipped")


class Unassigned(BaseModel):
    task: str
    reason: str


class CoordinationResult(BaseModel):
    id: str
    strategy: str
    model: str | None = None
    assignments: list[Assignment]
    unassigned: list[Unassigned]
    elapsed_ms: float
    reason: str | None = Field(default=None, description="Why `auto` chose this estimator.")
    note: str | None = Field(
        default=None, description="Why the strategy differs from the one asked for, when it does."
    )
