"""Running the server on a transport."""

from __future__ import annotations

import logging

from ansf_mcp.settings import Settings

log = logging.getLogger(__name__)


class ConfigError(ValueError):
    pass


def check(settings: Settings) -> None:
    if settings.transport != "stdio" and not settings.is_loopback and not settings.token:
        raise ConfigError(
            f"refusing to bind {settings.host}: off loopback a token is required (--token or ANSF_TOKEN)"
        )
    if settings.transport != "stdio" and settings.port:
        check_port_free(settings.host, settings.port)


def serve(settings: Settings, *, dashboard: bool = False) -> None:
    check(settings)
    if dashboard and settings.transport == "stdio":
        raise ConfigError("--dashboard needs --transport http or sse (or run `ansf dashboard` beside a stdio server)")
    from ansf_mcp.server.app import build_server

    server, app = build_server(settings)
    if settings.transport == "stdio":
        try:
            server.run("stdio")
        finally:
            app.shutdown()
        return
    import uvicorn

    from ansf_mcp.server.http import build_http_app

    asgi = build_http_app(server, app, settings.transport, dashboard=dashboard)
    path = "/mcp" if settings.transport == "http" else "/sse"
    log.warning("ansf-mcp %s transport on http://%s:%d%s", settings.transport, settings.host, settings.port, path)
    uvicorn.run(asgi, host=settings.host, port=settings.port, log_level="warning", lifespan="on")


def check_port_free(host: str, port: int) -> None:
    """Fail before start-up with a message that names the flag, instead of uvicorn's bare errno."""
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise ConfigError(f"cannot listen on {host}:{port} ({exc.strerror}); choose another with --port") from exc
