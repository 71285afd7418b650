"""Answers sized for a context window: compact text for the model, the data as structured content, one cap.

Every tool's answer goes through `shape`: the structured content is the answer model as its output schema says,
the text content a compact rendering for the model (a tool may give its own; the default is compact JSON without
nulls), and the size that counts is what is sent — both together, JSON-encoded.
An answer that may be too large comes as `Shrinking(full, shorter, ..., shortest)`: the first rendering that fits
`max_answer_chars` is sent, the last one in any case (each says in its own `shrunk` field what it left out).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from mcp.types import CallToolResult, TextContent
from pydantic import BaseModel

M = TypeVar("M", bound=BaseModel)
TextRenderer = Callable[[Any], str]

# Characters sent per answer (text content + structured content, JSON-encoded): about 8 k tokens.
MAX_ANSWER_CHARS = 32_000
# Rough and on the safe side for JSON and identifiers: tokenizers give ~3.5-6 characters per token there.
CHARS_PER_TOKEN = 4
# The envelope around the two parts: {"content":[{"type":"text","text":...}],"structuredContent":...,"isError":false}
ENVELOPE_CHARS = 80


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
    """The first rendering of `out` that fits `max_chars` as sent (the last one if none does)."""
    if not isinstance(out, Shrinking):
        return render(out, text)[0]
    result, size = render(out.full, text)
    for step in out.shorter:
        if size <= max_chars:
            break
        result, size = render(step(), text)
    return result


def cut(text: str | None, limit: int) -> str | None:
    """`text` cut to `limit` characters with an ellipsis, None kept."""
    return text if text is None or len(text) <= limit else text[: limit - 1] + "…"
