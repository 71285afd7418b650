"""Reading JSON-RPC lines: a request's id from a line no parser accepts, whether a request is a long-poll; standard
library only (the relay uses them too)."""

from __future__ import annotations

import json
from typing import Any


def request_id(line: str) -> int | str | None:
    """The top-level "id" of a JSON object text, or None; linear, no recursion, tolerant of what follows."""
    depth = 0
    i, n = 0, len(line)
    expect_key = False
    while i < n:
        c = line[i]
        if c == '"':
            j = i + 1
            while j < n and line[j] != '"':
                j += 2 if line[j] == "\\" else 1
            if depth == 1 and expect_key and line[i + 1 : j] == "id":
                k = j + 1
                while k < n and line[k] in " \t\r\n":
                    k += 1
                if k < n and line[k] == ":":
                    return _scalar(line, k + 1)
            expect_key = False
            i = j + 1
            continue
        if c in "{[":
            depth += 1
            expect_key = c == "{" and depth == 1
        elif c in "}]":
            depth -= 1
        elif c == "," and depth == 1:
            expect_key = True
        i += 1
    return None


def _scalar(line: str, start: int) -> int | str | None:
    try:
        value, _ = json.JSONDecoder().raw_decode(line[start:].lstrip())
    except ValueError:
        return None
    if isinstance(value, bool) or not isinstance(value, int | str):
        return None
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return None
    return value


def is_long_poll(message: Any) -> bool:
    """A request that may wait for the board to change: next_task or read_messages with wait_s above 0."""
    if not isinstance(message, dict) or message.get("method") != "tools/call" or "id" not in message:
        return False
    params = message.get("params") or {}
    arguments = params.get("arguments") if isinstance(params, dict) else None
    if not isinstance(params, dict) or params.get("name") not in ("next_task", "read_messages"):
        return False
    wait = arguments.get("wait_s") if isinstance(arguments, dict) else None
    return isinstance(wait, int | float) and not isinstance(wait, bool) and wait > 0
