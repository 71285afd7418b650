"""Paging that never skips (issue 18 item 4): a swarm_status page that must shrink to fit the answer cap lists
what fits, and its cursor continues right after the last task it lists."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from ansf_mcp.tools.answers import MAX_ANSWER_CHARS, compact_json, sent_chars, shape
from ansf_mcp.tools.swarm_tools import SwarmStatus, status_steps, status_text
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mcp import Client

from ansf_mcp.board import swarms
from ansf_mcp.board.board import Board, TaskFilter
from ansf_mcp.board.models import AgentSpec, TaskSpec
from ansf_mcp.board.tasks import insert_tasks
from ansf_mcp.server.app import build_server
from ansf_mcp.store.db import open_store
from tests.mcp_calls import call

MAX_BOARD = 72
# Paragraph-long tasks, as in the issue (a 64-task board where limits 55-60 had to shrink).
PARAGRAPH = "Refactor the module, keep its public names, add tests for each edge and update the docs. " * 12


def task_id(i: int) -> str:
    return f"t{i:03d}-" + "refactor-the-module" * 3  # long ids too: a compact page of 60 tasks must not fit


def paragraph_tasks(n: int) -> list[TaskSpec]:
    return [TaskSpec(id=task_id(i), description=f"task {i}: {PARAGRAPH}") for i in range(n)]


@pytest.fixture(scope="module")
def boards(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Board, dict[int, str]]]:
    """One SQLite board holding a swarm of every size the property test draws from (made as they are drawn)."""
    store = open_store(Path(tmp_path_factory.mktemp("paging")) / "db.sqlite3")
    yield Board(store), {}
    store.close()


def swarm_of(board: Board, made: dict[int, str], size: int) -> str:
    if size not in made:
        made[size] = swarms.spawn(board.store, f"s{size}", [AgentSpec(role="dev")], "mesh")
        if size:
            with board.store.transaction() as conn:
                insert_tasks(conn, made[size], paragraph_tasks(size))
    return made[size]


def page(board: Board, swarm_id: str, limit: int, cursor: str | None) -> dict:
    """swarm_status as the tool answers it: the board's page through the shrinking steps and the answer cap."""
    view = board.view(swarm_id, limit=limit, filters=TaskFilter(after_seq=int(cursor) if cursor else None))
    result = shape(status_steps(SwarmStatus(swarm=view)), status_text, MAX_ANSWER_CHARS)
    data = result.structured_content
    assert sent_chars(result.content[0].text, compact_json(data)) <= MAX_ANSWER_CHARS
    return data["swarm"]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(size=st.integers(0, MAX_BOARD), limit=st.integers(1, MAX_BOARD + 8))
def test_pages_together_list_every_task_exactly_once(boards: tuple[Board, dict[int, str]], size: int,
                                                     limit: int) -> None:
    board, made = boards
    swarm_id = swarm_of(board, made, size)
    seen: list[str] = []
    cursor = None
    for _ in range(size + 1):  # every page lists at least one task, so this bounds the walk
        p = page(board, swarm_id, limit, cursor)
        assert p["tasks"] or size == 0, f"a page of {size} tasks at limit {limit} listed none"
        seen += [t["id"] for t in p["tasks"]]
        assert p["tasks_omitted"] == size - len(seen)
        cursor = p["next_cursor"]
        if cursor is None:
            break
    assert seen == [task_id(i) for i in range(size)]


def test_a_shrunk_page_says_how_many_it_lists(boards: tuple[Board, dict[int, str]]) -> None:
    board, made = boards
    first = page(board, swarm_of(board, made, 64), 60, None)
    listed = len(first["tasks"])
    assert first["shrunk"] == f"compact, first {listed}" and 0 < listed < 60
    assert first["next_cursor"] is not None


@pytest.fixture
def settings_on_engine(settings, store_spec):
    return settings.model_copy(update={"store": str(store_spec)})


@pytest.mark.anyio
async def test_the_issue_board_pages_through_a_real_client(settings_on_engine) -> None:
    """The issue's case through an MCP client on both engines: 64 paragraph-long tasks, limits 55-60."""
    server, runtime = build_server(settings_on_engine)
    try:
        async with Client(server) as client:
            sw = (await call(client, "spawn_swarm", name="p", agents=[{"role": "dev"}]))["swarm_id"]
            await call(client, "coordinate", swarm_id=sw, strategy="round-robin",
                       tasks=[t.model_dump() for t in paragraph_tasks(64)])
            for limit in range(55, 61):
                seen, cursor = [], None
                for _ in range(65):
                    args = {"swarm_id": sw, "limit": limit} | ({"cursor": cursor} if cursor else {})
                    p = (await call(client, "swarm_status", **args))["swarm"]
                    seen += [t["id"] for t in p["tasks"]]
                    cursor = p["next_cursor"]
                    if cursor is None:
                        break
                assert seen == [task_id(i) for i in range(64)], f"limit {limit}"
    finally:
        runtime.shutdown()
