"""Shared fixtures: an isolated data directory, an in-process server, and helpers to run `ansf` subprocesses."""

from __future__ import annotations

import gc
import os
import shutil
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from mcp import Client

from ansf_mcp.board.board import Board
from ansf_mcp.board.lifecycle import BoardPolicy
from ansf_mcp.ports import free_port
from ansf_mcp.server.app import build_server
from ansf_mcp.settings import Settings
from ansf_mcp.store.db import Store, open_store
from tests.board_helpers import FakeClock

REQUIRE_ALL = os.environ.get("ANSF_REQUIRE_ALL") == "1"
# Fixture repositories are code the language servers read, with tests of their own: never collected here.
collect_ignore_glob = ["fixtures/*"]


def need(condition: bool, what: str) -> None:
    """Skip when a system dependency is missing locally; under the README test command it must be there."""
    if not condition:
        if REQUIRE_ALL:
            pytest.fail(f"{what} is missing, but the test set-up should have installed it")
        pytest.skip(f"{what} is not installed (the README test command installs it)")


@pytest.fixture(autouse=True)
def _no_frozen_heap_outlives_a_test() -> Iterator[None]:
    """A runtime built in the test process settles the heap after its warm-up (`heap.settle`: gc.freeze), which
    would keep every object alive then, earlier tests' unreachable cycles and their open files included, for the
    rest of the run. The server process wants that; the test process does not."""
    yield
    if gc.get_freeze_count():
        gc.unfreeze()
    from ansf_mcp import heap

    heap.resume_full_collections()  # a warm-up that outlived its test holds full collections back no longer


# The store's two engines; store-level suites run on both (issue 12).
ENGINES = ("sqlite", "postgresql")


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[object]:
    """A throw-away PostgreSQL cluster for the whole session (tests/pg.py); each test takes a database of its own."""
    from ansf_mcp.bench.pgcluster import find_bindir, remove, start_cluster

    need(find_bindir() is not None, "PostgreSQL (initdb, pg_ctl, postgres)")
    cluster = start_cluster()
    try:
        yield cluster
    finally:
        remove(cluster)


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def store_spec(engine: str, request: pytest.FixtureRequest, tmp_path: Path) -> str | Path:
    """What `open_store` / `--store` take for this test's engine: a SQLite path, or a fresh database's URL."""
    if engine == "sqlite":
        return tmp_path / "db.sqlite3"
    return request.getfixturevalue("pg_cluster").new_database()


@pytest.fixture
def store(store_spec: str | Path) -> Iterator[Store]:
    """An open store on this test's engine (a module may define its own `store`, which then wins)."""
    s = open_store(store_spec)
    yield s
    s.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def board(store: Store, clock: FakeClock) -> Board:
    """A board over `store` on the fake clock: 3 attempts, 60 s leases, 600 s takeover grace."""
    return Board(store, BoardPolicy(max_attempts=3, lease_s=60, takeover_grace_s=600), clock=clock)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    d = tmp_path / "data"
    d.mkdir()
    return d


@pytest.fixture
def settings(data_dir: Path, tmp_path: Path) -> Settings:
    # No background model warm-up in tests unless a test asks for it: it would import torch into every server.
    return Settings.load(data_dir=data_dir, project_root=tmp_path, warm_model=False)


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[Client]:
    server, app = build_server(settings)
    async with Client(server) as c:
        yield c
    app.shutdown()


def ansf_command() -> list[str]:
    """The installed console script, as a user runs it."""
    script = shutil.which("ansf", path=str(Path(sys.executable).parent))
    assert script, "the ansf console script is not installed next to this Python"
    return [script]


def subprocess_env(data_dir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["ANSF_DATA_DIR"] = str(data_dir)
    env["ANSF_WARMUP"] = "0"  # tests that want the warm-up set it back to 1
    env["ANSF_STANDALONE"] = "1"  # the in-process server these tests inspect; tests/test_relay.py: the shared one
    env.pop("ANSF_TOKEN", None)
    return env


@pytest.fixture
def http_server(data_dir: Path, tmp_path: Path) -> Iterator[callable]:
    """Start `ansf serve` on an HTTP transport; yields a starter returning (base_url, process)."""
    procs: list[subprocess.Popen[bytes]] = []

    def start(transport: str, *extra: str, host: str = "127.0.0.1") -> tuple[str, subprocess.Popen[bytes]]:
        port = free_port()
        proc = subprocess.Popen(
            [*ansf_command(), "serve", "--transport", transport, "--host", host, "--port", str(port), *extra],
            env=subprocess_env(data_dir),
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        procs.append(proc)
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise AssertionError(f"server exited: {proc.stderr.read().decode()}")
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    return base, proc
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError("server did not become healthy in 30 s")

    yield start
    for proc in procs:
        stop(proc)


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM first (uvicorn shuts down cleanly and coverage data is written), SIGKILL if it lingers."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
