"""One way to register a tool, one error mapping, one way to shape an answer.

A tool family's `register(tools, app)` decorates plain functions:

    @tools.add(Kind.READ, "Swarm status")
    async def swarm_status(swarm_id: SwarmId | None = None) -> SwarmStatus:
        '''One line that becomes the description.'''

- the description is the docstring on one line; the title is given; the annotations follow from the kind;
- the function returns a pydantic model (or `Shrinking` candidates, see `answers.py`); the client gets that model
  as structured content and a compact text rendering, within `max_answer_chars` measured on what is sent;
- errors: a family raises core errors (BoardError, StoreError, ...) or a ToolError; `ToolServer.call_tool` turns
  each into a one-sentence error result, argument validation errors included, and keeps tracebacks for crashes.
"""

from __future__ import annotations

import functools
import inspect
import logging
import sqlite3
import typing
from collections.abc import Awaitable, Callable
from enum import Enum
from typing import Annotated, Any, TypeVar

from ansf_mcp.tools.answers import MAX_ANSWER_CHARS, Shrinking, TextRenderer, bounded_error, shape
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult, ToolAnnotations
from pydantic import BaseModel, ValidationError, WithJsonSchema

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Awaitable[Any]])


class Kind(Enum):
    """What a tool does to the world; the MCP annotations follow from it."""

    READ = "read"  # reads only; the same call twice gives the same answer
    WRITE = "write"  # adds or changes state; calling twice does it twice
    IDEMPOTENT = "idempotent"  # changes state, but repeating the same call changes nothing more
    DESTRUCTIVE = "destructive"  # deletes state


def annotations_for(kind: Kind) -> ToolAnnotations:
    """The hints that differ from the protocol's defaults (readOnly false, destructive true, idempotent false,
    openWorld true); the destructive and idempotent hints mean something only for a tool that writes."""
    if kind is Kind.READ:
        return ToolAnnotations(read_only_hint=True, open_world_hint=False)
    return ToolAnnotations(
        destructive_hint=False if kind is not Kind.DESTRUCTIVE else None,
        idempotent_hint=True if kind in (Kind.IDEMPOTENT, Kind.DESTRUCTIVE) else None,
        open_world_hint=False,
    )


def one_line(doc: str | None) -> str:
    """Clients show a description verbatim and every character costs context: one line, no indentation."""
    return " ".join((doc or "").split())


def guarded(json_type: str) -> WithJsonSchema:
    """A number listed by its JSON type alone, for bounds that guard the store rather than say what to send: an
    integer's range for a number copied from an answer (a claim, a message id), a week for a lease. They still hold
    when the tool is called (a call over one is refused in one sentence); listed, they would cost every client
    context on every turn. Annotate the bare type, so that an optional one keeps its null:
    `Annotated[Annotated[int, Field(ge=1, le=2**31 - 1), guarded("integer")] | None, Field(description=...)]`."""
    return WithJsonSchema({"type": json_type})


# Where to find a valid value, per parameter name: appended to validation errors. The forms that patterns check
# are said here, since patterns are not listed (lean_schema).
HINTS: dict[str, str] = {
    "swarm_id": "e.g. 'swarm-1a2b3c4d5e6f'; use swarm_status() to list swarm ids",
    "agent_id": "e.g. 'agent-0'; swarm_status(swarm_id) lists the swarm's agents",
    "agent": "e.g. 'agent-0'; swarm_status(swarm_id) lists the swarm's agents",
    "from_agent": "swarm_status(swarm_id) lists the swarm's agents",
    "to_agent": "swarm_status(swarm_id) lists the swarm's agents",
    "task_id": "e.g. 'task-3'; swarm_status(swarm_id) lists the swarm's tasks",
    "id": "an id is up to 100 letters, digits and -_.: starting with a letter or digit, e.g. 'api'",
    "lead": "the id of another agent of this swarm, e.g. 'agent-0'",
    "run_id": "benchmark() returns the run id",
    "claim": "pass the claim number next_task gave",
    "since": "pass the next_since of the previous answer, or 0",
    "cursor": "pass the next_cursor of the previous answer, or leave it out to start at the beginning",
    "relative_path": "give a path relative to the project root, e.g. 'src/pkg/module.py'",
}


