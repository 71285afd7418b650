"""The stdio transport, with two additions to the SDK's: every request gets an answer.

The SDK's stdio reader parses each line with pydantic, which refuses a lone surrogate (`"\\ud800"`) or nesting
deeper than its recursion limit; the line then reaches the server as a bare exception and the client waits for
an answer until its own time-out. Here such a line is answered with a JSON-RPC error carrying the request's id,
found by a scan that needs neither the parser nor recursion.

When the input ends (a client that writes its requests and closes the pipe, `printf ... | ansf serve`), the SDK
ends the session at once and cancels the requests still running: their answers were lost. Here the end of the
input is held back until every request read has been answered (at most DRAIN_S).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import anyio
from mcp.server.mcpserver import MCPServer
from mcp.server.stdio import stdio_server
from mcp.shared.message import SessionMessage
from mcp_types import INVALID_REQUEST, PARSE_ERROR, ErrorData, JSONRPCError, JSONRPCRequest, JSONRPCResponse
from pydantic import ValidationError

from ansf_mcp.server.lines import request_id
from ansf_mcp.server.streams import WrappedStream

log = logging.getLogger(__name__)

DRAIN_S = 120.0  # how long requests still running may finish after the input ended


def unparsable_reply(exc: Exception) -> JSONRPCError | None:
    """The error answer for a line the SDK could not read, or None when it was not a request line at all."""
    if not isinstance(exc, ValidationError):
        return None
    errors = exc.errors(include_url=False)
    if not errors:
        return None
    raw = _whole_message(errors)
    if isinstance(raw, list):  # JSON-RPC batches were dropped from MCP (2025-06-18); their ids are not looked into
        return JSONRPCError(jsonrpc="2.0", id=None, error=ErrorData(
            code=INVALID_REQUEST, message="Invalid request: batches (JSON arrays) are not supported; send one "
                                          "message per line"))
    if isinstance(raw, dict):  # parsed, but not a JSON-RPC message
        rid = raw.get("id")
        rid = rid if isinstance(rid, int | str) and not isinstance(rid, bool) else None
        if rid is None and "method" in raw:
            return None  # a notification: JSON-RPC gives it no answer
    elif isinstance(raw, str):
        rid = request_id(raw)
        if rid is None and '"method"' in raw and '"id"' not in raw:
            return None
    else:
        return None
    invalid_json = any(e.get("type") == "json_invalid" for e in errors)
    # What was wrong with it as a request (not as a response, the union's other members), and in which field.
    as_request = [e for e in errors if e["loc"][:1] == ("JSONRPCRequest",)] if isinstance(raw, dict) else []
    first = (as_request or errors)[0]
    where = ".".join(str(part) for part in first["loc"][1:]) if as_request else ""
    why = (f"{where}: " if where else "") + str(first.get("msg", "invalid message"))
    if invalid_json:
        message = (f"Parse error: {why}. Lone surrogates (\\ud800-\\udfff) and nesting deeper than 200 levels "
                   "are refused.")
        code = PARSE_ERROR
    else:
        message = f"Invalid request: {why}"
        code = INVALID_REQUEST
    return JSONRPCError(jsonrpc="2.0", id=rid, error=ErrorData(code=code, message=message[:500]))


def _whole_message(errors: list[Any]) -> object:
    """The line as parsed, from the errors that carry it: the JSON itself (invalid JSON, a value of the wrong type)
    or the object a missing field was looked for in. An error inside a field (a method that is no string, params
    that are no object) carries only that field's value, and a request answered from it went unanswered."""
    for err in errors:
        if len(err["loc"]) <= 1 or (len(err["loc"]) == 2 and err["type"] == "missing"):
            return err.get("input")
    first = errors[0].get("input")
    return first if isinstance(first, str) else None


class Unanswered:
    """The ids of requests read and not yet answered; `drained` waits until there are none."""

    def __init__(self) -> None:
        self.ids: set[Any] = set()
        self._changed: anyio.Event | None = None  # made inside the event loop, by the one waiting

    def read(self, message: Any) -> None:
        if isinstance(message, JSONRPCRequest):
            self.ids.add(message.id)

    def answered(self, message: Any) -> None:
        if isinstance(message, JSONRPCResponse | JSONRPCError) and message.id in self.ids:
            self.ids.discard(message.id)
            if self._changed is not None:
                self._changed.set()

    async def drained(self, within_s: float) -> bool:
        with anyio.move_on_after(within_s):
            while self.ids:
                self._changed = anyio.Event()
                await self._changed.wait()
        return not self.ids


class AnsweringWriteStream(WrappedStream):
    """The SDK's write stream, noting which requests have been answered."""

    def __init__(self, inner: Any, unanswered: Unanswered):
        super().__init__(inner)
        self._unanswered = unanswered

    async def send(self, item: Any) -> None:
        await self._inner.send(item)
        if isinstance(item, SessionMessage):
            self._unanswered.answered(item.message)


class AnsweringReadStream(WrappedStream):
    """The SDK's read stream, less the lines it could not parse: those are answered here and skipped. Its end
    waits for the answers of the requests already read."""

    def __init__(self, inner: Any, write: Any, unanswered: Unanswered | None = None,
                 on_input_end: Callable[[], None] | None = None):
        super().__init__(inner)
        self._write = write
        self._unanswered = unanswered or Unanswered()
        self._on_input_end = on_input_end

    @property
    def last_context(self) -> Any:
        return getattr(self._inner, "last_context", None)

    async def receive(self) -> Any:
        while True:
            try:
                item = await self._inner.receive()
            except (anyio.EndOfStream, anyio.ClosedResourceError):
                if self._on_input_end is not None:
                    self._on_input_end()  # long-polls answer now with what they have; the rest may finish
                if self._unanswered.ids and not await self._unanswered.drained(DRAIN_S):
                    log.warning("input ended; %d request(s) still unanswered after %.0f s",
                                len(self._unanswered.ids), DRAIN_S)
                raise
            if isinstance(item, SessionMessage):
                self._unanswered.read(item.message)
            if isinstance(item, Exception):
                reply = unparsable_reply(item)
                if reply is not None:
                    log.info("answered an unreadable request line (id %r): %s", reply.id, reply.error.message)
                    await self._write.send(SessionMessage(reply))
                    continue
            return item

    def __aiter__(self) -> AnsweringReadStream:
        return self

    async def __anext__(self) -> Any:
        try:
            return await self.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError):
            raise StopAsyncIteration from None


async def serve_stdio(server: MCPServer, on_input_end: Callable[[], None] | None = None) -> None:
    """What `MCPServer.run("stdio")` does, with the answering read stream. The SDK's lifespan runs inside.
    `on_input_end` is called when the client's input ends, before the requests still running are waited for."""
    lowlevel = server._lowlevel_server  # the SDK offers no public way to serve a given pair of streams
    async with stdio_server() as (read, write):
        unanswered = Unanswered()
        answering = AnsweringWriteStream(write, unanswered)
        await lowlevel.run(AnsweringReadStream(read, answering, unanswered, on_input_end), answering,
                           lowlevel.create_initialization_options())
