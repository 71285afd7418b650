"""TypeScript (typescript-language-server from npm) and C (clangd) fixtures: exact answers via the tools."""

from __future__ import annotations

import shutil

import pytest

from tests.conftest import need
from tests.semantic.conftest import FIXTURES, build
from tests.semantic.helpers import flat, ok

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def ts_env(shared_data_dir, tmp_path_factory):
    need(shutil.which("npm") is not None, "npm")
    server, _app, service = build(FIXTURES / "tsproj", shared_data_dir, cache_dir=tmp_path_factory.mktemp("ts"))
    yield server
    service.shutdown()


@pytest.fixture(scope="module")
def c_env(shared_data_dir, tmp_path_factory):
    from ansf_mcp.semantic.languages import bin_candidates

    need(bool(bin_candidates("clangd")), "clangd")
    server, _app, service = build(FIXTURES / "cproj", shared_data_dir, cache_dir=tmp_path_factory.mktemp("c"))
    yield server
    service.shutdown()


async def test_ts_overview_and_references(ts_env):
    r = await ok(ts_env, "symbols_overview", {"relative_path": "src/shape.ts", "depth": 1})
    syms = r["files"]["src/shape.ts"]
    assert [(s["name_path"], s["kind"], s["line"]) for s in syms] == [("Shape", "class", 1), ("scale", "function", 6)]
    assert [c["name_path"] for c in syms[0]["children"]] == ["Shape/constructor", "Shape/name", "Shape/area"]
    r = await ok(ts_env, "find_references", {"name_path": "scale", "relative_path": "src/shape.ts"})
    assert [(x["relative_path"], x["line"], x["symbol"]) for x in flat(r)] == [
        ("src/circle.ts", 1, None), ("src/circle.ts", 8, "Circle/area"), ("src/square.ts", 1, None),
        ("src/square.ts", 8, "Square/area"), ("src/square.ts", 8, "Square/area")]
    r = await ok(ts_env, "find_references", {"name_path": "Shape", "relative_path": "src/shape.ts"})
    assert r["total"] == 6


async def test_ts_definition_and_find_symbol(ts_env):
    # main.ts line 9: console.log(total([new Circle(1), new Square(2)]));
    r = await ok(ts_env, "goto_definition", {"relative_path": "src/main.ts", "line": 9, "column": 24})
    assert [(d["relative_path"], d["line"], d["symbol"]) for d in r["definitions"]] == [
        ("src/circle.ts", 3, "Circle"), ("src/circle.ts", 4, "Circle/constructor")]
    r = await ok(ts_env, "find_symbol", {"name_path": "area"})
    assert sorted(m["name_path"] for m in r["matches"]) == ["Circle/area", "Shape/area", "Square/area"]


async def test_c_overview_and_references(c_env):
    r = await ok(c_env, "symbols_overview", {"relative_path": "include/mathx.h"})
    assert [(s["name_path"], s["line"]) for s in r["files"]["include/mathx.h"]] == [
        ("point", 4), ("add", 9), ("dot", 10)]
    r = await ok(c_env, "find_references", {"name_path": "add", "relative_path": "include/mathx.h"})
    assert [(x["relative_path"], x["line"], x["symbol"]) for x in flat(r)] == [
        ("src/main.c", 7, "main"), ("src/main.c", 8, "main"), ("src/main.c", 9, "main"), ("src/mathx.c", 8, "dot")]


async def test_c_definition(c_env):
    # main.c line 8: `  s = add(s, dot(a, b));` -> dot defined in src/mathx.c line 7
    r = await ok(c_env, "goto_definition", {"relative_path": "src/main.c", "line": 8, "column": 16})
    assert [(d["relative_path"], d["line"]) for d in r["definitions"]] == [("src/mathx.c", 7)]
