"""Server assembly: the MCP server with every tool family registered over one runtime."""

from __future__ import annotations

from collections.abc import Callable

from mcp.server.mcpserver import MCPServer
from mcp.server.subscriptions import InMemorySubscriptionBus

from ansf_mcp import __version__
from ansf_mcp.runtime import Runtime, configure_logging
from ansf_mcp.server.families import AGENT_TOOLS, TOOL_FAMILIES
from ansf_mcp.settings import Settings

INSTRUCTIONS = (
    "Coordinate agent swarms: spawn_swarm, then coordinate(tasks) to put work on the board and assign it; "
    "agents claim work with next_task and report with report_outcome, which feeds future assignments."
)


def build_server(settings: Settings, *, clock: Callable[[], float] | None = None,
                 tools: tuple[str, ...] | None = None) -> tuple[MCPServer[Runtime], Runtime]:
    """The MCP server over a runtime built from `settings` (`clock`: the board's time, for tests; `tools`: the
    tool families to register, all when None, for clients that pay for every tool description).

    The runtime starts and stops in the SDK's lifespan: once per stdio run, once per Streamable HTTP app (the
    session manager enters it), and nested inside the HTTP app's own lifespan for SSE.
    """
    # Imported here so that the core never imports the tool surface at module import time.
    from ansf_mcp.server.subset import Subset
    from ansf_mcp.tools import app as board_app
    from ansf_mcp.tools import bench_tools, prompts, resources, semantic_tools, swarm_tools, system_tools
    from ansf_mcp.tools.registry import Toolbox, tool_server

    configure_logging(settings.log_level)
    runtime = Runtime.open(settings)
    if clock is not None:
        runtime.clock = clock
    wanted = set(tools or TOOL_FAMILIES)
    bus = InMemorySubscriptionBus()  # subscriptions/listen's fan-out; the resources tell it of board changes
    server = tool_server(
        "ansf-mcp",
        # The board view (an MCP App) goes with the board tools; extensions are fixed when the server is built.
        extensions=[board_app.extension()] if wanted & {"board", "agent"} else None,
        version=__version__,
        instructions=INSTRUCTIONS,
        log_level=settings.log_level,
        lifespan=lambda _server: runtime.serving(),
        subscriptions=bus,
    )
    if "board" in wanted:
        swarm_tools.register(Toolbox(server), runtime)
    elif "agent" in wanted:
        swarm_tools.register(Subset(server, AGENT_TOOLS), runtime)
    for name, family in (("system", system_tools), ("semantic", semantic_tools), ("bench", bench_tools)):
        if name in wanted:
            family.register(Toolbox(server), runtime)
    if wanted & {"board", "agent"}:
        resources.register(server, runtime, bus)
        prompts.register(server)
    return server, runtime

