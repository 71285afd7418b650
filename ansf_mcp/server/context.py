"""What every tool module receives: settings, the store, and hooks to report status and shut down."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ansf_mcp.settings import Settings
from ansf_mcp.store.db import Store

if TYPE_CHECKING:
    from ansf_mcp.governor.phases import Governor


@dataclass
class PhaseLimits:
    """What the current operating phase allows; the resource governor (issue 5) will set these."""

    neural_allowed: bool = True
    max_active_agents: int | None = None
    phase: str = "not governed"
    reason: str = "no resource governor is running yet"


@dataclass
class AppContext:
    settings: Settings
    store: Store
    started_at: float = field(default_factory=time.time)
    ready: bool = False
    status_providers: dict[str, Callable[[], dict[str, Any]]] = field(default_factory=dict)
    on_shutdown: list[Callable[[], None]] = field(default_factory=list)
    governor: Governor | None = None

    def limits(self) -> PhaseLimits:
        return self.governor.limits() if self.governor else PhaseLimits()

    def uptime_s(self) -> float:
        return round(time.time() - self.started_at, 3)

    def shutdown(self) -> None:
        for hook in reversed(self.on_shutdown):
            try:
                hook()
            except Exception:
                import logging

                logging.getLogger(__name__).exception("shutdown hook failed")
        self.store.close()
