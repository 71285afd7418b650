"""Answers sized for a context window: compact text for the model, the data as structured content, one cap.

Every tool's answer goes through `shape`: the structured content is the answer model as its output schema says,
the text content a compact rendering for the model (a tool may give its own; the default is compact JSON without
nulls), and the size that counts is what is sent — both together, JSON-encoded.
An answer that may be too large comes as `Shrinking(full, shorter, ..., shortest)`: the first rendering that fits
`max_answer_chars` is sent (each says in its own `shrunk` field what it left out).

The cap holds for every answer, whatever the tool: a rendering still over it (a tool without shrinking steps, or
whose shortest step is too long) is cut generically — long texts shortened, then the longest lists halved — and
re-validated against the answer model; an answer that cannot be cut to fit becomes a one-sentence error. Error
texts are capped too (`bounded_error`): echoed inputs are cut, never sent back whole.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from mcp.types import CallToolResult, TextContent
from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)
TextRenderer = Callable[[Any], str]

# Characters sent per answer (text content + structured content, JSON-encoded): about 8 k tokens.
MAX_ANSWER_CHARS = 32_000
# Rough and on the safe side for JSON and identifiers: tokenizers give ~3.5-6 characters per token there.
CHARS_PER_TOKEN = 4
# The envelope around the two parts: {"content":[{"type":"text","text":...}],"structuredContent":...,"isError":false}
ENVELOPE_CHARS = 80
# An error is one sentence: at most this many characters, and an echoed input at most ECHO_CHARS of them.
ERROR_CHARS = 1_000
ECHO_CHARS = 120
# Strings are cut to these lengths in turn before any list is shortened; then lists are halved at most this often.
STRING_STEPS = (4_096, 1_024, 256, 80)
MAX_LIST_CUTS = 64


class Shrinking(Generic[M]):
    """Renderings of one answer, longest first; each later one is a zero-argument callable, built only if needed."""

    def __init__(self, full: M, *shorter: Callable[[], M]):
        self.full = full
        self.shorter = shorter


def data_of(model: BaseModel) -> dict[str, Any]:
    return model.model_dump(mode="json", by_alias=True)


def _without_nulls(data: Any) -> Any:
    if isinstance(data, dict):
        return {k: _without_nulls(v) for k, v in data.items() if v is not None}
    if isinstance(data, list):
        return [_without_nulls(v) for v in data]
    return data


def compact_json(data: Any) -> str:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False, default=str)


def sent_chars(text: str, data_json: str) -> int:
    """What one answer costs on the wire: both parts JSON-encoded, plus the envelope."""
    return len(json.dumps(text, ensure_ascii=False)) + len(data_json) + ENVELOPE_CHARS


def approx_tokens(chars: int) -> int:
    return -(-chars // CHARS_PER_TOKEN)


def render(model: BaseModel, text: TextRenderer | None) -> tuple[CallToolResult, int]:
    data = data_of(model)
    data_json = compact_json(data)
    body = text(model) if text is not None else compact_json(_without_nulls(data))
    result = CallToolResult(content=[TextContent(type="text", text=body)], structured_content=data)
    return result, sent_chars(body, data_json)


def shape(out: BaseModel | Shrinking[Any], text: TextRenderer | None, max_chars: int) -> CallToolResult:
    """The first rendering of `out` that fits `max_chars` as sent; past the last one, `fit` cuts it."""
    steps = out.shorter if isinstance(out, Shrinking) else ()
    model = out.full if isinstance(out, Shrinking) else out
    result, size = render(model, text)
    for step in steps:
        if size <= max_chars:
            break
        model = step()
        result, size = render(model, text)
    return result if size <= max_chars else fit(model, text, max_chars, size)


def fit(model: BaseModel, text: TextRenderer | None, max_chars: int, size: int) -> CallToolResult:
    """`model` cut until its rendering fits `max_chars`: long strings first, then the longest lists halved. The
    cut answer must still be a valid answer model; otherwise, or if nothing more can be cut, an error result."""
    data = data_of(model)
    cuts: dict[str, tuple[int, int]] = {}  # list name -> (items before, items kept)
    texts_cut = False
    plan: list[tuple[bool, Callable[[], bool]]] = [
        (True, lambda limit=limit: _cut_strings(data, limit)) for limit in STRING_STEPS]
    plan += [(False, lambda: _halve_longest_list(data, cuts))] * MAX_LIST_CUTS
    for is_text, step in plan:
        if not step():
            continue
        texts_cut = texts_cut or is_text
        note = _cut_note(cuts, texts_cut, max_chars)
        if "shrunk" in type(model).model_fields:
            data["shrunk"] = note
        try:
            smaller = type(model).model_validate(data)
        except ValidationError:
            break  # cutting broke the answer's own rules: say so instead of sending something invalid
        result, size = render(smaller, text)
        if size <= max_chars:
            return result
    return error_result(f"the answer ({size} characters) is over the {max_chars}-character answer cap and could "
                        "not be cut to fit; ask for less (an id, a filter, a page) — the call itself was carried out")


def error_result(message: str) -> CallToolResult:
    return CallToolResult(content=[TextContent(type="text", text=bounded_error(message))], is_error=True)


def _cut_note(cuts: dict[str, tuple[int, int]], texts_cut: bool, max_chars: int) -> str:
    parts = ["long texts shortened"] if texts_cut else []
    parts += [f"{name} {before} → {kept}" for name, (before, kept) in cuts.items()]
    return f"cut to fit the {max_chars}-character answer cap: " + ", ".join(parts or ["texts shortened"])


def _cut_strings(node: Any, limit: int) -> bool:
    """Every string in `node` longer than `limit` cut to it (in place); whether any was."""
    changed = False
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, value in list(items):
        if isinstance(value, str) and len(value) > limit and key != "shrunk":
            node[key] = value[: limit - 1] + "…"
            changed = True
        elif isinstance(value, dict | list):
            changed = _cut_strings(value, limit) or changed
    return changed


def _halve_longest_list(data: Any, cuts: dict[str, tuple[int, int]]) -> bool:
    """Halve (in place) the lists at the path holding the most characters; whether there was one to halve.

    Lists are grouped by where they sit (`agents`, `agents.capabilities`: indices left out). A group nested in the
    chosen one's items that carries at least half its characters is halved instead, in every item at once: an
    answer keeps all its agents with fewer capabilities each rather than two agents with all of theirs."""
    groups: dict[tuple[str, ...], list[list[Any]]] = {}

    def walk(node: Any, path: tuple[str, ...]) -> None:
        if isinstance(node, list):
            if len(node) > 1:
                groups.setdefault(path, []).append(node)
            for value in node:
                walk(value, path)
        elif isinstance(node, dict):
            for key, value in node.items():
                walk(value, (*path, str(key)))

    walk(data, ())
    if not groups:
        return False
    size = {path: sum(len(compact_json(items)) for items in lists) for path, lists in groups.items()}
    best = max(size, key=lambda path: size[path])
    while True:
        deeper = [p for p in size if len(p) > len(best) and p[:len(best)] == best and 2 * size[p] >= size[best]]
        if not deeper:
            break
        best = max(deeper, key=lambda path: size[path])
    name = ".".join(best) or "items"
    before = cuts.get(name, (max(len(items) for items in groups[best]), 0))[0]
    for items in groups[best]:
        del items[(len(items) + 1) // 2:]
    cuts[name] = (before, max(len(items) for items in groups[best]))
    return True


_LONG_RUN = re.compile(rf"\S{{{ECHO_CHARS + 1},}}")


def bounded_error(message: str, limit: int = ERROR_CHARS) -> str:
    """An error text within `limit` characters, every run of more than ECHO_CHARS non-blank characters (an echoed
    name path, a pasted file) cut to ECHO_CHARS with its length said."""
    def short(m: re.Match[str]) -> str:
        run = m.group(0)
        return f"{run[:ECHO_CHARS - 1]}…({len(run)} characters)"

    return cut(_LONG_RUN.sub(short, message), limit) or ""


def cut(text: str | None, limit: int) -> str | None:
    """`text` cut to `limit` characters with an ellipsis, None kept."""
    return text if text is None or len(text) <= limit else text[: limit - 1] + "…"


def printable(text: str | None) -> str | None:
    """`text` for a text rendering: every character `repr` would escape (C0 and C1 controls, DEL, bidi overrides
    and other format characters, line breaks, tabs) written as `repr` writes it, without the quotes; None kept.

    The one policy for stored free text (names, roles, descriptions, summaries) in text renderings, where names
    are already shown by `repr`: raw ESC, NUL or U+202E would reach terminals and logs that print tool text.
    Newlines and tabs are escaped too: a text rendering holds one record per line, and a raw newline in a
    description would start a line that reads as another task. Nothing is refused or rewritten in storage (old
    boards keep working); the structured content carries every text exactly as stored."""
    if text is None or text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
