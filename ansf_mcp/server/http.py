"""HTTP transports (Streamable HTTP at /mcp, SSE at /sse) with /health and token protection off loopback."""

from __future__ import annotations

import contextlib
import hmac
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp.server.transport_security import TransportSecuritySettings
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from ansf_mcp import __version__
from ansf_mcp.server.context import AppContext

UNPROTECTED_PATHS = frozenset({"/health"})


class TokenRequired:
    """Rejects requests without the token (Authorization: Bearer, X-ANSF-Token, or ?token=)."""

    def __init__(self, app: ASGIApp, token: str):
        self.app = app
        self.token = token.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket") and scope.get("path") not in UNPROTECTED_PATHS:
            if not self._authorised(scope):
                if scope["type"] == "websocket":
                    await send({"type": "websocket.close", "code": 4401})
                    return
                response = JSONResponse({"error": "missing or wrong token"}, status_code=401)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def _authorised(self, scope: Scope) -> bool:
        headers = {k.decode().lower(): v.decode() for k, v in scope.get("headers", [])}
        offered = headers.get("x-ansf-token", "")
        auth = headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            offered = auth[7:].strip()
        if not offered:
            from urllib.parse import parse_qs

            offered = parse_qs(scope.get("query_string", b"").decode()).get("token", [""])[0]
        return bool(offered) and hmac.compare_digest(offered.encode(), self.token)


def health_route(app: AppContext) -> Route:
    async def health(_: Request) -> JSONResponse:
        body = {
            "status": "ok" if app.ready else "starting",
            "version": __version__,
            "uptime_s": app.uptime_s(),
            "store": {"path": str(app.settings.db_path), "schema_version": app.store.schema_version},
        }
        return JSONResponse(body, status_code=200 if app.ready else 503)

    return Route("/health", health, methods=["GET"])


def serving_lifespan(
    app: AppContext, *running: Callable[[], AbstractAsyncContextManager[Any]]
) -> Callable[[Starlette], AbstractAsyncContextManager[None]]:
    """Start `running` in order, mark the app ready (/health 200) while serving, shut it down after."""

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            for start in running:
                await stack.enter_async_context(start())
            app.ready = True
            try:
                yield
            finally:
                app.ready = False
                app.shutdown()

    return lifespan


def _security(app: AppContext) -> TransportSecuritySettings | None:
    if app.settings.is_loopback:
        return None  # the SDK turns DNS-rebinding protection on for loopback hosts by itself
    # Off loopback the host names clients use are unknown here; the token is the guard.
    return TransportSecuritySettings(enable_dns_rebinding_protection=False)


def build_http_app(server: MCPServer, app: AppContext, transport: str, *, dashboard: bool = False) -> ASGIApp:
    """One Starlette app: /health, the dashboard when asked, then the MCP transport mounted at the root."""
    app.ready = False
    host = app.settings.host
    dashboard_routes: list[BaseRoute] = []
    collecting: Callable[[], AbstractAsyncContextManager[None]] = contextlib.nullcontext
    if dashboard:
        from ansf_mcp.dashboard.app import build_dashboard

        dashboard_routes, collecting = build_dashboard(app)
    if transport == "http":
        inner = server.streamable_http_app(host=host, transport_security=_security(app))
        # Mounted sub-app lifespans never run, so the session manager is started by ours.
        lifespan = serving_lifespan(app, server.session_manager.run, collecting)
    else:
        inner = server.sse_app(host=host, transport_security=_security(app))
        lifespan = serving_lifespan(app, collecting)
    outer: ASGIApp = Starlette(
        routes=[health_route(app), *dashboard_routes, Mount("/", app=inner)], lifespan=lifespan
    )
    if app.settings.token:
        outer = TokenRequired(outer, app.settings.token)
    return outer
