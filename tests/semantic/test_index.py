"""Background indexing at start: bounded by the operating phase, stopped by shutdown, and it makes the first
heavy reference query a single language-server request."""

from __future__ import annotations

import shutil
import threading

import pytest
from ansf_mcp.semantic.service import file_tag

from tests.semantic.conftest import FIXTURES, build
from tests.semantic.helpers import ok

pytestmark = pytest.mark.anyio
PY_FILES = 14  # the fixture's Python files


async def test_index_at_start_makes_the_first_heavy_query_one_request(pyproj_copy, tmp_path):
    """The server's lifespan starts the index; the first reference query then costs one LSP request."""
    import anyio
    from mcp import Client

    from ansf_mcp.server.app import build_server
    from ansf_mcp.settings import Settings

    settings = Settings.load(data_dir=tmp_path / "data", project_root=pyproj_copy)
    server, runtime = build_server(settings)

    def semantic() -> dict:
        return runtime.status_providers["semantic"]()

    async with Client(server) as c:  # enters the lifespan: the runtime starts, the index begins
        for _ in range(1200):
            if (semantic().get("index") or {}).get("state") == "done":
                break
            await anyio.sleep(0.05)
        status = semantic()
        assert status["index"]["files"] == PY_FILES and status["index"]["stopped"] is None
        before = next(s for s in status["servers"] if s["language"] == "Python")["requests"]
        r = await c.call_tool("find_references", {"name_path": "scale", "relative_path": "src/geo/units.py"})
        assert not r.is_error and r.structured_content["total"] == 15
        after = next(s for s in semantic()["servers"] if s["language"] == "Python")["requests"]
        assert after - before == 1  # references only: every symbol tree came from the index
    assert semantic()["servers"] == [] or not any(s["alive"] for s in semantic()["servers"])


async def test_index_is_bounded_by_the_phase_and_stops(tmp_path):
    _server, _app, service = build(FIXTURES / "pyproj", tmp_path / "data")
    try:
        state = service.index(lambda: 3)
        assert (state["files"], state["state"]) == (3, "stopped") and "allows 3 files" in state["stopped"]
        assert service.cache.count(file_tag("python", "src/geo/base.py")) == 1
        assert service.index(lambda: 0)["stopped"] == "memory is critical: indexing paused"
        phases = iter([2_000] + [0] * 100)  # the phase turns critical after the first check
        state = service.index(lambda: next(phases), recheck_every=5)
        assert (state["files"], state["state"], state["stopped"]) == (5, "stopped", "memory is critical: indexing "
                                                                                    "paused")
        stop = threading.Event()
        stop.set()
        assert service.index(lambda: 2_000, stop)["stopped"] == "server shutting down"
    finally:
        service.shutdown()


async def test_index_setting_off_and_nothing_to_index(tmp_path):
    from ansf_mcp.server.app import build_server
    from ansf_mcp.settings import Settings

    proj = tmp_path / "proj"
    shutil.copytree(FIXTURES / "pyproj", proj)
    settings = Settings.load(data_dir=tmp_path / "data", project_root=proj, semantic_index=False)
    _server, runtime = build_server(settings)
    runtime.start()
    try:
        host = runtime.status_providers["semantic"].__self__  # the SemanticHost the server built
        assert host.index_thread is None  # no index was started, so nothing can start a language server
        assert runtime.status_providers["semantic"]()["started"] is False
    finally:
        runtime.shutdown()
    empty = tmp_path / "empty"
    empty.mkdir()
    _server, _app, service = build(empty, tmp_path / "data2")
    try:
        assert service.index(lambda: 2_000) == {**service.indexing, "state": "done", "files": 0, "total": 0}
        assert service.status()["servers"] == []  # no language server was started for nothing
    finally:
        service.shutdown()


async def test_indexing_does_not_block_queries(pyproj_copy, tmp_path):
    server, _app, service = build(pyproj_copy, tmp_path / "data")
    try:
        t = threading.Thread(target=service.index, args=(lambda: 2_000,), daemon=True)
        t.start()
        r = await ok(server, "find_symbol", {"name_path": "scale", "relative_path": "src/geo/units.py"})
        assert r["total"] == 1
        t.join(60)
        assert service.indexing["state"] == "done"
    finally:
        service.shutdown()
