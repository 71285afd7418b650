"""What the MCP server's HTTP transports and the dashboard share: start-up checks, the token, /health, the
Host/Origin check and the lifespan that starts the runtime with whatever else an app runs.
"""

from __future__ import annotations

import contextlib
import errno
import hmac
import logging
import re
import resource
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from http.cookies import CookieError, SimpleCookie
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from ansf_mcp import __version__
from ansf_mcp.ports import bind_error
from ansf_mcp.runtime import Runtime
from ansf_mcp.settings import LOOPBACK_NAMES, Settings

log = logging.getLogger(__name__)

UNPROTECTED_PATHS = frozenset({"/health"})


class ConfigError(ValueError):
    """A setting that cannot work; the message says which flag to change."""


def check(settings: Settings) -> None:
    """The rules every HTTP listener obeys before it starts: a token off loopback, a free port."""
    if settings.transport != "stdio" and not settings.is_loopback and not settings.token:
        raise ConfigError(
            f"refusing to bind {settings.host} without a token: only {', '.join(sorted(LOOPBACK_NAMES))} are "
            "served without one (--token or ANSF_TOKEN)"
        )
    if settings.transport != "stdio" and settings.port:
        check_port_free(settings.host, settings.port)


def check_port_free(host: str, port: int) -> None:
    """Fail before start-up with a message that names the flag, instead of uvicorn's bare errno."""
    exc = bind_error(host, port)
    if exc is not None:
        # Only a port in use or a privileged one is fixed by another port; a name that does not resolve or an
        # address this machine does not have is fixed by another --host.
        hint = ("choose another with --port" if exc.errno in (errno.EADDRINUSE, errno.EACCES)
                else "give --host an address of this machine")
        raise ConfigError(f"cannot listen on {host}:{port} ({exc.strerror}); {hint}") from exc


# -- token ---------------------------------------------------------------------------------------------------------


# The dashboard page, opened once as /?token=..., gets the token as this cookie (HttpOnly, SameSite=Strict) instead
# of inside its HTML: its assets and WebSocket then authenticate without the token in any URL the page writes.
TOKEN_COOKIE = "ansf_token"
# Methods the cookie authorises: the dashboard only reads. Anything that changes state (MCP's POSTs) needs the token
# itself, so a request a browser was tricked into sending with the cookie can read at most.
COOKIE_METHODS = frozenset({"GET", "HEAD"})


def token_cookie(token: str) -> str:
    """The Set-Cookie value that hands the page its token."""
    return f"{TOKEN_COOKIE}={quote(token, safe='')}; HttpOnly; SameSite=Strict; Path=/"


def _cookie_token(headers: Mapping[str, str]) -> str:
    jar = SimpleCookie()
    try:
        jar.load(headers.get("cookie", ""))
    except CookieError:
        return ""
    morsel = jar.get(TOKEN_COOKIE)
    return unquote(morsel.value) if morsel is not None else ""


class TokenRequired:
    """Rejects requests without the token (Authorization: Bearer, X-ANSF-Token, ?token=, or for reads and the
    WebSocket the dashboard's cookie)."""

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
        # latin-1 decodes any byte: a stray non-UTF-8 header byte is a wrong token, not a server error.
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        offered = headers.get("x-ansf-token", "")
        auth = headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            offered = auth[7:].strip()
        if not offered:
            offered = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token", [""])[0]
        if not offered and (scope["type"] == "websocket" or scope.get("method") in COOKIE_METHODS):
            offered = _cookie_token(headers)
        return bool(offered) and hmac.compare_digest(offered.encode("utf-8", "surrogateescape"), self.token)


# -- Host and Origin -----------------------------------------------------------------------------------------------


_NETLOC = re.compile(r"^(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<name>[A-Za-z0-9.\-]+))(?::(?P<port>[0-9]{1,5}))?$")


def _hostname(netloc: str) -> str | None:
    """The host name of `host[:port]`, lower-case, or None when it is not exactly that shape."""
    m = _NETLOC.match(netloc.strip())
    if not m:
        return None
    return (m.group("v6") or m.group("name")).lower()


def _port(netloc: str, scheme: str) -> int | None:
    """The port of `host[:port]`, the scheme's default when none is written, None when malformed."""
    m = _NETLOC.match(netloc.strip())
    if not m:
        return None
    return int(m.group("port")) if m.group("port") else {"http": 80, "https": 443}.get(scheme)


