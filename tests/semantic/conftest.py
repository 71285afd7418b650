"""Shared fixtures: an in-process MCP server with the semantic tools over the fixture repositories, wired as the
server wires them (a Runtime from Settings, `semantic_tools.register`: the same host and hooks)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from ansf_mcp.tools import semantic_tools
from ansf_mcp.tools.registry import Toolbox, tool_server

from ansf_mcp.runtime import Runtime
from ansf_mcp.settings import Settings

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "semantic"


@pytest.fixture
def anyio_backend():
    return "asyncio"


_built: list[Runtime] = []  # every runtime `build` made: shut down when the test (or module) that made it ends


@pytest.fixture(autouse=True)
def _shut_down_what_the_test_built():
    """A runtime a test built and left running keeps its worker and status threads, and with them their store and
    cache connections: a whole run reached over a thousand open descriptors. Shutdown is idempotent."""
    start = len(_built)
    yield
    while len(_built) > start:
        _built.pop().shutdown()


def build(project: Path, data_dir: Path, max_answer_chars: int | None = None, read_only: bool = False,
          **options):
    """(server, runtime, service): the semantic tools over a runtime for `project`; the service is built at once
    (`options` go to it). The background index stays off unless a test starts it."""
    server = tool_server("semantic-test")
    tools = Toolbox(server) if max_answer_chars is None else Toolbox(server, max_answer_chars=max_answer_chars)
    settings = Settings.load(project_root=project.resolve(), data_dir=data_dir.resolve(), read_only=read_only,
                             semantic_index=False, warm_model=False)
    runtime = Runtime.open(settings)
    _built.append(runtime)
    host = semantic_tools.register(tools, runtime, **options)
    server.toolbox = tools  # tests change the answer cap on the fly
    return server, runtime, host.service()


@pytest.fixture(scope="session")
def shared_data_dir(tmp_path_factory) -> Path:
    """One data dir per run (npm installs typescript-language-server into it once)."""
    return tmp_path_factory.mktemp("semantic-data")


@pytest.fixture(scope="module")
def py_env(shared_data_dir, tmp_path_factory):
    cache = tmp_path_factory.mktemp("py-cache")
    server, app, service = build(FIXTURES / "pyproj", shared_data_dir, cache_dir=cache)
    yield server, app, service
    app.shutdown()


@pytest.fixture
def pyproj_copy(tmp_path) -> Path:
    dst = tmp_path / "pyproj"
    shutil.copytree(FIXTURES / "pyproj", dst)
    return dst
