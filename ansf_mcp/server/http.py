"""HTTP transports: Streamable HTTP at /mcp or SSE at /sse, with /health, the dashboard when asked, the token."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

from mcp.server.mcpserver import MCPServer
from mcp.server.transport_security import DEFAULT_MAX_REQUEST_BODY_SIZE, TransportSecuritySettings
from mcp.types import INVALID_REQUEST
from starlette.applications import Starlette
from starlette.routing import BaseRoute, Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ansf_mcp import web
from ansf_mcp.coordinator.episode import MAX_TEXT_CHARS
from ansf_mcp.runtime import Runtime
from ansf_mcp.server.json_answers import answer_json_when_asked


def _security(runtime: Runtime) -> TransportSecuritySettings:
    """The SDK's own DNS-rebinding check, kept as a second layer with the same exact names as `web.refusal`."""
    if runtime.settings.is_loopback:
        names = ["127.0.0.1", "localhost", "[::1]"]
        # Pages of this server's own port only (web.refusal checks the port against the Host header as well).
        port = runtime.settings.port
        ports = ((f":{port}", *(("",) if port in (80, 443) else ())) if port else ("", ":*"))
        return TransportSecuritySettings(
            enable_dns_rebinding_protection=True,
            allowed_hosts=[*names, *(f"{n}:*" for n in names)],
            allowed_origins=[f"{scheme}://{n}{port}" for scheme in ("http", "https") for n in names
                             for port in ports],
        )
    # Off loopback the host names clients use are unknown here; the token is the guard.
    return TransportSecuritySettings(enable_dns_rebinding_protection=False)


class BodyTooLargeAnswer:
    """The SDK's request-body limit answers 413 with the plain text "Request body too large", which the MCP
    client turns into an opaque "Server returned an error response". This layer rewrites that one answer into a
    JSON-RPC error (the client shows a JSON-RPC error body at any status) that says what was wrong and the limit.
    The SDK still does the limiting; only the 413 it sends is replaced, so nothing else is read or buffered."""

    def __init__(self, app: ASGIApp, limit: int):
        self.app = app
        body = {"jsonrpc": "2.0", "id": None, "error": {
            "code": INVALID_REQUEST,
            "message": (f"request body over {limit} bytes, this server's limit for one HTTP request, so nothing was "
                        f"done; text fields have smaller limits of their own (a task description at most "
                        f"{MAX_TEXT_CHARS} characters): send less in one call"),
            "data": {"max_request_body_bytes": limit}}}
        self.body = json.dumps(body).encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        replacing = False

        async def relay(message: Message) -> None:
            nonlocal replacing
            if message["type"] == "http.response.start" and message["status"] == 413:
                replacing = True
                return
            if not replacing:
                await send(message)
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                await send({"type": "http.response.start", "status": 413, "headers": [
                    (b"content-type", b"application/json"), (b"content-length", str(len(self.body)).encode())]})
                await send({"type": "http.response.body", "body": self.body})

        await self.app(scope, receive, relay)


def build_http_app(server: MCPServer, runtime: Runtime, transport: str, *, dashboard: bool = False) -> ASGIApp:
    """One Starlette app: /health, the dashboard when asked, then the MCP transport mounted at the root."""
    host = runtime.settings.host
    dashboard_routes: list[BaseRoute] = []
    collecting: Callable[[], AbstractAsyncContextManager[None]] = contextlib.nullcontext
    if dashboard:
        from ansf_mcp.dashboard.app import build_dashboard

        dashboard_routes, collecting = build_dashboard(runtime)
    if transport == "http":
        inner = server.streamable_http_app(host=host, transport_security=_security(runtime))
        answer_json_when_asked(server.session_manager)  # the relay's requests without a progress token
        # Mounted sub-app lifespans never run: ours starts the session manager (which enters the SDK lifespan).
        lifespan = web.lifespan(runtime, server.session_manager.run, collecting)
    else:
        inner = server.sse_app(host=host, transport_security=_security(runtime))
        lifespan = web.lifespan(runtime, collecting)
    # The SSE transport has no setting for the limit and uses the SDK's default; Streamable HTTP says its own.
    limit = server.session_manager.max_request_body_size if transport == "http" else DEFAULT_MAX_REQUEST_BODY_SIZE
    outer = Starlette(routes=[web.health_route(runtime), *dashboard_routes,
                              Mount("/", app=BodyTooLargeAnswer(inner, limit))], lifespan=lifespan)
    return web.protect(outer, runtime.settings)