def refusal(headers: Mapping[str, str], settings: Settings) -> str | None:
    """Why a request must be refused on its Host or Origin header, or None. One rule for every HTTP app.

    Served without a token (a loopback name), the token cannot stop a browser, so: the Host must be one of the
    loopback names exactly (a DNS-rebound name such as `127.0.0.1.evil.example` is not), and so must an Origin's
    host. With a token, an Origin, when sent, must be this very server (a cross-site page cannot borrow it).
    """
    host = headers.get("host", "")
    origin = headers.get("origin")
    if origin == "null":
        return "an opaque (null) Origin is refused"
    if settings.is_loopback:
        if host and _hostname(host) not in LOOPBACK_NAMES:
            return f"Host {host[:100]!r} is not one of {', '.join(sorted(LOOPBACK_NAMES))}"
        if origin:
            parts = urlsplit(origin) if "://" in origin else None
            if parts is None or parts.scheme not in ("http", "https") or _hostname(parts.netloc) not in LOOPBACK_NAMES:
                return f"Origin {origin[:100]!r} is not a loopback page"
            # Another program on this machine serves pages on other loopback ports: only our own port's are ours.
            served_on = _port(host, "http") if host else settings.port
            if _port(parts.netloc, parts.scheme) != served_on:
                return f"Origin {origin[:100]!r} is a page of another port than this server's"
        return None
    if origin and (not host or urlsplit(origin).netloc.lower() != host.lower()):
        return f"Origin {origin[:100]!r} is not this server"
    return None


class HostGuard:
    """Refuses HTTP requests (403) and WebSocket handshakes (close 4403) that `refusal` names."""

    def __init__(self, app: ASGIApp, settings: Settings):
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            headers: dict[str, str] = {}
            for k, v in scope.get("headers", []):
                headers.setdefault(k.decode("latin-1").lower(), v.decode("latin-1"))
            why = refusal(headers, self.settings)
            if why:
                log.warning("refused %s %s: %s", scope["type"], scope.get("path", "")[:200], why)
                if scope["type"] == "websocket":
                    await send({"type": "websocket.close", "code": 4403})
                    return
                await JSONResponse({"error": why}, status_code=403)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def protect(app: ASGIApp, settings: Settings) -> ASGIApp:
    """Every HTTP app's outer layers: the Host/Origin check, then the token when one is set."""
    inner = TokenRequired(app, settings.token) if settings.token else app
    return HostGuard(inner, settings)


# -- /health and the lifespan --------------------------------------------------------------------------------------


