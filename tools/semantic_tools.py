"""Semantic tools: symbols, definitions and references through real language servers (thin over the core)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import anyio
from ansf_mcp.semantic.models import Definitions, FoundSymbols, References, SymbolsOverview
from ansf_mcp.semantic.service import USER_ERRORS, SemanticService
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations

if TYPE_CHECKING:
    from mcp.server.mcpserver import MCPServer

log = logging.getLogger(__name__)

READ_ONLY = ToolAnnotations(read_only_hint=True, idempotent_hint=True, destructive_hint=False,
                            open_world_hint=False)


def register(server: MCPServer, app: Any) -> None:
    """Add the four semantic tools; language servers start lazily on first use."""
    register_with_service(server, app)


def register_with_service(server: MCPServer, app: Any, **service_options: Any) -> SemanticService:
    """`register`, returning the service (tests and the benchmark use it)."""
    settings = app.settings
    service = SemanticService(settings.project_root, settings.data_dir, **service_options)

    async def _run(fn, *args):
        try:
            return await anyio.to_thread.run_sync(fn, *args)
        except USER_ERRORS as exc:
            raise ToolError(str(exc)) from exc

    async def symbols_overview(relative_path: str, depth: int = 0) -> SymbolsOverview:
        return SymbolsOverview.model_validate(await _run(service.symbols_overview, relative_path, depth))

    async def find_symbol(name_path: str, relative_path: str | None = None, include_body: bool = False,
                          substring: bool = False, max_matches: int = 50) -> FoundSymbols:
        return FoundSymbols.model_validate(
            await _run(service.find_symbol, name_path, relative_path, include_body, substring, max_matches))

    async def find_references(name_path: str, relative_path: str) -> References:
        return References.model_validate(await _run(service.find_references, name_path, relative_path))

    async def goto_definition(relative_path: str, line: int, column: int) -> Definitions:
        return Definitions.model_validate(await _run(service.goto_definition, relative_path, line, column))

    server.add_tool(symbols_overview, name="symbols_overview", annotations=READ_ONLY,
                    description="Top-level symbols of a file or folder (relative_path); depth>0 adds children.")
    server.add_tool(find_symbol, name="find_symbol", annotations=READ_ONLY,
                    description="Find symbols by name path ('Class/method', '/top', 'f[1]'), optionally in a "
                                "file or folder; include_body returns source.")
    server.add_tool(find_references, name="find_references", annotations=READ_ONLY,
                    description="References to the symbol name_path defined in relative_path (1-based "
                                "lines/columns, enclosing symbol, context).")
    server.add_tool(goto_definition, name="goto_definition", annotations=READ_ONLY,
                    description="Definition(s) of the name at relative_path:line:column (1-based).")

    providers = getattr(app, "status_providers", None)
    if isinstance(providers, dict):
        providers["semantic"] = service.status
    hooks = getattr(app, "on_shutdown", None)
    if isinstance(hooks, list):
        hooks.append(service.shutdown)
    return service
