"""Plain JSON answers, per request, on the Streamable HTTP transport: what the relay asks for when nothing needs a
stream.

The SDK answers every request POST of a session with an SSE stream unless the whole server runs in JSON mode
(`json_response=True`), and that mode drops every notification tied to a request, such as the progress of a long
semantic call. A stream per answer costs the server a task group, a ping task and memory streams per request:
about a third of the shared server's CPU per call. Here each request chooses: a POST whose Accept header names
application/json and not text/event-stream gets the SDK's own JSON answer (the relay asks so for every request
without a progress token); any other POST keeps its stream. Notifications tied to a request answered in JSON have
no wire and are dropped, as in the SDK's JSON mode; the session's standing GET stream (resource updates, list
changes) is untouched. A client that follows the specification sends both types and sees no change.

A long-poll answered in JSON (next_task or read_messages with wait_s) is cancelled when its connection closes
before the answer: its caller is gone (a relay killed, or stopped by its client's SIGTERM), and a wait left running
claimed the next ready task for an agent that would never hear of it. The SDK does not watch the connection, and
the specification says a disconnect is no cancellation because an SSE stream can be resumed; a JSON answer cannot.

Private SDK parts, for want of public ones in mcp 2.3 (pinned below 2.4): the session manager's `_admit_session`,
the transport's `_handle_post_request`, its `_read_stream_writer` and its per-session `is_json_response_enabled`
flag.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from contextvars import ContextVar
from typing import Any

import anyio
from mcp.server.streamable_http import StreamableHTTPServerTransport
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.shared.message import ServerMessageMetadata, SessionMessage
from mcp_types import JSONRPCNotification, JSONRPCRequest
from starlette.requests import Request
from starlette.types import Message, Receive, Scope, Send

from ansf_mcp.server.lines import is_long_poll
from ansf_mcp.server.streams import WrappedStream

log = logging.getLogger(__name__)

# Set while one POST is served in JSON: the transport's mode flag reads it, so concurrent requests of one session
# each see their own choice (each ASGI request runs in a task of its own, with a context of its own).
_ANSWER_IN_JSON: ContextVar[bool | None] = ContextVar("ansf_answer_in_json", default=None)


def wants_json_only(accept: str) -> bool:
    """Whether an Accept header names application/json (or any type) and not text/event-stream."""
    kinds = {part.split(";")[0].strip().lower() for part in accept.split(",")}
    return "text/event-stream" not in kinds and bool(kinds & {"application/json", "application/*", "*/*"})


class JsonWhenAsked(StreamableHTTPServerTransport):
    """The SDK's transport, answering a POST in JSON when its Accept header asks for JSON only."""

    _json_by_default: bool
    _json_ids: set[str]

    @property  # type: ignore[override]
    def is_json_response_enabled(self) -> bool:
        chosen = _ANSWER_IN_JSON.get()
        return self._json_by_default if chosen is None else chosen

    @is_json_response_enabled.setter
    def is_json_response_enabled(self, value: bool) -> None:
        self._json_by_default = value

    @classmethod
    def adopt(cls, transport: StreamableHTTPServerTransport) -> None:
        """Make a transport the session manager built into one of these (it has not connected yet)."""
        by_default = transport.__dict__.pop("is_json_response_enabled", False)
        transport.__class__ = cls
        assert isinstance(transport, JsonWhenAsked)
        transport._json_by_default = by_default
        transport._json_ids = set()

    async def _handle_post_request(self, scope: Scope, request: Request, receive: Receive, send: Send) -> None:
        if self._json_by_default or not wants_json_only(request.headers.get("accept", "")):
            await super()._handle_post_request(scope, request, receive, send)
            return
        message = _message(await request.body())  # Starlette keeps the body: the SDK reads it again for free
        rid = message.get("id") if isinstance(message, dict) else None
        rid = None if rid is None else str(rid)  # as the SDK keys its streams
        chosen = _ANSWER_IN_JSON.set(True)
        if rid is not None:
            self._json_ids.add(rid)
        try:
            if is_long_poll(message):
                await self._answer_unless_gone(message, scope, request, receive, send)
            else:
                await super()._handle_post_request(scope, request, receive, send)
        finally:
            _ANSWER_IN_JSON.reset(chosen)
            if rid is not None:
                self._json_ids.discard(rid)

    async def _answer_unless_gone(self, poll: dict[str, Any], scope: Scope, request: Request, receive: Receive,
                                  send: Send) -> None:
        """The SDK's answer to a long-poll, cancelled as the relay would cancel it if the connection closes first."""
        answered = False

        async def sending(message: Message) -> None:
            nonlocal answered
            answered = True  # the server (uvicorn) reports a disconnect once the answer is out, too
            await send(message)

        async def watch() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            writer = self._read_stream_writer
            if answered or writer is None:
                return
            note = JSONRPCNotification(jsonrpc="2.0", method="notifications/cancelled", params={
                "requestId": poll["id"], "reason": "the connection closed before the answer"})
            await writer.send(SessionMessage(note))

        async with anyio.create_task_group() as tg:
            tg.start_soon(watch)
            await super()._handle_post_request(scope, request, receive, sending)
            tg.cancel_scope.cancel()

    @asynccontextmanager
    async def connect(self) -> AsyncIterator[tuple[Any, Any]]:
        async with super().connect() as (read, write):
            yield read, DropTiedToJson(write, self._json_ids)


def _message(body: bytes) -> Any:
    """The JSON in `body`, or None; the SDK answers a body that is no JSON-RPC message."""
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        return None


class DropTiedToJson(WrappedStream):
    """The session's write stream, less the notifications and requests tied to a request answered in JSON: the
    SDK's message router would otherwise queue them where the JSON answer is taken from, ahead of the answer."""

    def __init__(self, inner: Any, json_ids: set[str]) -> None:
        super().__init__(inner)
        self._json_ids = json_ids

    async def send(self, item: SessionMessage) -> None:
        meta = item.metadata
        if (isinstance(meta, ServerMessageMetadata) and meta.related_request_id is not None
                and str(meta.related_request_id) in self._json_ids
                and isinstance(item.message, JSONRPCNotification | JSONRPCRequest)):
            log.debug("dropped %s tied to request %s, answered in JSON", getattr(item.message, "method", "?"),
                      meta.related_request_id)
            return
        await self._inner.send(item)


def answer_json_when_asked(manager: StreamableHTTPSessionManager) -> None:
    """Every session `manager` opens from now on answers in JSON the POSTs that ask for JSON only."""
    admit: Callable[..., StreamableHTTPServerTransport | None] = manager._admit_session

    def admitting(*args: Any, **kwargs: Any) -> StreamableHTTPServerTransport | None:
        transport = admit(*args, **kwargs)
        if transport is not None:
            JsonWhenAsked.adopt(transport)
        return transport

    manager._admit_session = admitting  # type: ignore[method-assign]
