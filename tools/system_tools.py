"""system_status: what the server is, where its data lives, and what it measures about itself right now."""

from __future__ import annotations

from typing import Any

from ansf_mcp.tools.registry import Kind, Toolbox
from pydantic import BaseModel, Field

from ansf_mcp import __version__
from ansf_mcp.board import scores
from ansf_mcp.coordinator import scoring
from ansf_mcp.coordinator.profiles import DEFAULT_PROFILE
from ansf_mcp.coordinator.scoring import EstimatorScore
from ansf_mcp.runtime import Runtime
from ansf_mcp.system.measure import (
    MachineFigures,
    ProcessFigures,
    loaded_models,
    machine_figures,
    process_figures,
)


class SystemStatus(BaseModel):
    version: str
    uptime_s: float
    data_dir: str
    database: str
    schema_version: int
    store_engine: str = Field(default="sqlite", description="the store's engine and its version")
    project_root: str
    transport: str
    process: ProcessFigures
    machine: MachineFigures
    phase: dict[str, Any]
    models: dict[str, Any]
    estimators: list[EstimatorScore] = Field(
        description="realised predictive scores of each probabilistic estimator over every swarm's outcomes"
    )
    components: dict[str, Any]


def collect(app: Runtime) -> SystemStatus:
    limits = app.limits()
    with app.store.reading() as conn:
        estimators = scoring.scores(scores.overall(conn), list(scoring.AUTO_CANDIDATES))
    components: dict[str, Any] = {}
    for name, provider in app.status_providers.items():
        try:
            components[name] = provider()
        except Exception as exc:
            components[name] = {"error": f"{type(exc).__name__}: {exc}"}
    return SystemStatus(
        version=__version__,
        uptime_s=app.uptime_s(),
        data_dir=str(app.settings.data_dir),
        database=app.store.location,
        schema_version=app.store.schema_version,
        store_engine=f"{app.store.engine} {app.store.engine_version}",
        project_root=str(app.settings.project_root),
        transport=app.settings.transport,
        process=process_figures(),
        machine=machine_figures(),
        phase=app.governor.snapshot()
        if app.governor
        else {"phase": limits.phase, "reason": limits.reason},
        models={**loaded_models(), "default_profile": DEFAULT_PROFILE},
        estimators=estimators,
        components=components,
    )


def register(tools: Toolbox, app: Runtime) -> None:
    @tools.add(Kind.READ, "System status")
    async def system_status() -> SystemStatus:
        """Version, data directory, measured memory and CPU, operating phase, loaded models, the estimators'
        realised scores, uptime."""
        return collect(app)
