"""HTTP transports: Streamable HTTP at /mcp or SSE at /sse, with /health, the dashboard when asked, the token."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

from mcp.server.mcpserver import MCPServer
from mcp.server.transport_security import TransportSecuritySettings
from starlette.applications import Starlette
from starlette.routing import BaseRoute, Mount
from starlette.types import ASGIApp

from ansf_mcp import web
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
    outer = Starlette(routes=[web.health_route(runtime), *dashboard_routes, Mount("/", app=inner)], lifespan=lifespan)
    return web.protect(outer, runtime.settings)
