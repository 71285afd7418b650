"""The semantic host: status writes never hold up a call, the index budget follows the phase, the root guard."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from ansf_mcp.semantic.host import INDEX_FILES, SemanticHost, StatusPublisher, index_budget
from ansf_mcp.semantic.pool import SemanticCallError
from ansf_mcp.tools.registry import Toolbox, tool_server
from ansf_mcp.tools.semantic_tools import add_tools

from tests.semantic.conftest import FIXTURES, build
from tests.semantic.helpers import ok

pytestmark = pytest.mark.anyio


async def test_a_read_only_call_never_waits_for_the_status_write(tmp_path):
    """The store write is held (as by a lock taken from outside) for the whole call: the call still answers,
    and the write happens once the store lets go."""
    release, entered = threading.Event(), threading.Event()
    written: list[dict] = []

    def held_store(status: str) -> None:
        entered.set()
        release.wait(30)
        written.append(json.loads(status))

    host = SemanticHost(FIXTURES / "pyproj", tmp_path / "data", publish=held_store)
    server = tool_server("host-test")
    add_tools(Toolbox(server), host)
    try:
        r = await ok(server, "symbols_overview", {"relative_path": "src/geo/base.py"})
        assert "src/geo/base.py" in r["files"]
        assert entered.wait(10)  # the write started on its own thread and is stuck in the store
        r = await ok(server, "find_symbol", {"name_path": "Shape"})  # and calls go on answering meanwhile
        assert r["total"] == 1 and written == []
        release.set()
    finally:
        host.shutdown()
    assert written[0]["project_root"] == str((FIXTURES / "pyproj").resolve())
    assert written[-1]["stopped"] is True  # the final word at shutdown


def test_a_failing_store_write_is_forgotten():
    def broken(_status: str) -> None:
        raise OSError("disk full")

    pub = StatusPublisher(lambda: {"x": 1}, broken)
    pub.publish()
    assert pub.written == 0
    unused = StatusPublisher(lambda: {"x": 1}, broken)
    unused.close()  # never used: no final word either
    assert unused.written == 0


def test_index_budget_follows_the_phase():
    assert [index_budget(p) for p in (None, "not governed", "1 critical", "2 enhanced", "3 optimal")] == [
        INDEX_FILES["optimal"], INDEX_FILES["optimal"], 0, INDEX_FILES["enhanced"], INDEX_FILES["optimal"]]
    host = SemanticHost(FIXTURES / "pyproj", Path("/nonexistent-data"), phase=lambda: "1 critical")
    assert host.index_budget() == 0


async def test_the_root_is_refused_before_any_service_starts(tmp_path):
    host = SemanticHost(Path("/"), tmp_path / "data")
    with pytest.raises(SemanticCallError, match="--project"):
        await host.find_symbol("main")
    assert host.status()["started"] is False


async def test_a_store_locked_from_outside_never_holds_a_semantic_call(pyproj_copy, tmp_path):
    """The SQLite write lock is held by another connection (another process would do the same) for the whole
    call: the call answers well under a second; the status is written once the lock is released."""
    import sqlite3
    import time

    server, runtime, _service = build(pyproj_copy, tmp_path / "data")
    runtime.status_providers["semantic"].__self__.publisher.every_s = 0.0  # a write is due after every call
    outside = sqlite3.connect(runtime.store.location, timeout=1, isolation_level=None)
    try:
        await ok(server, "symbols_overview", {"relative_path": "src/geo/base.py"})  # warm: jedi started
        outside.execute("BEGIN IMMEDIATE")
        started = time.monotonic()
        r = await ok(server, "find_symbol", {"name_path": "Shape", "relative_path": "src/geo/base.py"})
        assert r["total"] == 1 and time.monotonic() - started < 1.0
        outside.execute("ROLLBACK")
    finally:
        outside.close()
        runtime.shutdown()
    with sqlite3.connect(runtime.store.location) as conn:
        (status,) = conn.execute("SELECT status FROM component_status WHERE name = 'semantic'").fetchone()
    assert json.loads(status)["stopped"] is True
