"""Resources: the boards and their tasks, readable by URI (JSON) for clients that attach context instead of
calling a tool, and subscribable: a client that subscribed to a board or task URI is told when a tool call that
changes state touched that swarm (handshake-era clients through resources/subscribe, 2026-07-28 clients through
subscriptions/listen, where a board URI hears of every change to the board and a task URI of calls that name the
task). Read only; the same board the tools write.

Change notices come from this server's own tool calls (one shared server per machine serves every relay); a write
made by another replica on a shared PostgreSQL store is not noticed here.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from ansf_mcp.tools.answers import bounded_error
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ResourceError
from mcp.server.subscriptions import ResourceUpdated, SubscriptionBus
from mcp.shared.exceptions import MCPError
from mcp.types import INVALID_PARAMS, EmptyResult, SubscribeRequestParams, UnsubscribeRequestParams

from ansf_mcp.board.board import Board, TaskFilter
from ansf_mcp.board.errors import BoardError
from ansf_mcp.board.lifecycle import BoardPolicy
from ansf_mcp.board.models import SwarmView, TaskView
from ansf_mcp.runtime import Runtime

PAGE = 500
MAX_PAGES = 200  # 100 000 tasks: a bound on one read, far above any board the tools let one swarm hold

JSON = "application/json"
SWARMS = "ansf://swarms"

log = logging.getLogger(__name__)


def _pages(board: Board, swarm_id: str) -> list[SwarmView]:
    views, after = [], None
    for _ in range(MAX_PAGES):
        view = board.view(swarm_id, limit=PAGE, filters=TaskFilter(after_seq=after))
        views.append(view)
        if view.next_cursor is None:
            break
        after = int(view.next_cursor)
    return views


def register(server: MCPServer, app: Runtime, bus: SubscriptionBus | None = None) -> None:
    """Board and task resources on `server`; `bus`: the one the server was built with, for 2026-07-28 clients
    that listen (None: only legacy subscribers are told of changes)."""
    board = Board(app.store, BoardPolicy.from_settings(app.settings), clock=lambda: app.clock())
    watch_changes(server, Subscriptions(), bus)

    def read(fn, *args: str) -> str:
        try:
            return fn(*args)
        except BoardError as exc:  # an unknown swarm or task: one sentence, as the tools answer
            raise ResourceError(bounded_error(str(exc))) from exc

    @server.resource("ansf://swarms", name="swarms", title="Every swarm", mime_type=JSON,
                     description="Every swarm with its agent count and tasks per state.")
    def swarms() -> str:
        return "[" + ",".join(s.model_dump_json() for s in board.summaries()) + "]"

    def whole_board(swarm_id: str) -> str:
        pages = _pages(board, swarm_id)
        tasks = [t for v in pages for t in v.tasks]
        return pages[0].model_copy(update={"tasks": tasks, "next_cursor": None}).model_dump_json()

    @server.resource("ansf://swarms/{swarm_id}", name="board", title="A swarm's board", mime_type=JSON,
                     description="One swarm's agents (with load), counts per state and every task in board order.")
    def swarm_board(swarm_id: str) -> str:
        return read(whole_board, swarm_id)

    def one_task(swarm_id: str, task_id: str) -> str:
        for view in _pages(board, swarm_id):
            found: list[TaskView] = [t for t in view.tasks if t.id == task_id]
            if found:
                return found[0].model_dump_json()
        raise ResourceError(bounded_error(f"swarm {swarm_id} has no task {task_id}; read ansf://swarms/{swarm_id} "
                                          "for its tasks"))

    @server.resource("ansf://swarms/{swarm_id}/tasks/{task_id}", name="task", title="One task", mime_type=JSON,
                     description="One task: state, assignee, dependencies, attempts, description.")
    def task(swarm_id: str, task_id: str) -> str:
        return read(one_task, swarm_id, task_id)


class Subscriptions:
    """Which session asked to hear about which URI; sessions that cannot be reached any more are dropped."""

    def __init__(self) -> None:
        self._by_uri: dict[str, list[Any]] = {}

    def add(self, uri: str, session: Any) -> None:
        sessions = self._by_uri.setdefault(uri, [])
        if all(s is not session for s in sessions):
            sessions.append(session)

    def remove(self, uri: str, session: Any) -> None:
        self._by_uri[uri] = [s for s in self._by_uri.get(uri, []) if s is not session]

    def touched_by(self, swarm_id: str | None) -> list[str]:
        """The subscribed URIs a change to `swarm_id` (or to the list of swarms) may have changed: a claim or an
        outcome can unblock any task of its swarm."""
        board = f"{SWARMS}/{swarm_id}" if swarm_id else None
        return [uri for uri, sessions in self._by_uri.items() if sessions and (
            uri == SWARMS or (board is not None and (uri == board or uri.startswith(board + "/"))))]

    async def notify(self, uris: list[str]) -> None:
        for uri in uris:
            for session in list(self._by_uri.get(uri, [])):
                try:
                    await session.send_resource_updated(uri)
                except Exception as exc:  # a session that went away: forget it, tell the others
                    log.info("dropping a subscription to %s: %s", uri, exc)
                    self.remove(uri, session)


SUBSCRIBABLE = re.compile(r"ansf://swarms(?:/[^/]+(?:/tasks/[^/]+)?)?")


def watch_changes(server: MCPServer, subscriptions: Subscriptions, bus: SubscriptionBus | None) -> None:
    """Subscribe/unsubscribe handlers, and a middleware that, after a tool call that changes state, tells the
    subscribers of the URIs it may have changed: legacy clients through their resources/subscribe, 2026-07-28
    clients through `bus`, the server's subscriptions/listen fan-out (given to MCPServer(subscriptions=...))."""
    # Private SDK parts, for want of public ones in mcp 2.3: MCPServer does not pass the low-level server's
    # `on_subscribe_resource` through, and only a registered resources/subscribe handler advertises the
    # `resources.subscribe` capability, so the handlers go on the low-level server.
    lowlevel = server._lowlevel_server

    def client(ctx: ServerRequestContext[Any, Any]) -> Any:
        # `ctx.session` is a new object on every request (it would notify the standing channel too, but a second
        # subscribe could not be told from the first, nor an unsubscribe matched to it); the connection under it
        # is the one per client, and ServerRequestContext offers no public handle on it.
        return getattr(ctx.session, "_connection", ctx.session)

    async def subscribe(ctx: ServerRequestContext[Any, Any], params: SubscribeRequestParams) -> EmptyResult:
        uri = str(params.uri)
        if not SUBSCRIBABLE.fullmatch(uri):
            # said now: accepted, it would have been a subscription that is never told anything
            raise MCPError(INVALID_PARAMS, bounded_error(
                f"unknown resource {uri!r}: subscribable are ansf://swarms, ansf://swarms/{{swarm_id}} and "
                "ansf://swarms/{swarm_id}/tasks/{task_id}"))
        subscriptions.add(uri, client(ctx))
        return EmptyResult()

    async def unsubscribe(ctx: ServerRequestContext[Any, Any], params: UnsubscribeRequestParams) -> EmptyResult:
        subscriptions.remove(str(params.uri), client(ctx))
        return EmptyResult()

    lowlevel.add_request_handler("resources/subscribe", SubscribeRequestParams, subscribe)
    lowlevel.add_request_handler("resources/unsubscribe", UnsubscribeRequestParams, unsubscribe)
    readers: set[str] = set()

    async def changes(ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        result = await call_next(ctx)
        if ctx.method != "tools/call" or not isinstance(ctx.params, dict):
            return result
        name = ctx.params.get("name")
        if not readers:
            readers.update(t.name for t in await server.list_tools()
                           if t.annotations is not None and t.annotations.read_only_hint)
        failed = result.get("isError") if isinstance(result, dict) else getattr(result, "is_error", False)
        if name in readers or failed:
            return result
        arguments = ctx.params.get("arguments") or {}
        swarm_id = arguments.get("swarm_id") if isinstance(arguments, dict) else None
        swarm_id = swarm_id if isinstance(swarm_id, str) else None
        uris = subscriptions.touched_by(swarm_id)
        if uris:
            await subscriptions.notify(uris)
        if bus is not None:  # 2026-07-28 clients listen on subscriptions/listen; the SDK filters by their URIs
            task_id = arguments.get("task_id") if isinstance(arguments, dict) else None
            changed = [SWARMS, *([f"{SWARMS}/{swarm_id}"] if swarm_id else []),
                       *([f"{SWARMS}/{swarm_id}/tasks/{task_id}"] if swarm_id and isinstance(task_id, str) else [])]
            for uri in dict.fromkeys([*changed, *uris]):
                await bus.publish(ResourceUpdated(uri=uri))
        return result

    server.middleware.append(changes)
