"""Semantic tools: symbols, definitions and references through real language servers (thin over the core)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import anyio
from ansf_mcp.semantic.models import Definitions, FoundSymbols, References, SymbolsOverview
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations

if TYPE_CHECKING:
    from ansf_mcp.semantic.service import SemanticService
    from mcp.server.mcpserver import MCPServer

log = logging.getLogger(__name__)

READ_ONLY = ToolAnnotations(read_only_hint=True, idempotent_hint=True, destructive_hint=False,
                            open_world_hint=False)


class _LazyService:
    """Builds the semantic service (multilspy, diskcache: ~8 MB of imports) on the first semantic call,
    so an idle server that never reads code does not carry it."""

    def __init__(self, factory: Callable[[], SemanticService]):
        self._factory = factory
        self._service: SemanticService | None = None
        self._lock = threading.Lock()

    def get(self) -> SemanticService:
        with self._lock:
            if self._service is None:
                self._service = self._factory()
            return self._service

    def status(self) -> dict[str, Any]:
        if self._service is None:
            return {"started": False, "note": "no semantic query yet; language servers start on first use"}
        return self._service.status()

    def shutdown(self) -> None:
        if self._service is not None:
            self._service.shutdown()

    def trim(self) -> None:
        if self._service is not None:
            self._service.trim_memory()


def register(server: MCPServer, app: Any) -> None:
    """Add the four semantic tools; the service and its language servers start lazily on first use."""
    settings = app.settings

    def build() -> SemanticService:
        from ansf_mcp.semantic.service import SemanticService

        return SemanticService(settings.project_root, settings.data_dir)

    _register(server, app, _LazyService(build))


def register_with_service(server: MCPServer, app: Any, **service_options: Any) -> SemanticService:
    """`register` with an eagerly built service, returned (tests and the benchmark use it)."""
    from ansf_mcp.semantic.service import SemanticService

    service = SemanticService(app.settings.project_root, app.settings.data_dir, **service_options)
    lazy = _LazyService(lambda: service)
    lazy.get()
    _register(server, app, lazy)
    return service


def _register(server: MCPServer, app: Any, lazy: _LazyService) -> None:
    async def _run(method: str, *args: Any) -> Any:
        from ansf_mcp.semantic.service import USER_ERRORS

        def call() -> Any:
            return getattr(lazy.get(), method)(*args)

        try:
            return await anyio.to_thread.run_sync(call)
        except USER_ERRORS as exc:
            raise ToolError(str(exc)) from exc

    async def symbols_overview(relative_path: str, depth: int = 0) -> SymbolsOverview:
        return SymbolsOverview.model_validate(await _run("symbols_overview", relative_path, depth))

    async def find_symbol(name_path: str, relative_path: str | None = None, include_body: bool = False,
                          substring: bool = False, max_matches: int = 50) -> FoundSymbols:
        return FoundSymbols.model_validate(
            await _run("find_symbol", name_path, relative_path, include_body, substring, max_matches))

    async def find_references(name_path: str, relative_path: str) -> References:
        return References.model_validate(await _run("find_references", name_path, relative_path))

    async def goto_definition(relative_path: str, line: int, column: int) -> Definitions:
        return Definitions.model_validate(await _run("goto_definition", relative_path, line, column))

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
        providers["semantic"] = lazy.status
    hooks = getattr(app, "on_shutdown", None)
    if isinstance(hooks, list):
        hooks.append(lazy.shutdown)
    governor = getattr(app, "governor", None)
    if governor is not None:
        governor.on_pressure.append(lazy.trim)
