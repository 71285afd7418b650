"""Shared fixtures: an in-process MCP server with the semantic tools over the fixture repositories."""

from __future__ import annotations

import shutil
import types
from pathlib import Path

import pytest
from ansf_mcp.tools.registry import Toolbox, tool_server
from ansf_mcp.tools.semantic_tools import register_with_service

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "semantic"


@pytest.fixture
def anyio_backend():
    return "asyncio"


def make_app(project: Path, data_dir: Path) -> types.SimpleNamespace:
    settings = types.SimpleNamespace(project_root=project.resolve(), data_dir=data_dir.resolve())
    return types.SimpleNamespace(settings=settings, status_providers={}, on_shutdown=[])


def build(project: Path, data_dir: Path, max_answer_chars: int | None = None, **options):
    server = tool_server("semantic-test")
    tools = Toolbox(server) if max_answer_chars is None else Toolbox(server, max_answer_chars=max_answer_chars)
    app = make_app(project, data_dir)
    service = register_with_service(tools, app, **options)
    server.toolbox = tools  # tests change the answer cap on the fly
    return server, app, service


@pytest.fixture(scope="session")
def shared_data_dir(tmp_path_factory) -> Path:
    """One data dir per run (npm installs typescript-language-server into it once)."""
    return tmp_path_factory.mktemp("semantic-data")


@pytest.fixture(scope="module")
def py_env(shared_data_dir, tmp_path_factory):
    cache = tmp_path_factory.mktemp("py-cache")
    server, app, service = build(FIXTURES / "pyproj", shared_data_dir, cache_dir=cache)
    yield server, app, service
    for hook in app.on_shutdown:
        hook()


@pytest.fixture
def pyproj_copy(tmp_path) -> Path:
    dst = tmp_path / "pyproj"
    shutil.copytree(FIXTURES / "pyproj", dst)
    return dst
