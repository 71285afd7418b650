"""A full disk under the data directory: a clear error result, and the board keeps what it had."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from mcp import Client

from ansf_mcp.board import swarms
from ansf_mcp.server.app import build_server
from ansf_mcp.settings import Settings
from ansf_mcp.store.db import StoreError, open_store
from tests.board_helpers import agents
from tests.conftest import need

pytestmark = pytest.mark.anyio


@contextlib.contextmanager
def tmpfs(mount: Path, size: str) -> Iterator[Path]:
    mount.mkdir()
    ok = os.geteuid() == 0 and subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount)], capture_output=True
    ).returncode == 0
    need(ok, f"a {size} tmpfs (root and mount)")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    with tmpfs(tmp_path / "tiny", "400k") as mount:
        yield mount


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """Room for a store whose log is folded back into it when it closes (on the tiny disk it never is)."""
    with tmpfs(tmp_path / "small", "2m") as mount:
        yield mount


async def test_full_disk_is_a_clear_error_and_loses_nothing(tiny_disk: Path) -> None:
    server, app = build_server(Settings(data_dir=tiny_disk / "data", warm_model=False))
    async with Client(server) as client:
        sw = (await client.call_tool("spawn_swarm", {"name": "s", "agents": [{"role": "r"}]})).structured_content
        first = await client.call_tool(
            "coordinate", {"swarm_id": sw["swarm_id"], "tasks": [{"id": "keep", "description": "small"}]}
        )
        assert not first.is_error
        failure = None
        for i in range(200):
            tasks = [{"description": f"{i}-{j} " + "x" * 7000} for j in range(20)]
            result = await client.call_tool("coordinate", {"swarm_id": sw["swarm_id"], "tasks": tasks})
            if result.is_error:
                failure = result.content[0].text
                break
        assert failure is not None, "the 400 KiB disk never filled"
        assert "full" in failure.lower() or "storage" in failure.lower(), failure
        status = await client.call_tool("swarm_status", {"swarm_id": sw["swarm_id"], "limit": 500})
        assert not status.is_error, status.content[0].text
        tasks = status.structured_content["swarm"]["tasks"]
        assert len(tasks) == status.structured_content["swarm"]["tasks_matching"]  # one page holds them all
        assert tasks[0]["id"] == "keep"
        assert len(tasks) % 20 == 1, "a batch was half-written"
    app.shutdown()


async def test_a_disk_that_fills_mid_run_is_named_in_the_error_and_writes_resume_after(tmp_path: Path) -> None:
    # SQLite rolls a transaction back by itself when the disk fills; the store's own ROLLBACK then failed with
    # "cannot rollback - no transaction is active", the only error the caller saw. No root needed: the page
    # limit makes SQLite answer exactly as a full disk does (SQLITE_FULL).
    server, app = build_server(Settings(data_dir=tmp_path / "data", warm_model=False))
    async with Client(server) as client:
        sw = (await client.call_tool("spawn_swarm", {"name": "s", "agents": [{"role": "r"}]})).structured_content
        sid = sw["swarm_id"]
        first = await client.call_tool("coordinate", {"swarm_id": sid, "tasks": [{"id": "keep", "description": "a"}]})
        assert not first.is_error
        store = app.store
        pages = store._writer.execute("PRAGMA page_count").fetchone()[0]  # type: ignore[attr-defined]
        store._writer.execute(f"PRAGMA max_page_count={pages}")  # type: ignore[attr-defined]
        tasks = [{"description": f"{j} " + "x" * 7000} for j in range(20)]
        full = await client.call_tool("coordinate", {"swarm_id": sid, "tasks": tasks})
        assert full.is_error
        assert "full" in full.content[0].text, full.content[0].text
        status = await client.call_tool("swarm_status", {"swarm_id": sid})
        assert not status.is_error and [t["id"] for t in status.structured_content["swarm"]["tasks"]] == ["keep"]
        store._writer.execute("PRAGMA max_page_count=1073741823")  # type: ignore[attr-defined]
        again = await client.call_tool("coordinate", {"swarm_id": sid, "tasks": tasks})
        assert not again.is_error, again.content[0].text
    app.shutdown()


def test_a_store_on_a_full_or_read_only_disk_says_which_when_it_cannot_open(small_disk: Path) -> None:
    # SQLite's own words were "disk I/O error" and "unable to open database file": nothing said the disk was full
    # or mounted read-only, and `ansf status` / `ansf serve` repeated them as they were.
    path = small_disk / "data" / "ansf.sqlite3"
    store = open_store(path)
    swarms.spawn(store, "kept", agents("a"), "mesh")
    store.close()
    filler = os.open(small_disk / "filler", os.O_WRONLY | os.O_CREAT)
    with contextlib.suppress(OSError):
        while True:
            os.write(filler, b"\1" * 4096)
    os.close(filler)
    with pytest.raises(StoreError, match=r"the disk under .* is full: \d+ KiB free"):
        open_store(path)
    os.unlink(small_disk / "filler")
    open_store(path).close()  # closed cleanly: its log and shared-memory files are gone, as after a clean stop
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    with pytest.raises(StoreError, match=r"cannot be written"):
        open_store(path)
    subprocess.run(["mount", "-o", "remount,rw", str(small_disk)], check=True)
    store = open_store(path)
    with store.reading() as conn:
        assert [r[0] for r in conn.execute("SELECT name FROM swarms")] == ["kept"]
    store.close()
