"""What the MCP server's HTTP transports and the dashboard share: start-up checks, the token, /health, the
Host/Origin check and the lifespan that starts the runtime with whatever else an app runs.
"""

from __future__ import annotations

import contextlib
import hmac
import socket
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from typing import Any
from urllib.parse import parse_qs, urlsplit

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from ansf_mcp import __version__
from ansf_mcp.runtime import Runtime
from ansf_mcp.settings import Settings

UNPROTECTED_PATHS = frozenset({"/health"})
LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "::1"})


class ConfigError(ValueError):
    """A setting that cannot work; the message says which flag to change."""


def check(settings: Settings) -> None:
    """The rules every HTTP listener obeys before it starts: a token off loopback, a free port."""
    if settings.transport != "stdio" and not settings.is_loopback and not settings.token:
        raise ConfigError(
            f"refusing to bind {settings.host}: off loopback a token is required (--token or ANSF_TOKEN)"
        )
    if settings.transport != "stdio" and settings.port:
        check_port_free(settings.host, settings.port)


def check_port_free(host: str, port: int) -> None:
    """Fail before start-up with a message that names the flag, instead of uvicorn's bare errno."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise ConfigError(f"cannot listen on {host}:{port} ({exc.strerror}); choose another with --port") from exc


# -- token ---------------------------------------------------------------------------------------------------------


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
            offered = parse_qs(scope.get("query_string", b"").decode()).get("token", [""])[0]
        return bool(offered) and hmac.compare_digest(offered.encode(), self.token)


def protect(app: ASGIApp, settings: Settings) -> ASGIApp:
    """Wrap an app in the token check when a token is set."""
    return TokenRequired(app, settings.token) if settings.token else app


# -- Host and Origin -----------------------------------------------------------------------------------------------


def _hostname(netloc: str) -> str:
    return (urlsplit("//" + netloc).hostname or "").lower()


def same_origin_ok(headers: Mapping[str, str], loopback: bool) -> str | None:
    """Why a request must be refused, or None.

    On loopback the token is not required, so two browser attacks are closed here instead: a DNS-rebound name
    (Host not a loopback name) and a cross-site page opening our WebSocket (Origin not our own host).
    """
    host = headers.get("host", "")
    if loopback and host and _hostname(host) not in LOOPBACK_NAMES and not _hostname(host).startswith("127."):
        return f"host {host!r} is not a loopback name"
    origin = headers.get("origin")
    if origin and origin != "null":
        if urlsplit(origin).netloc.lower() != host.lower():
            return f"origin {origin!r} is not this dashboard"
    elif origin == "null":
        return "opaque origin"
    return None


# -- /health and the lifespan --------------------------------------------------------------------------------------


def health_route(runtime: Runtime) -> Route:
    async def health(_: Request) -> JSONResponse:
        body = {
            "status": "ok" if runtime.ready else "starting",
            "version": __version__,
            "uptime_s": runtime.uptime_s(),
            "store": {"path": str(runtime.settings.db_path), "schema_version": runtime.store.schema_version},
        }
        return JSONResponse(body, status_code=200 if runtime.ready else 503)

    return Route("/health", health, methods=["GET"])


def lifespan(
    runtime: Runtime, *running: Callable[[], AbstractAsyncContextManager[Any]]
) -> Callable[[Starlette], AbstractAsyncContextManager[None]]:
    """A Starlette lifespan: hold the runtime (started on entry, stopped on exit) and run `running` inside it."""

    @contextlib.asynccontextmanager
    async def span(_: Starlette) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            await stack.enter_async_context(runtime.serving())
            for start in running:
                await stack.enter_async_context(start())
            yield

    return span
