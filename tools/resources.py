"""Resources: the boards and their tasks, readable by URI (JSON) for clients that attach context instead of
calling a tool. Read only; the same board the tools write."""

from __future__ import annotations

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ResourceError

from ansf_mcp.board.board import Board, TaskFilter
from ansf_mcp.board.errors import BoardError
from ansf_mcp.board.lifecycle import BoardPolicy
from ansf_mcp.board.models import SwarmView, TaskView
from ansf_mcp.runtime import Runtime

PAGE = 500
MAX_PAGES = 200  # 100 000 tasks: a bound on one read, far above any board the tools let one swarm hold

JSON = "application/json"


def _pages(board: Board, swarm_id: str) -> list[SwarmView]:
    views, after = [], None
    for _ in range(MAX_PAGES):
        view = board.view(swarm_id, limit=PAGE, filters=TaskFilter(after_seq=after))
        views.append(view)
        if view.next_cursor is None:
            break
        after = int(view.next_cursor)
    return views


def register(server: MCPServer, app: Runtime) -> None:
    board = Board(app.store, BoardPolicy.from_settings(app.settings), clock=lambda: app.clock())

    def read(fn, *args: str) -> str:
        try:
            return fn(*args)
        except BoardError as exc:  # an unknown swarm or task: one sentence, as the tools answer
            raise ResourceError(str(exc)) from exc

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
        raise ResourceError(f"swarm {swarm_id} has no task {task_id}; read ansf://swarms/{swarm_id} for its tasks")

    @server.resource("ansf://swarms/{swarm_id}/tasks/{task_id}", name="task", title="One task", mime_type=JSON,
                     description="One task: state, assignee, dependencies, attempts, description.")
    def task(swarm_id: str, task_id: str) -> str:
        return read(one_task, swarm_id, task_id)