class ToolServer(MCPServer):
    """MCPServer whose tool errors read as one sentence: what was expected and how to get it."""

    _listing: tuple[int, list[Any]] | None = None

    async def list_tools(self) -> list[Any]:
        """The SDK's listing with lean input schemas (a model reads them on every turn) and no output schemas.

        Every answer is still sent as structured content (the answer model, validated when the tool returns) with
        a compact text rendering; the protocol allows structured content without a listed schema, and a client
        that validates checks only the schemas it is given. Listed, output schemas bought little: the model reads
        the fields from the answer itself, while every client paid for them on every connection — the full nested
        schemas made ~60 % of `tools/list`, outlines of the top-level fields and their types 21 % of the board
        family's, and even `{"type": "object"}` 5 % of the lean listing, the margin to 2 k tokens."""
        tools = await super().list_tools()
        key = hash(tuple(t.name for t in tools))
        if self._listing is None or self._listing[0] != key:
            self._listing = (key, [
                t.model_copy(update={
                    "input_schema": lean_schema(t.input_schema),
                    "output_schema": None,
                })
                for t in tools
            ])
        return self._listing[1]

    async def call_tool(
        self, name: str, arguments: dict[str, Any], context: Context[Any, Any] | None = None
    ) -> Any:
        where = nul_at(arguments)
        if where is not None:
            # One rule on every engine: PostgreSQL cannot store NUL in text, SQLite could, and no name, text, path
            # or pattern needs it.
            raise ToolError(f"{name}: {where} contains a NUL character (0x00), which no argument accepts; "
                            "nothing was done")
        unknown = self._unknown_arguments(name, arguments)
        if unknown:
            raise ToolError(bounded_error(unknown))
        try:
            return await super().call_tool(name, arguments, context)
        except ToolError as exc:
            if isinstance(exc.__cause__, ValidationError) and type(exc) is ToolError:
                message = validation_sentence(name, exc.__cause__)
            else:
                message = explain(name, exc)
            if message is None:
                raise  # a crash: the SDK logs it and answers with a generic message (no internals, bounded)
            # Every error is one bounded sentence: echoed inputs are cut, whatever raised it.
            raise ToolError(bounded_error(message)) from exc.__cause__


    def _unknown_arguments(self, name: str, arguments: Any) -> str | None:
        """The sentence refusing arguments the tool does not take. The SDK dropped them: 'dependson' for
        'depends_on' or 'strateg' for 'strategy' was carried out without them, as if they had not been sent."""
        tool = self._tool_manager.get_tool(name)
        if tool is None or not isinstance(arguments, dict):
            return None  # the SDK says an unknown tool is unknown
        known = tool.parameters.get("properties", {})
        unknown = [k for k in arguments if k not in known]
        if not unknown:
            return None
        verb = "is not a parameter" if len(unknown) == 1 else "are not parameters"
        return (f"{name}: {', '.join(repr(k) for k in unknown)} {verb} of {name} (its parameters: "
                f"{', '.join(known) or 'none'}); nothing was done")


def nul_at(arguments: Any) -> str | None:
    """Where in a tool call's arguments a string (or a key) holds a NUL character, as `tasks[0].description`."""
    stack: list[tuple[Any, str]] = [(arguments, "")]
    while stack:  # no recursion: nesting depth is the client's choice
        value, path = stack.pop()
        if isinstance(value, str):
            if "\x00" in value:
                return path or "an argument"
        elif isinstance(value, dict):
            for key, item in value.items():
                here = f"{path}.{key}" if path else str(key)
                if isinstance(key, str) and "\x00" in key:
                    return f"a key of {path}" if path else "an argument's name"
                stack.append((item, here))
        elif isinstance(value, list):
            stack.extend((item, f"{path}[{i}]") for i, item in enumerate(value))
    return None


# Checked when a tool is called, not listed (see lean_schema).
INPUT_GUARDS = frozenset({"pattern", "minLength", "maxLength", "minItems", "maxItems"})


