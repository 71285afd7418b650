"""system_status: what the server is, where its data lives, and what it measures about itself right now."""

from __future__ import annotations

from ansf_mcp.tools.registry import Kind, Toolbox

from ansf_mcp.runtime import Runtime
from ansf_mcp.server.status import SystemStatus, live_status


def register(tools: Toolbox, app: Runtime) -> None:
    @tools.add(Kind.READ, "System status")
    async def system_status() -> SystemStatus:
        """Version, data directory, the store, measured memory and CPU, operating phase, loaded models, the
        estimators' realised scores, uptime."""
        return await live_status(app)
