"""Semantic tools: symbols, definitions and references through real language servers, thin over the semantic host."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

import anyio
from ansf_mcp.semantic.host import Progress, SemanticHost
from ansf_mcp.semantic.models import (
    Definitions,
    Diagnostics,
    EditResult,
    FoundSymbols,
    PatternMatches,
    References,
    SymbolsOverview,
)
from ansf_mcp.tools.answers import Shrinking, render
from ansf_mcp.tools.registry import Kind, Toolbox
from mcp.server.mcpserver import Context
from pydantic import BaseModel, Field

from ansf_mcp.runtime import Runtime

log = logging.getLogger(__name__)
M = TypeVar("M", bound=BaseModel)

# Parameter descriptions say what the name does not, once: every client lists them on every connection.
RelativePath = Annotated[str, Field(description="a file or folder, from the project root")]
NamePath = Annotated[str, Field(description="e.g. 'Class/method', '/top' (anchored), 'f[1]' (the second f)")]
DefiningFile = Annotated[str, Field(description="the file defining the symbol")]
Line = Annotated[int, Field(ge=1, description="1-based")]
Column = Annotated[int, Field(ge=1, description="1-based")]
Body = Annotated[str, Field(min_length=1, max_length=200_000, description="source; indented to fit")]
AllowTypeErrors = Annotated[bool, Field(description="write it even if the type checker finds new errors")]
PAGE_SHARE = 0.4  # first page budget, in JSON characters of its items, as a share of the cap on what is sent
PROGRESS_EVERY_S = 1.0


def register(tools: Toolbox, runtime: Runtime, **service_options: Any) -> SemanticHost:
    """Build the semantic host over `runtime` and add its tools (the editing ones unless read-only); the service
    and its language servers start lazily on first use. `service_options` go to SemanticService (tests and the
    benchmark: caches, request timeouts, fake servers)."""
    settings = runtime.settings
    # a caller's own budget (tests, benchmarks) wins over the setting
    service_options = {"type_net_seconds": settings.type_net_s, **service_options}
    host = SemanticHost(
        settings.project_root, settings.data_dir, read_only=settings.read_only,
        workers=settings.semantic_workers, deadline_s=settings.semantic_deadline_s,
        index=settings.semantic_index, phase=lambda: runtime.limits().phase,
        publish=lambda status: runtime.store.put_component_status("semantic", status),
        **service_options)
    add_tools(tools, host)
    runtime.status_providers["semantic"] = host.status
    runtime.on_start.append(host.start)
    runtime.on_shutdown.append(host.shutdown)
    if runtime.governor is not None:
        runtime.governor.on_pressure.append(host.trim)
    return host


def add_tools(tools: Toolbox, host: SemanticHost) -> None:
    """The semantic tools over `host` (the editing ones unless it is read-only)."""
    _register_reading(tools, host)
    if not host.read_only:
        _register_editing(tools, host)


def _per_file(items: list[dict[str, Any]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for item in items:
        counts[item["relative_path"]] = counts.get(item["relative_path"], 0) + 1
    return counts


CONTAINER_KINDS = frozenset({"class", "interface", "struct", "enum", "namespace", "module", "package"})


def _overview_symbols(items: list[dict[str, Any]], keep: tuple[str, ...], members: bool) -> list[dict[str, Any]]:
    """Symbols with only the `keep` fields; children kept one level deep under classes and the like (a class's
    methods), dropped under functions and variables (their locals) when `members`, else dropped everywhere."""
    out = []
    for s in items:
        slim = {k: s[k] for k in keep if k in s}
        if members and s.get("kind") in CONTAINER_KINDS and s.get("children"):
            slim["children"] = [{k: c[k] for k in keep if k in c} for c in s["children"]]
        out.append(slim)
    return out


def overview_steps(answer: SymbolsOverview) -> Shrinking[SymbolsOverview]:
    """Shrinks by detail and depth before structure: full -> names, kinds and lines at full depth -> children only
    as a class's members -> those without lines -> top-level names (a class's methods go only here) -> per-file
    symbol counts -> the total."""
    result = answer.model_dump()

    def detail_dropped(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{"name_path": s["name_path"], "kind": s["kind"], "line": s["line"],
                 **({"children": detail_dropped(s["children"])} if s.get("children") else {})} for s in items]

    def files(shape: Callable[[list[dict[str, Any]]], list[dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
        return {f: shape(v) for f, v in result["files"].items()}

    def step(shrunk: str, **changes: Any) -> Callable[[], SymbolsOverview]:
        return lambda: SymbolsOverview.model_validate({**result, **changes, "shrunk": shrunk})

    counts = {f: len(v) for f, v in result["files"].items()}
    return Shrinking(
        answer,
        step("too large: columns and ranges dropped", files=files(detail_dropped)),
        step("too large: children only as a class's members, no ranges",
             files=files(lambda v: _overview_symbols(v, ("name_path", "kind", "line"), True))),
        step("too large: names only, a class's members kept",
             files=files(lambda v: _overview_symbols(v, ("name_path", "kind"), True))),
        step("too large: top-level names only; ask for one file",
             files=files(lambda v: _overview_symbols(v, ("name_path", "kind"), False))),
        step("too large: only per-file symbol counts; ask for one file", files={}, per_file=counts),
        step("too large: only the total is given", files={}, total=sum(counts.values())),
    )


def symbol_steps(answer: FoundSymbols) -> Shrinking[FoundSymbols]:
    """Full -> without bodies and children -> per-file counts -> the total."""
    result = answer.model_dump()
    slim = [{k: v for k, v in m.items() if k not in ("body", "children")} for m in result["matches"]]
    return Shrinking(
        answer,
        lambda: FoundSymbols.model_validate({**result, "matches": slim, "shrunk": "too large: bodies dropped"}),
        lambda: FoundSymbols.model_validate(
            {**result, "matches": [], "per_file": _per_file(result["matches"]),
             "shrunk": "too large: only per-file counts given; narrow relative_path"}),
        lambda: FoundSymbols.model_validate(
            {**result, "matches": [], "shrunk": "too large: only the total is given"}),
    )


def reference_steps(answer: References) -> Shrinking[References]:
    """A page (already fitted to the cap) -> without context lines and mentions -> per-file counts -> the total."""
    result = {**answer.model_dump(), "mentions": None}
    slim = [{**f, "references": [{k: v for k, v in r.items() if k != "context"} for r in f["references"]]}
            for f in result["files"]]
    return Shrinking(
        answer,
        lambda: References.model_validate({**result, "files": slim,
                                           "shrunk": "too large: context lines and mentions dropped"}),
        lambda: References.model_validate(
            {**result, "files": [], "per_file": {f["relative_path"]: f["count"] for f in result["files"]},
             "shrunk": "too large: only per-file counts given; query a narrower symbol"}),
        lambda: References.model_validate(
            {**result, "files": [], "shrunk": "too large even as per-file counts: only the total is given"}),
    )


async def fitted(build: Callable[[int], Awaitable[M]], cap: int) -> M:
    """A page whose answer, as sent (text + structured content), fits `cap`: built with a budget in JSON
    characters of its items, measured, and rebuilt smaller while it does not fit."""
    budget = max(500, int(cap * PAGE_SHARE))
    page = await build(budget)
    for _ in range(4):
        _result, sent = render(page, None)
        if sent <= cap or budget <= 500:
            break
        budget = max(500, int(budget * cap / sent * 0.9))
        page = await build(budget)
    return page


async def with_progress(ctx: Context, start: Callable[[Progress], Awaitable[M]]) -> M:
    """Run a long semantic call, sending a progress notification every PROGRESS_EVERY_S seconds while it runs
    (what it is doing, files done of total, seconds so far); nothing is sent for calls that finish sooner."""
    state: dict[str, Any] = {"done": 0, "total": None, "message": "working"}
    t0 = time.monotonic()

    def progress(done: int, total: int | None, message: str) -> None:  # called from the worker thread
        state.update(done=done, total=total, message=message)

    async def beat() -> None:
        while True:
            await anyio.sleep(PROGRESS_EVERY_S)
            elapsed = time.monotonic() - t0
            files = f"; {state['done']} of {state['total']} files" if state["total"] else ""
            try:  # progress must grow: seconds elapsed do
                await ctx.report_progress(round(elapsed, 1), None, f"{state['message']}{files} ({elapsed:.0f} s)")
            except Exception:  # a client that went away must not fail the call
                log.debug("progress notification failed", exc_info=True)

    result: M | None = None
    error: Exception | None = None
    async with anyio.create_task_group() as tg:
        tg.start_soon(beat)
        try:
            result = await start(progress)
        except Exception as exc:  # raised as itself, not inside an exception group
            error = exc
        tg.cancel_scope.cancel()
    if error is not None:
        raise error
    assert result is not None
    return result


def _register_reading(tools: Toolbox, host: SemanticHost) -> None:
    @tools.add(Kind.READ, "Symbols overview")
    async def symbols_overview(
        relative_path: RelativePath,
        depth: Annotated[int, Field(ge=0, le=10, description="0: top level only; 1: with children")] = 0,
    ) -> Shrinking[SymbolsOverview]:
        """Symbols of a file or folder."""
        return overview_steps(await host.symbols_overview(relative_path, depth))

    @tools.add(Kind.READ, "Find symbols")
    async def find_symbol(
        name_path: NamePath,
        relative_path: Annotated[str | None, Field(description="a file or folder; leave out: everywhere")] = None,
        include_body: Annotated[bool, Field(description="with each symbol's source")] = False,
        substring: Annotated[bool, Field(description="match the last part as a substring")] = False,
        max_matches: Annotated[int, Field(ge=1, le=1000, description="at most this many")] = 50,
        include_info: Annotated[bool, Field(description="with signature and docstring (first 20)")] = False,
    ) -> Shrinking[FoundSymbols]:
        """Find symbols by name path in the project."""
        return symbol_steps(await host.find_symbol(name_path, relative_path, include_body, substring,
                                                   max_matches, include_info))

    @tools.add(Kind.READ, "Find references")
    async def find_references(
        ctx: Context,
        name_path: NamePath,
        relative_path: DefiningFile,
        cursor: str | None = None,
    ) -> Shrinking[References]:
        """References to a symbol by file, paged: 1-based line and column, enclosing symbol, context."""

        async def page(budget: int) -> References:
            return await with_progress(ctx, lambda progress: host.find_references(
                name_path, relative_path, cursor=cursor, page_chars=budget, progress=progress))

        return reference_steps(await fitted(page, tools.max_answer_chars))

    @tools.add(Kind.READ, "Go to definition")
    async def goto_definition(relative_path: RelativePath, line: Line, column: Column) -> Definitions:
        """Where the name at a position is defined."""
        return await host.goto_definition(relative_path, line, column)

    @tools.add(Kind.READ, "Search for a pattern")
    async def search_for_pattern(
        pattern: Annotated[str, Field(min_length=1, max_length=2000,
                                      description="RE2 (no lookarounds or backreferences), per line")],
        relative_path: Annotated[str | None, Field(description="a file or folder; leave out: everywhere")] = None,
        include_glob: Annotated[str | None, Field(description="e.g. '*.py', 'src/**/*.ts'")] = None,
        exclude_glob: Annotated[str | None, Field(description="files to skip")] = None,
        context_lines: Annotated[int, Field(ge=0, le=10, description="around each match")] = 0,
        ignore_case: Annotated[bool, Field(description="match either case")] = False,
        code_only: Annotated[bool, Field(description="only source files of supported languages")] = False,
        cursor: str | None = None,
    ) -> PatternMatches:
        """Regular-expression search over the project's text files (not VCS, virtualenvs, build output,
        binaries), paged."""

        async def page(budget: int) -> PatternMatches:
            return await host.search_for_pattern(pattern, relative_path, include_glob, exclude_glob,
                                                 context_lines, ignore_case, code_only, cursor, budget)

        return await fitted(page, tools.max_answer_chars)

    @tools.add(Kind.READ, "Diagnostics of a file")
    async def get_diagnostics(relative_path: RelativePath) -> Diagnostics:
        """Errors and warnings for a file, each naming its checker (Python: basedpyright)."""
        return await host.get_diagnostics(relative_path)


def _register_editing(tools: Toolbox, host: SemanticHost) -> None:
    """The editing tools (left out when the server is read-only)."""

    @tools.add(Kind.DESTRUCTIVE, "Replace a symbol's body")
    async def replace_symbol_body(
        name_path: NamePath, relative_path: DefiningFile, body: Body, allow_type_errors: AllowTypeErrors = False,
    ) -> EditResult:
        """Replace a symbol's whole definition (signature included) with body; decorators stay unless body
        starts with one. Atomic."""
        return await host.replace_symbol_body(name_path, relative_path, body, allow_type_errors)

    @tools.add(Kind.WRITE, "Insert before a symbol")
    async def insert_before_symbol(
        name_path: NamePath, relative_path: DefiningFile, body: Body, allow_type_errors: AllowTypeErrors = False,
    ) -> EditResult:
        """Insert body before a symbol (and its decorators), at its indentation, e.g. a new function or import."""
        return await host.insert_before_symbol(name_path, relative_path, body, allow_type_errors)

    @tools.add(Kind.WRITE, "Insert after a symbol")
    async def insert_after_symbol(
        name_path: NamePath, relative_path: DefiningFile, body: Body, allow_type_errors: AllowTypeErrors = False,
    ) -> EditResult:
        """Insert body after a symbol's last line, at its indentation, e.g. a new method after another."""
        return await host.insert_after_symbol(name_path, relative_path, body, allow_type_errors)

    @tools.add(Kind.DESTRUCTIVE, "Rename a symbol")
    async def rename_symbol(
        name_path: NamePath, relative_path: DefiningFile,
        new_name: Annotated[str, Field(min_length=1, max_length=200, description="the new identifier")],
        allow_type_errors: AllowTypeErrors = False,
    ) -> EditResult:
        """Rename a symbol everywhere in the project, all files or none; Python: not locals that shadow it, but
        __all__ and string annotations."""
        return await host.rename_symbol(name_path, relative_path, new_name, allow_type_errors)

    @tools.add(Kind.DESTRUCTIVE, "Delete an unused symbol")
    async def safe_delete_symbol(name_path: NamePath, relative_path: DefiningFile) -> EditResult:
        """Delete a symbol (with its decorators) only if nothing refers to it; otherwise say where it is used."""
        return await host.safe_delete_symbol(name_path, relative_path)