def lean_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """An input schema as listed, cheaper to read: a model reads every parameter on every turn. `$ref`s to
    non-recursive definitions inlined, `anyOf [X, null]` written as `type: [x, "null"]`, what says nothing left
    out (_unlisted); an optional parameter that defaults to null is listed as X alone: leaving it out says null
    (the server still takes an explicit null). Patterns and the lengths of strings and lists (INPUT_GUARDS) are
    not listed either: they guard the server against malformed or runaway input that a sensible call never sends
    (ids are copied from answers), and the server still refuses such a call in one sentence that names the rule
    and where to find a good value."""
    defs: dict[str, Any] = schema.get("$defs") or {}

    def refs(node: Any) -> set[str]:
        if isinstance(node, dict):
            found = {node["$ref"].rsplit("/", 1)[-1]} if isinstance(node.get("$ref"), str) else set()
            return found.union(*(refs(v) for v in node.values()))
        if isinstance(node, list):
            return set().union(*(refs(v) for v in node))
        return set()

    def recursive(name: str, path: tuple[str, ...] = ()) -> bool:
        return name in path or any(recursive(r, (*path, name)) for r in refs(defs.get(name, {})))

    kept = {name for name in defs if recursive(name)}

    def walk(node: Any) -> Any:
        if isinstance(node, list):
            return [walk(v) for v in node]
        if not isinstance(node, dict):
            return node
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.rsplit("/", 1)[-1] not in kept:
            target = walk(defs[ref.rsplit("/", 1)[-1]])
            return {**target, **{k: walk(v) for k, v in node.items() if k != "$ref"}}
        # A map of names to schemas (`properties`) keeps every name: a parameter may be called `title` or `default`.
        out = {k: ({name: walk(sub) for name, sub in v.items()} if k in _NAME_MAPS and isinstance(v, dict) else walk(v))
               for k, v in node.items() if not _unlisted(node, k, v)}
        alts = out.get("anyOf")
        if isinstance(alts, list) and len(alts) == 2 and {"type": "null"} in alts:
            other = alts[0] if alts[1] == {"type": "null"} else alts[1]
            if isinstance(other.get("type"), str) and not {"anyOf", "oneOf", "allOf", "const"} & set(other):
                merged = dict(other)
                if not ("default" in node and node["default"] is None):
                    merged["type"] = [other["type"], "null"]
                    if "enum" in merged:
                        merged["enum"] = [*merged["enum"], None]
                del out["anyOf"]
                out = {**merged, **out}
        return out

    lean = walk(schema)
    if kept:
        lean["$defs"] = {name: walk(defs[name]) for name in sorted(kept)}
    return lean


_NAME_MAPS = frozenset({"properties", "patternProperties"})


def _unlisted(node: dict[str, Any], key: str, value: Any) -> bool:
    """Whether `key` of a schema node says nothing a caller needs: a title (it repeats the property's name), a
    default of null, "" or the node's own const (leaving the parameter out says as much), a guard (INPUT_GUARDS;
    a property merely named like one is a dict, and stays)."""
    if key in ("title", "$defs"):
        return True
    if key == "default":
        return value is None or value == "" or ("const" in node and value == node["const"])
    return key in INPUT_GUARDS and isinstance(value, int | str)


# Errors of the core that mean "the request cannot be carried out"; their text is written for the caller.
def _expected() -> tuple[type[BaseException], ...]:
    from ansf_mcp.board.errors import BoardError
    from ansf_mcp.coordinator.episode import ModelUnavailable
    from ansf_mcp.store.db import StoreError

    return (BoardError, StoreError, ModelUnavailable, ValueError)


def explain(tool: str, exc: ToolError) -> str | None:
    """The error result's text for `exc`, or None when it is a crash that must stay generic."""
    cause = exc.__cause__
    if type(exc) is ToolError:  # raised on purpose; the SDK has prefixed "Error executing tool <name>: "
        text = str(exc)
        prefix = f"Error executing tool {tool}: "
        return text[len(prefix):] if text.startswith(prefix) else text
    if isinstance(cause, ValidationError):  # the tool's own model checks on what it was given
        return validation_sentence(tool, cause)
    if isinstance(cause, _expected()):
        return str(cause)
    if isinstance(cause, OSError | sqlite3.Error):  # a full disk or an unwritable data directory
        return f"storage error: {cause}"
    return None


def validation_sentence(tool: str, error: ValidationError) -> str:
    """One sentence from a pydantic error: which argument, what was expected, where to get a good value."""
    errors = error.errors(include_url=False)
    first = errors[0]
    loc = [str(p) for p in first.get("loc", ())]
    where = "".join(f"[{p}]" if p.isdigit() else f".{p}" for p in loc).lstrip(".") or "the arguments"
    what = _expected_text(first)
    hint = next((HINTS[p] for p in reversed(loc) if p in HINTS), None)
    more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
    sentence = f"{tool}: {where} {what}{more}"
    if hint:
        sentence += f"; {hint}"
    return sentence + "."


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


