"""Running the server on a transport."""

from __future__ import annotations

import logging

from ansf_mcp.settings import Settings
from ansf_mcp.web import ConfigError, check

log = logging.getLogger(__name__)

__all__ = ["ConfigError", "serve"]


def serve(settings: Settings, *, dashboard: bool = False, tools: tuple[str, ...] | None = None,
          idle_exit_s: float | None = None) -> None:
    """Serve on the settings' transport; `tools`: the families offered (all when None); `idle_exit_s` (HTTP): stop
    after that long without a client, as the shared server that stdio relays start does."""
    check(settings)
    if dashboard and settings.transport == "stdio":
        raise ConfigError("--dashboard needs --transport http or sse (or run `ansf dashboard` beside a stdio server)")
    from ansf_mcp.server.app import build_server

    server, runtime = build_server(settings, tools=tools)
    try:
        if settings.transport == "stdio":
            import anyio

            from ansf_mcp.server.stdio import serve_stdio

            # the SDK lifespan inside starts and stops the runtime; when the input ends, waits stop waiting
            anyio.run(serve_stdio, server, runtime.store.end_waits)
            return
        from ansf_mcp.server.http import build_http_app
        from ansf_mcp.web import base_url, run_uvicorn

        asgi = build_http_app(server, runtime, settings.transport, dashboard=dashboard)
        idle = None
        if idle_exit_s:
            from ansf_mcp.server.shared import IdleExit

            asgi = idle = IdleExit(asgi, idle_exit_s)
        path = "/mcp" if settings.transport == "http" else "/sse"
        run_uvicorn(asgi, settings, idle=idle, announce=lambda port: log.warning(
            "ansf-mcp %s transport on %s%s", settings.transport, base_url(settings.host, port), path))
    finally:
        runtime.shutdown()  # idempotent: a no-op when the lifespan already stopped it
