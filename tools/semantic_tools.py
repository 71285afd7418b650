"""Semantic tools: symbols, definitions and references through real language servers (thin over the core)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any

import anyio
from ansf_mcp.semantic.models import Definitions, FoundSymbols, References, SymbolsOverview
from ansf_mcp.tools.answers import Shrinking
from ansf_mcp.tools.registry import Kind, Toolbox
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import Field

if TYPE_CHECKING:
    from ansf_mcp.semantic.service import SemanticService

log = logging.getLogger(__name__)

RelativePath = Annotated[
    str, Field(description="a file or folder relative to the project root, e.g. 'src/pkg/module.py'")
]
NamePath = Annotated[
    str,
    Field(description="a symbol's name path: 'Class/method', '/top_level' (anchored), 'name[1]' (the second of "
                      "that name)"),
]
Line = Annotated[int, Field(ge=1, description="1-based line number")]
Column = Annotated[int, Field(ge=1, description="1-based column number")]


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


def register(tools: Toolbox, app: Any) -> None:
    """Add the four semantic tools; the service and its language servers start lazily on first use."""
    settings = app.settings

    def build() -> SemanticService:
        from ansf_mcp.semantic.service import SemanticService

        return SemanticService(settings.project_root, settings.data_dir)

    _register(tools, app, _LazyService(build))


def register_with_service(tools: Toolbox, app: Any, **service_options: Any) -> SemanticService:
    """`register` with an eagerly built service, returned (tests and the benchmark use it)."""
    from ansf_mcp.semantic.service import SemanticService

    service = SemanticService(app.settings.project_root, app.settings.data_dir, **service_options)
    lazy = _LazyService(lambda: service)
    lazy.get()
    _register(tools, app, lazy)
    return service


def _per_file(items: list[dict[str, Any]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for item in items:
        counts[item["relative_path"]] = counts.get(item["relative_path"], 0) + 1
    return counts


def overview_steps(result: dict[str, Any]) -> Shrinking[SymbolsOverview]:
    """Full -> without children -> per-file symbol counts -> the total."""

    def strip(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{k: v for k, v in s.items() if k != "children"} for s in items]

    counts = {f: len(v) for f, v in result["files"].items()}
    return Shrinking(
        SymbolsOverview.model_validate(result),
        lambda: SymbolsOverview.model_validate(
            {**result, "files": {f: strip(v) for f, v in result["files"].items()},
             "shrunk": "too large: children dropped (depth 0)"}),
        lambda: SymbolsOverview.model_validate(
            {**result, "files": {}, "per_file": counts,
             "shrunk": "too large: only per-file symbol counts; ask for one file"}),
        lambda: SymbolsOverview.model_validate(
            {**result, "files": {}, "total": sum(counts.values()), "shrunk": "too large: only the total is given"}),
    )


def symbol_steps(result: dict[str, Any]) -> Shrinking[FoundSymbols]:
    """Full -> without bodies and children -> per-file counts -> the total."""
    slim = [{k: v for k, v in m.items() if k not in ("body", "children")} for m in result["matches"]]
    return Shrinking(
        FoundSymbols.model_validate(result),
        lambda: FoundSymbols.model_validate({**result, "matches": slim, "shrunk": "too large: bodies dropped"}),
        lambda: FoundSymbols.model_validate(
            {**result, "matches": [], "per_file": _per_file(result["matches"]),
             "shrunk": "too large: only per-file counts given; narrow relative_path"}),
        lambda: FoundSymbols.model_validate(
            {**result, "matches": [], "shrunk": "too large: only the total is given"}),
    )


def reference_steps(result: dict[str, Any]) -> Shrinking[References]:
    """Full -> without context lines -> per-file counts -> the total."""
    slim = [{k: v for k, v in r.items() if k != "context"} for r in result["references"]]
    return Shrinking(
        References.model_validate(result),
        lambda: References.model_validate(
            {**result, "references": slim, "shrunk": "too large: context lines dropped"}),
        lambda: References.model_validate(
            {**result, "references": [], "per_file": _per_file(result["references"]),
             "shrunk": "too large: only per-file counts given; query a narrower symbol"}),
        lambda: References.model_validate(
            {**result, "references": [], "shrunk": "too large even as per-file counts: only the total is given"}),
    )


def _register(tools: Toolbox, app: Any, lazy: _LazyService) -> None:
    async def _run(method: str, *args: Any) -> Any:
        from ansf_mcp.semantic.service import USER_ERRORS

        def call() -> Any:
            return getattr(lazy.get(), method)(*args)

        try:
            return await anyio.to_thread.run_sync(call)
        except USER_ERRORS as exc:
            raise ToolError(str(exc)) from exc

    @tools.add(Kind.READ, "Symbols overview")
    async def symbols_overview(
        relative_path: RelativePath,
        depth: Annotated[int, Field(ge=0, le=10, description="0: top-level symbols only; 1: with their children")]
        = 0,
    ) -> Shrinking[SymbolsOverview]:
        """Top-level symbols of a file or folder (relative_path); depth>0 adds children."""
        return overview_steps(await _run("symbols_overview", relative_path, depth))

    @tools.add(Kind.READ, "Find symbols")
    async def find_symbol(
        name_path: NamePath,
        relative_path: Annotated[
            str | None, Field(description="a file or folder to search in, relative to the project root; "
                                          "leave out to search the whole project")
        ] = None,
        include_body: Annotated[bool, Field(description="also return each symbol's source text")] = False,
        substring: Annotated[bool, Field(description="match the last name-path part as a substring")] = False,
        max_matches: Annotated[int, Field(ge=1, le=1000, description="at most this many matches")] = 50,
    ) -> Shrinking[FoundSymbols]:
        """Find symbols by name path ('Class/method', '/top', 'f[1]'), optionally in a file or folder;
        include_body returns source."""
        return symbol_steps(
            await _run("find_symbol", name_path, relative_path, include_body, substring, max_matches))

    @tools.add(Kind.READ, "Find references")
    async def find_references(
        name_path: NamePath,
        relative_path: Annotated[str, Field(description="the file that defines the symbol, relative to the "
                                                        "project root")],
    ) -> Shrinking[References]:
        """References to the symbol name_path defined in relative_path (1-based lines/columns, enclosing
        symbol, context)."""
        return reference_steps(await _run("find_references", name_path, relative_path))

    @tools.add(Kind.READ, "Go to definition")
    async def goto_definition(relative_path: RelativePath, line: Line, column: Column) -> Definitions:
        """Definition(s) of the name at relative_path:line:column (1-based)."""
        return Definitions.model_validate(await _run("goto_definition", relative_path, line, column))

    providers = getattr(app, "status_providers", None)
    if isinstance(providers, dict):
        providers["semantic"] = lazy.status
    hooks = getattr(app, "on_shutdown", None)
    if isinstance(hooks, list):
        hooks.append(lazy.shutdown)
    governor = getattr(app, "governor", None)
    if governor is not None:
        governor.on_pressure.append(lazy.trim)
