"""Server assembly: the MCP server with every tool family registered over one AppContext."""

from __future__ import annotations

import logging
import sys

from mcp.server.mcpserver import MCPServer

from ansf_mcp import __version__
from ansf_mcp.governor.phases import Governor, record_phase_change
from ansf_mcp.server.context import AppContext
from ansf_mcp.settings import Settings
from ansf_mcp.store.db import Store

INSTRUCTIONS = (
    "Coordinate agent swarms: spawn_swarm, then coordinate(tasks) to put work on the board and assign it; "
    "agents claim work with next_task and report with report_outcome, which feeds future assignments."
)


def configure_logging(level: str) -> None:
    """Everything to stderr: in stdio mode stdout carries the protocol and nothing else."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(level)


def build_server(settings: Settings) -> tuple[MCPServer, AppContext]:
    # Imported here so that the core never imports the tool surface at module import time.
    from ansf_mcp.tools import bench_tools, semantic_tools, swarm_tools, system_tools
    from ansf_mcp.tools.registry import Toolbox, tool_server

    configure_logging(settings.log_level)
    app = AppContext(settings=settings, store=Store(settings.db_path))
    app.governor = Governor(settings)
    app.governor.on_change.append(lambda old, new, reason, reading: record_phase_change(app.store, old, new, reason, reading))
    app.governor.refresh(force=True)
    server = tool_server("ansf-mcp", version=__version__, instructions=INSTRUCTIONS, log_level=settings.log_level)
    tools = Toolbox(server)
    for family in (swarm_tools, system_tools, semantic_tools, bench_tools):
        family.register(tools, app)
    app.ready = True
    return server, app
