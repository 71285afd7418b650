"""The dashboard as Starlette routes plus a lifespan that runs the collector and the fast alert check.

`build_dashboard(app)` gives routes to mount into the MCP HTTP server (one process, one store);
`run_dashboard(settings)` serves them on their own (`ansf dashboard`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from importlib import resources
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.websockets import WebSocket, WebSocketDisconnect

from ansf_mcp.dashboard import alerts
from ansf_mcp.dashboard.collector import SERIES, Collector
from ansf_mcp.dashboard.config import DEFAULT_PORT, DashboardConfig, invalid_setting
from ansf_mcp.dashboard.prom import Metrics, Watched
from ansf_mcp.dashboard.snapshot import Snapshot
from ansf_mcp.runtime import Runtime
from ansf_mcp.settings import Settings
from ansf_mcp.web import token_cookie

log = logging.getLogger(__name__)

__all__ = ["DEFAULT_PORT", "Dashboard", "build_dashboard", "dashboard_asgi", "open_runtime", "run_dashboard"]


# How long one wait for news blocks a thread (it is not cancellable: shutdown waits at most this), and the least
# time between two live snapshots.
LIVE_WAIT_S = 1.0
LIVE_GAP_S = 0.2
# The live re-read scans the tasks table (tens of ms on a board of 10^5 tasks): on a busy board the gap grows
# so that these reads take at most this share of one core, whatever the board's size.
LIVE_READ_SHARE = 0.1


def live_gap(read_s: float) -> float:
    """Seconds to wait after a live snapshot whose reading took `read_s`."""
    return max(LIVE_GAP_S, read_s * (1.0 / LIVE_READ_SHARE - 1.0))


class Hub:
    """Connected pages; a page that reports its tab hidden is paused and gets nothing until it resumes."""

    def __init__(self) -> None:
        self.clients: dict[WebSocket, bool] = {}  # socket -> paused

    def counts(self) -> dict[str, int]:
        paused = sum(1 for p in self.clients.values() if p)
        return {"connected": len(self.clients), "paused": paused}

    async def broadcast(self, message: dict[str, Any]) -> None:
        text = json.dumps(message, default=str)
        for ws, paused in list(self.clients.items()):
            if paused:
                continue
            try:
                await ws.send_text(text)
            except Exception:
                self.clients.pop(ws, None)


class Dashboard:
    def __init__(self, app: Runtime, config: DashboardConfig):
        self.app = app
        self.config = config
        self.collector = Collector(app, config)
        self.hub = Hub()
        self.live_read_s = 0.0  # how long the last live re-read took (live_gap)
        self.active: list[dict[str, Any]] = []
        self.prom = Metrics(Watched(latest=lambda: self.collector.latest, clients=self.hub.counts,
                                    active=lambda: {a["name"] for a in self.active}))
        self._active_ids: tuple[tuple[int, str], ...] | None = None

    # -- loops -----------------------------------------------------------------------------------------------------

    async def collect_once(self) -> Snapshot:
        snapshot = await asyncio.to_thread(self.collector.collect)
        await self.check_alerts_once()
        await self.hub.broadcast({"type": "snapshot", "snapshot": self.decorate(snapshot)})
        return snapshot

    async def check_alerts_once(self) -> list[dict[str, Any]]:
        figures, events = await asyncio.to_thread(alerts.check, self.app.store, self.config)
        active = await asyncio.to_thread(alerts.open_alerts, self.app.store)
        active = alerts.with_live_text(active, figures, self.config)
        ids = tuple((a["id"], a["message"]) for a in active)
        self.active = active
        # also picks up alerts another watcher of the store raised, and figures that moved under an open alert
        if events or ids != self._active_ids:
            self._active_ids = ids
            # with the figures they were judged on, so the cards beside the alerts show the same numbers
            await self.hub.broadcast({"type": "alerts", "ts": time.time(), "active": active, "events": events,
                                      "figures": {k: f.as_dict() for k, f in figures.items()}})
        return events

    async def board_changed(self) -> Snapshot | None:
        """The board changed (news from any replica): tasks per state and the claims counter re-read at once and
        pushed as a live snapshot, between collections (which still measure everything else)."""
        if self.collector.latest is None:
            return await self.collect_once()
        started = time.monotonic()
        live = await asyncio.to_thread(self.collector.board_now)
        self.live_read_s = time.monotonic() - started
        await self.hub.broadcast({"type": "snapshot", "snapshot": self.decorate(live)})
        return live

    async def _listen(self) -> None:
        """Wait on the store's news (LISTEN/NOTIFY on PostgreSQL, so every replica's changes) instead of polling
        the board; a busy board is pushed at most every LIVE_GAP_S, less often when the re-read is slow (live_gap)."""
        store = self.app.store
        seen = await asyncio.to_thread(store.any_news_version)
        while True:
            now = await asyncio.to_thread(store.wait_any_news, seen, LIVE_WAIT_S)
            if now == seen:
                continue
            seen = now
            try:
                await self.board_changed()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("dashboard live update failed; the next news or collection tries again")
            # The re-read alone: a first full collection, or a slow page on the socket, is not the board's cost.
            await asyncio.sleep(live_gap(self.live_read_s))

    async def _loop(self, every: float, step: Callable[[], Any], what: str) -> None:
        while True:
            started = time.monotonic()
            try:
                await step()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("dashboard %s failed; trying again next round", what)
            await asyncio.sleep(max(0.05, every - (time.monotonic() - started)))

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        tasks = [
            asyncio.create_task(self._loop(self.config.interval_s, self.collect_once, "collection")),
            asyncio.create_task(self._loop(self.config.alert_interval_s, self.check_alerts_once, "alert check")),
        ]
        store = self.app.store
        if store.hears_other_processes:
            # Listening before the server answers: a change made once it is up is never missed.
            if not await asyncio.to_thread(store.listening, store.timeout_s):
                log.warning("dashboard: the store's news channel is not up yet; live updates start when it is")
            tasks.append(asyncio.create_task(self._listen()))
        try:
            yield
        finally:
            for t in tasks:
                t.cancel()
            for t in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await t

    # -- answers ---------------------------------------------------------------------------------------------------

    def decorate(self, snapshot: Snapshot | None) -> dict[str, Any] | None:
        """The snapshot as the page reads it: with the open alerts and the connected pages."""
        if snapshot is None:
            return None
        return {**snapshot.as_json(), "alerts": self.active, "clients": self.hub.counts()}

    async def hello(self) -> dict[str, Any]:
        history = await asyncio.to_thread(self.collector.history)
        recent = await asyncio.to_thread(alerts.recent_alerts, self.app.store)
        # Before this process's first alert check, the open alerts come straight from the store: a page that
        # connects right after a restart must show what is still open, not an empty list until the next check.
        active = self.active if self._active_ids is not None else await asyncio.to_thread(
            alerts.open_alerts, self.app.store)
        return {
            "type": "hello",
            "snapshot": self.decorate(self.collector.latest),
            "alerts": active,
            "history": history,
            "series": {k: {"label": v[0], "unit": v[1]} for k, v in SERIES.items()},
            "recent_alerts": recent,
            "ring_size": self.config.ring_size,
        }

    async def page(self, request: Request) -> Response:
        """The page; opened as /?token=... (the token layer has checked it), it gets the token as an HttpOnly
        cookie for its assets and WebSocket, never inside the HTML (which scripts, caches and extensions read)."""
        text = resources.files("ansf_mcp.dashboard").joinpath("static/index.html").read_text(encoding="utf-8")
        response = HTMLResponse(text, headers={"Referrer-Policy": "no-referrer", "Cache-Control": "no-store"})
        token = request.query_params.get("token")
        if token and self.app.settings.token:
            response.headers.append("Set-Cookie", token_cookie(token))
        return response

    async def favicon(self, request: Request) -> Response:
        data = resources.files("ansf_mcp.dashboard").joinpath("static/favicon.ico").read_bytes()
        return Response(data, media_type="image/x-icon", headers={"Cache-Control": "max-age=86400"})

    async def snapshot(self, request: Request) -> Response:
        return JSONResponse(json.loads(json.dumps(self.decorate(self.collector.latest), default=str)))

    async def metrics(self, request: Request) -> Response:
        return self.prom.response()

    async def websocket(self, ws: WebSocket) -> None:
        await ws.accept()
        # Held out of broadcasts until its hello is sent: a snapshot pushed while the hello is composed would
        # arrive first (the hello carries the latest snapshot anyway).
        self.hub.clients[ws] = True
        try:
            await ws.send_text(json.dumps(await self.hello(), default=str))
            self.hub.clients[ws] = False
            while True:
                message = await ws.receive_json()
                kind = message.get("type") if isinstance(message, dict) else None
                if kind == "pause":
                    self.hub.clients[ws] = True
                elif kind == "resume":
                    await ws.send_text(json.dumps(await self.hello(), default=str))
                    self.hub.clients[ws] = False
        except (WebSocketDisconnect, RuntimeError, ValueError):
            pass
        finally:
            self.hub.clients.pop(ws, None)

    def routes(self) -> list[BaseRoute]:
        static = resources.files("ansf_mcp.dashboard").joinpath("static")
        return [
            Route("/", self.page, methods=["GET"]),
            Route("/favicon.ico", self.favicon, methods=["GET"]),
            Route("/api/snapshot", self.snapshot, methods=["GET"]),
            Route("/metrics", self.metrics, methods=["GET"]),
            WebSocketRoute("/ws", self.websocket),
            Mount("/static", app=StaticFiles(directory=str(static)), name="dashboard-static"),
        ]


def build_dashboard(
    app: Runtime, config: DashboardConfig | None = None
) -> tuple[list[BaseRoute], Callable[[], AbstractAsyncContextManager[None]]]:
    """Routes (/, /static, /ws, /metrics, /api/snapshot) and a context manager factory that runs collection.

    Mount the routes before any catch-all Mount("/") and enter the context inside the server's lifespan.
    """
    dash = Dashboard(app, config or DashboardConfig.load())
    return dash.routes(), dash.running


def dashboard_asgi(runtime: Runtime, config: DashboardConfig | None = None):
    """The standalone ASGI app: /health, the dashboard, token required off loopback (HTTP and WebSocket)."""
    from starlette.applications import Starlette

    from ansf_mcp import web

    routes, running = build_dashboard(runtime, config)
    asgi = Starlette(routes=[web.health_route(runtime), *routes], lifespan=web.lifespan(runtime, running))
    return web.protect(asgi, runtime.settings)


def open_runtime(settings: Settings) -> Runtime:
    """The standalone dashboard's runtime: a watcher. A governor of its own shows this machine's phase and records
    nothing (phase changes are the server's); no model is loaded (the model-load figure is the server's)."""
    return Runtime.open(settings, watcher=True)


def run_dashboard(
    settings: Settings, host: str = "127.0.0.1", port: int = DEFAULT_PORT, config: DashboardConfig | None = None
) -> int:
    """`ansf dashboard`: serve the dashboard over the store of `settings`; returns the process exit code."""
    from pydantic import ValidationError

    from ansf_mcp.store.db import StoreError
    from ansf_mcp.web import ConfigError, check

    try:
        settings = settings.model_copy(update={"host": host, "port": port, "transport": "http"})
        check(settings)  # the server's own rules: a token off loopback, a free port
        config = config or DashboardConfig.load()
        runtime = open_runtime(settings)
    except (ConfigError, StoreError) as exc:
        print(f"ansf dashboard: {exc}", file=sys.stderr)
        return 2
    except ValidationError as exc:
        print(f"ansf dashboard: invalid setting: {invalid_setting(exc)}", file=sys.stderr)
        return 2
    from ansf_mcp.runtime import configure_logging
    from ansf_mcp.web import base_url, run_uvicorn

    configure_logging(settings.log_level)
    asgi = dashboard_asgi(runtime, config)
    try:
        run_uvicorn(asgi, settings, announce=lambda bound: log.warning(
            "ansf-mcp dashboard on %s/ (store %s)", base_url(host, bound), settings.store_label))
    except KeyboardInterrupt:
        pass
    return 0