TYPE_WORDS = {
    "string_type": "a string", "int_type": "an integer", "int_parsing": "an integer", "float_type": "a number",
    "float_parsing": "a number", "bool_type": "true or false", "bool_parsing": "true or false",
    "list_type": "a list", "dict_type": "an object", "model_type": "an object", "int_from_float": "an integer",
}


def _expected_text(e: dict[str, Any]) -> str:
    kind = e.get("type", "")
    ctx = e.get("ctx") or {}
    given = e.get("input")
    if kind == "missing":
        return "is required"
    if kind == "extra_forbidden":
        return "is not a field of this object (check its spelling); nothing was done"
    if kind in TYPE_WORDS:
        return f"must be {TYPE_WORDS[kind]}, not {_shown(given)}"
    if kind == "string_pattern_mismatch":
        return f"{_shown(given)} is not in the expected form"
    if kind == "literal_error":
        return f"must be one of {ctx.get('expected', '?')}, not {_shown(given)}"
    if kind in ("too_short", "too_long", "string_too_short", "string_too_long"):
        short = kind.endswith("too_short")
        bound = ctx.get("min_length" if short else "max_length")
        unit = "characters" if kind.startswith("string") else "items"
        if short and bound == 1:
            return "must not be empty"
        return f"needs {'at least' if short else 'at most'} {bound} {unit}"
    for key, word in (("gt", "greater than"), ("ge", "at least"), ("lt", "less than"), ("le", "at most")):
        if key in ctx and kind.startswith(("greater", "less")):
            return f"must be {word} {ctx[key]}, not {_shown(given)}"
    message = str(e.get("msg", "is invalid"))
    return message[:1].lower() + message[1:]


class Toolbox:
    """Registers a family's tools on one server, the one way: title, kind, docstring, answer shaping."""

    def __init__(self, server: ToolServer, *, max_answer_chars: int = MAX_ANSWER_CHARS):
        if not isinstance(server, ToolServer):
            raise TypeError("tools register on a ToolServer (its call_tool writes the error sentences)")
        self.server = server
        self.max_answer_chars = max_answer_chars

    def add(self, kind: Kind, title: str, *, text: TextRenderer | None = None,
            meta: dict[str, Any] | None = None) -> Callable[[F], F]:
        """Decorator: register `fn` under its own name. `fn` is async and returns its answer model, or
        `Shrinking[Model]` renderings; `text` renders the answer as compact text for the model (default:
        compact JSON of the structured content); `meta` is the tool's `_meta` (an MCP App view, tools/app.py)."""

        def decorator(fn: F) -> F:
            self.server.add_tool(
                self._shaped(fn, text), name=fn.__name__, title=title, description=one_line(fn.__doc__),
                annotations=annotations_for(kind), meta=meta,
            )
            return fn

        return decorator

    def _shaped(self, fn: Callable[..., Awaitable[Any]], text: TextRenderer | None) -> Callable[..., Any]:
        if not inspect.iscoroutinefunction(fn):
            raise TypeError(f"tool {fn.__name__} must be async (sync tools take a worker thread per call)")
        hints = typing.get_type_hints(fn, include_extras=True)
        answer_type = hints.get("return")
        if typing.get_origin(answer_type) is Shrinking:
            answer_type = typing.get_args(answer_type)[0]
        if not (isinstance(answer_type, type) and issubclass(answer_type, BaseModel)):
            raise TypeError(f"tool {fn.__name__} must declare a pydantic model as its answer type")
        sig = inspect.signature(fn)
        params = [p.replace(annotation=hints.get(p.name, p.annotation)) for p in sig.parameters.values()]
        returns = Annotated[CallToolResult, answer_type]

        @functools.wraps(fn)
        async def tool(**kwargs: Any) -> CallToolResult:
            out = await fn(**kwargs)
            return shape(out, text, self.max_answer_chars)

        del tool.__wrapped__  # the SDK reads the signature below, not the wrapped function's
        tool.__signature__ = sig.replace(parameters=params, return_annotation=returns)  # type: ignore[attr-defined]
        tool.__annotations__ = {**{p.name: p.annotation for p in params}, "return": returns}
        return tool


def tool_server(name: str, **options: Any) -> ToolServer:
    """A ToolServer that leaves the process's logging alone (MCPServer configures the root logger)."""
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    server = ToolServer(name=name, **options)
    root.setLevel(level)
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    return server


__all__ = ["HINTS", "Kind", "Shrinking", "ToolServer", "Toolbox", "annotations_for", "explain", "guarded",
           "tool_server"]