def health_route(runtime: Runtime) -> Route:
    async def health(_: Request) -> JSONResponse:
        body = {
            "status": "ok" if runtime.ready else "starting",
            "version": __version__,
            "uptime_s": runtime.uptime_s(),
            # No paths: /health answers anyone, token or not.
            "store": {"schema_version": runtime.store.schema_version, "engine": runtime.store.engine},
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


# -- the listener --------------------------------------------------------------------------------------------------


def _file_limit() -> int:
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return 80_000 if soft == resource.RLIM_INFINITY else soft


def default_max_connections() -> int:
    """Below the open-file limit, leaving room for the store, language servers, logs and one accept batch."""
    soft = _file_limit()
    return max(8, min(10_000, soft - 64 - soft // 8))


def accept_backlog() -> int:
    """asyncio accepts up to `backlog` sockets per wake-up before any is checked against the cap: keep a batch
    inside the room `default_max_connections` leaves."""
    return max(16, min(2048, _file_limit() // 8))


def per_client_share(max_connections: int) -> int:
    """The most connections one client address holds before its own oldest waiting one makes room."""
    return max(8, max_connections // 4)


def _guarded_h11(header_timeout_s: float, max_connections: int) -> type:
    """uvicorn's h11 protocol with the limits uvicorn lacks (its keep-alive timer restarts on every byte and
    nothing bounds the time to send a request): a deadline for a request's headers (and 6x for its body), and a
    cap on open connections, shared fairly.

    Fair sharing, so that a client reopening every connection it loses cannot starve the others: a new connection
    over the whole cap closes a connection waiting for a request — of the address holding the most, else of
    anyone — and is served: first one that sent part of a request and stalled (a slow-header attacker's), oldest
    first; else one idle past a short grace. An address over its share (`per_client_share`) loses its own such
    connection the same way. A connection serving a request, or one just opened, is never closed for another;
    when nothing can be closed at the cap, the newcomer is refused."""
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    share = per_client_share(max_connections)
    # A connection that has sent nothing yet is left alone this long: a real client's headers may be on their way
    # (or unread in a busy loop's socket buffer). Connections that stalled mid-request go first in any case.
    grace_s = header_timeout_s / 2
    by_client: dict[str, set[Any]] = {}

    class GuardedH11Protocol(H11Protocol):
        def connection_made(self, transport: Any) -> None:  # type: ignore[override]
            self._deadline: tuple[Any, Any] | None = None
            self._waiting_since: float | None = None
            self._partial = False  # bytes of a request arrived, the request is not complete
            peer = transport.get_extra_info("peername")
            self._client = str(peer[0]) if isinstance(peer, tuple) and peer else "?"
            super().connection_made(transport)
            mine = by_client.setdefault(self._client, set())
            mine.add(self)
            if len(self.connections) > max_connections:
                # The table is full: room comes from the address holding the most, else from anyone.
                hog = max(by_client.values(), key=len)
                if not (self._make_room(hog) or self._make_room(self.connections)):
                    log.warning("refusing a connection from %s: %d connections are open, the limit "
                                "(ANSF_HTTP_MAX_CONNECTIONS), and all are busy", self._client, max_connections)
                    self.transport.abort()
                    return
            elif len(mine) > share:
                self._make_room(mine)  # over its share: its own stalled connection goes, if it has one
            self._watch()

        def _make_room(self, among: set[Any]) -> bool:
            """Close the stalled (else long-idle) connection of `among` waiting longest; whether there was one."""
            now = self.loop.time()
            waiting = [p for p in among if p is not self and getattr(p, "_waiting_since", None) is not None
                       and (p._partial or now - p._waiting_since >= grace_s)]
            if not waiting:
                return False
            oldest = min(waiting, key=lambda p: (not p._partial, p._waiting_since))
            log.info("closing a connection of %s that is waiting for a request, to make room", oldest._client)
            oldest._disarm()
            oldest.transport.abort()
            return True

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            self._partial = self.conn.their_state is h11.IDLE
            self._watch()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._partial = False
            self._watch()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            mine = by_client.get(self._client)
            if mine is not None:
                mine.discard(self)
                if not mine:
                    del by_client[self._client]
            super().connection_lost(exc)

        def _disarm(self) -> None:
            self._waiting_since = None
            if getattr(self, "_deadline", None) is not None:
                self._deadline[1].cancel()
                self._deadline = None

        def _watch(self) -> None:
            """Arm a deadline while the peer owes us a request (headers, then body); keep it while they trickle."""
            state = self.conn.their_state
            if self.transport.is_closing() or self.transport.get_protocol() is not self:  # closed or upgraded
                self._disarm()
                return
            if state is h11.IDLE:
                limit = header_timeout_s
            elif state is h11.SEND_BODY:
                limit = header_timeout_s * 6
            else:
                self._disarm()
                return
            if self._deadline is not None and self._deadline[0] is state:
                return
            self._disarm()
            self._deadline = (state, self.loop.call_later(limit, self._expired, state))
            if state is h11.IDLE:
                self._waiting_since = self.loop.time()

        def _expired(self, state: Any) -> None:
            self._deadline = None
            self._waiting_since = None
            if self.transport.is_closing() or self.transport.get_protocol() is not self:
                return
            if self.conn.their_state is state:
                log.info("closing a connection that sent no complete request in time (%s)", state.__name__)
                self.transport.close()

    return GuardedH11Protocol


def base_url(host: str, port: int) -> str:
    """`http://host:port` as a browser or client takes it: an IPv6 address in brackets (RFC 3986)."""
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def run_uvicorn(asgi: ASGIApp, settings: Settings, *, announce: Callable[[int], None] | None = None,
                idle: Any = None) -> None:
    """Serve `asgi` on the settings' host and port with header and idle time-outs and a connection cap.
    `announce(port)` is told the port really bound (the kernel's choice for port 0) before serving; `idle` (a
    `server.shared.IdleExit`) stops the server the way Ctrl-C would, so an idle stop exits 0, not by a signal."""
    import uvicorn

    cap = settings.http_max_connections or default_max_connections()
    config = uvicorn.Config(
        asgi,
        host=settings.host,
        port=settings.port,
        http=_guarded_h11(settings.http_header_timeout_s, cap),
        lifespan="on",
        log_config=None,  # keep ours: stderr, repeats rate-limited
        log_level="warning",
        timeout_keep_alive=5,
        backlog=accept_backlog(),
        # uvicorn answers 503 past this many connections or running requests; connections closed to make room
        # are counted until the loop runs their connection_lost, so leave room for one accept batch of them.
        limit_concurrency=cap + accept_backlog() + 1,
        timeout_graceful_shutdown=5,  # SIGTERM: open streams get 5 s, then the lifespan stops the runtime
    )
    server = uvicorn.Server(config)
    if idle is not None:
        idle.stop_with(lambda: setattr(server, "should_exit", True))
    sock = config.bind_socket()  # bound here, so the port is known before anyone is told where to connect
    if announce is not None:
        announce(sock.getsockname()[1])
    server.run(sockets=[sock])
