"""What the server is, where its data lives and what it measures about itself: one builder for the
`system_status` tool (a running server) and `ansf status` (no server, read from the settings and the store)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from ansf_mcp import __version__
from ansf_mcp.coordinator.scoring import EstimatorScore
from ansf_mcp.governor.phases import Governor
from ansf_mcp.runtime import Runtime
from ansf_mcp.settings import Settings
from ansf_mcp.store.db import StoreInfo, peek
from ansf_mcp.system.measure import (
    MachineFigures,
    ProcessFigures,
    loaded_models,
    machine_figures,
    process_figures,
)

# system_status answers within about this long even when the store does not: the store's part is then left out.
STORE_DEADLINE_S = 0.5


class SystemStatus(BaseModel):
    version: str
    data_dir: str
    project_root: str
    store: StoreInfo = Field(description="the store's engine and version, location, schema, and what it holds")
    phase: dict[str, Any]
    machine: MachineFigures
    models: dict[str, Any]
    transport: str | None = Field(default=None, description="the running server's transport")
    uptime_s: float | None = None
    process: ProcessFigures | None = None
    estimators: list[EstimatorScore] = Field(
        default_factory=list,
        description="realised predictive scores of each probabilistic estimator over every swarm's outcomes: raw "
                    "(p as given); the recalibrated ones that auto compares are per swarm (swarm_status)",
    )
    components: dict[str, Any] = Field(default_factory=dict)


def shipped_models() -> dict[str, Any]:
    """What `auto` would load, read from the checkpoint files (torch stays unimported)."""
    from ansf_mcp.coordinator.profiles import CHECKPOINT_DIR, DEFAULT_PROFILE, PROFILES

    files = {p.name: p.stat().st_size for p in sorted(CHECKPOINT_DIR.glob("*.safetensors"))}
    return {"default_profile": DEFAULT_PROFILE, "profiles": list(PROFILES), "checkpoint_bytes": files}


def build_status(settings: Settings, store: StoreInfo, phase: dict[str, Any], **live: Any) -> SystemStatus:
    """The figures both callers report; `live`: what only a running server knows (uptime, process...)."""
    return SystemStatus(
        version=__version__,
        data_dir=str(settings.data_dir),
        project_root=str(settings.project_root),
        store=store,
        phase=phase,
        machine=machine_figures(),
        models={**loaded_models(), **shipped_models()},
        **live,
    )


def offline_status(settings: Settings) -> SystemStatus:
    """`ansf status`: the store as it is on disk or on its server (a missing SQLite file is not created)."""
    return build_status(settings, peek(settings.store_spec, **settings.store_options), Governor(settings).snapshot())


async def live_status(app: Runtime) -> SystemStatus:
    """`system_status`: the store's part is read off the event loop and left out if the store does not answer
    within STORE_DEADLINE_S (a lock held from outside, a hung database), so the answer never waits on it."""
    board = app.board

    def from_store() -> tuple[StoreInfo, list[EstimatorScore]]:
        return app.store.describe(), board.estimator_scores()

    read = await board.read_within(STORE_DEADLINE_S, from_store)
    if read is None:
        store = StoreInfo(engine=app.store.engine, engine_version=app.store.engine_version,
                          location=app.store.location, schema_version=app.store.schema_version,
                          error=f"the store did not answer within {STORE_DEADLINE_S:g} s; its figures are left out")
        estimators: list[EstimatorScore] = []
    else:
        store, estimators = read
    components: dict[str, Any] = {}
    for name, provider in app.status_providers.items():
        try:
            components[name] = provider()
        except Exception as exc:
            components[name] = {"error": f"{type(exc).__name__}: {exc}"}
    phase = (app.governor.snapshot() if app.governor
             else {"phase": app.limits().phase, "reason": app.limits().reason})
    return build_status(app.settings, store, phase, transport=app.settings.transport, uptime_s=app.uptime_s(),
                        process=process_figures(), estimators=estimators, components=components)


__all__ = ["SystemStatus", "build_status", "live_status", "offline_status"]
