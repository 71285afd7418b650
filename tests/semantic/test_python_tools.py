"""Exact answers through the MCP tools on the Python src-layout fixture (truth known by construction)."""

from __future__ import annotations

import pytest

from tests.mcp_calls import hints
from tests.semantic.helpers import call, err, flat, ok

pytestmark = pytest.mark.anyio

SCALE_REFS = [
    ("src/geo/base.py", 3, None),
    ("src/geo/base.py", 16, "Shape/describe"),
    ("src/geo/circle.py", 4, None),
    ("src/geo/circle.py", 13, "Circle/area"),
    ("src/geo/rect.py", 4, None),
    ("src/geo/rect.py", 14, "Rect/area"),
    ("src/geo/rect.py", 14, "Rect/area"),
    ("src/geo/report.py", 5, None),
    ("src/geo/report.py", 10, "report"),
    ("src/geo/shapes3d.py", 4, None),
    ("src/geo/shapes3d.py", 9, "Cube/volume"),
    ("src/geo/square.py", 4, None),
    ("src/geo/square.py", 13, "Square/area"),
    ("src/geo/triangle.py", 4, None),
    ("src/geo/triangle.py", 14, "Triangle/area"),
]


async def test_tools_listed_with_annotations(py_env):
    server, app, _ = py_env
    from mcp import Client

    async with Client(server) as c:
        tools = {t.name: t for t in (await c.list_tools()).tools}
    for name in ("symbols_overview", "find_symbol", "find_references", "goto_definition"):
        t = tools[name]
        assert hints(t).read_only is True
        assert t.output_schema is None  # answers are structured content; no output schema is listed
        assert len(t.description) < 160
    assert "semantic" in app.status_providers and app.on_shutdown


async def test_symbols_overview_file(py_env):
    server, _, _ = py_env
    r = await ok(server, "symbols_overview", {"relative_path": "src/geo/base.py", "depth": 1})
    syms = r["files"]["src/geo/base.py"]
    assert [(s["name_path"], s["kind"], s["line"]) for s in syms] == [("Shape", "class", 6), ("make_id", "function", 19)]
    assert [c["name_path"] for c in syms[0]["children"]] == ["Shape/__init__", "Shape/name", "Shape/area", "Shape/describe"]
    assert syms[0]["start_line"] == 6 and syms[0]["end_line"] == 16


async def test_symbols_overview_folder(py_env):
    server, _, _ = py_env
    r = await ok(server, "symbols_overview", {"relative_path": "src/geo"})
    assert len(r["files"]) == 13  # every module with symbols (the package __init__ has none)
    assert [s["name_path"] for s in r["files"]["src/geo/errors.py"]] == ["GeoError", "UnknownShape"]


async def test_find_symbol_project_wide_and_scoped(py_env):
    server, _, _ = py_env
    r = await ok(server, "find_symbol", {"name_path": "area"})
    assert sorted(m["name_path"] for m in r["matches"]) == [
        "Circle/area", "Rect/area", "Shape/area", "Square/area", "Triangle/area"]
    assert r["total"] == 5
    r = await ok(server, "find_symbol", {"name_path": "/Shape/area"})
    assert [(m["relative_path"], m["line"]) for m in r["matches"]] == [("src/geo/base.py", 12)]
    r = await ok(server, "find_symbol", {"name_path": "area", "relative_path": "src/geo/rect.py",
                                         "include_body": True})
    assert r["matches"][0]["body"] == "    def area(self):\n        return scale(self.w) * scale(self.h)"
    r = await ok(server, "find_symbol", {"name_path": "Unknown", "substring": True})
    assert [m["name_path"] for m in r["matches"]] == ["UnknownShape"]
    r = await ok(server, "find_symbol", {"name_path": "area", "max_matches": 2})
    assert r["total"] == 5 and len(r["matches"]) == 2 and r["truncated"] is True


async def test_find_symbol_overloads(py_env):
    server, _, _ = py_env
    r = await ok(server, "find_symbol", {"name_path": "convert", "relative_path": "src/geo/overloads.py"})
    assert [(m["name_path"], m["line"]) for m in r["matches"]] == [
        ("convert[0]", 7), ("convert[1]", 11), ("convert[2]", 14)]
    r = await ok(server, "find_symbol", {"name_path": "convert[2]", "relative_path": "src/geo/overloads.py"})
    assert [m["line"] for m in r["matches"]] == [14]


async def test_find_references_name_used_in_many_files(py_env):
    server, _, _ = py_env
    r = await ok(server, "find_references", {"name_path": "scale", "relative_path": "src/geo/units.py"})
    assert r["total"] == 15
    assert [(x["relative_path"], x["line"], x["symbol"]) for x in flat(r)] == SCALE_REFS
    assert flat(r)[1]["context"] == 'return f"{self.name}: {scale(self.area())}"'
    assert r["shrunk"] is None


async def test_find_references_class_and_function(py_env):
    server, _, _ = py_env
    r = await ok(server, "find_references", {"name_path": "Shape", "relative_path": "src/geo/base.py"})
    assert r["total"] == 8
    assert {x["symbol"] for x in flat(r)} == {None, "Circle", "Rect", "Square", "Triangle"}
    r = await ok(server, "find_references", {"name_path": "all_shapes", "relative_path": "src/geo/registry.py"})
    assert [(x["relative_path"], x["line"], x["symbol"]) for x in flat(r)] == [
        ("src/geo/cli.py", 3, None), ("src/geo/cli.py", 9, "main"), ("src/geo/registry.py", 15, "by_name"),
        ("src/geo/report.py", 4, None), ("src/geo/report.py", 9, "report")]
    r = await ok(server, "find_references", {"name_path": "UnknownShape", "relative_path": "src/geo/errors.py"})
    assert [(x["relative_path"], x["line"]) for x in flat(r)] == [
        ("src/geo/registry.py", 4), ("src/geo/registry.py", 18)]


async def test_find_references_cached_second_time(py_env):
    server, _, service = py_env
    args = {"name_path": "make_id", "relative_path": "src/geo/base.py"}
    first = await ok(server, "find_references", args)
    hits = service.cache.hits
    second = await ok(server, "find_references", args)
    assert first == second and first["total"] == 2
    assert service.cache.hits > hits


async def test_goto_definition(py_env):
    server, _, _ = py_env
    # report.py line 10: `    return make_id("report"), scale(total_area(shapes))`
    r = await ok(server, "goto_definition", {"relative_path": "src/geo/report.py", "line": 10, "column": 35})
    assert [(d["relative_path"], d["line"], d["symbol"]) for d in r["definitions"]] == [
        ("src/geo/units.py", 6, "scale")]
    r = await ok(server, "goto_definition", {"relative_path": "src/geo/shapes3d.py", "line": 7, "column": 12})
    assert [(d["relative_path"], d["line"]) for d in r["definitions"]] == [("src/geo/square.py", 7)]
    r = await ok(server, "goto_definition", {"relative_path": "src/geo/report.py", "line": 1, "column": 1})
    assert r["definitions"] == [] and "no definition" in r["note"]


async def test_bad_input_answers_clearly(py_env):
    server, _, _ = py_env
    msg = await err(server, "find_references", {"name_path": "nope", "relative_path": "src/geo/units.py"})
    assert "no symbol 'nope'" in msg and "scale" in msg
    msg = await err(server, "find_references", {"name_path": "area", "relative_path": "src/geo/shapes3d.py"})
    assert "no symbol" in msg
    msg = await err(server, "find_references", {"name_path": "convert", "relative_path": "src/geo/overloads.py"})
    assert "ambiguous" in msg and "convert[1]" in msg
    msg = await err(server, "goto_definition", {"relative_path": "src/geo/report.py", "line": 99, "column": 1})
    assert "outside" in msg and "1-based" in msg
    msg = await err(server, "goto_definition", {"relative_path": "src/geo/report.py", "line": 1, "column": 500})
    assert "column 500" in msg
    msg = await err(server, "find_symbol", {"name_path": ""})
    assert "name_path is empty" in msg
    msg = await err(server, "symbols_overview", {"relative_path": "pyproject.toml"})
    assert "pyproject.toml" in msg and "supported" in msg


async def test_path_safety(py_env, tmp_path):
    server, _, _ = py_env
    assert "'..'" in await err(server, "symbols_overview", {"relative_path": "../cproj/src/main.c"})
    assert "absolute" in await err(server, "symbols_overview", {"relative_path": "/etc/passwd"})
    assert "does not exist" in await err(server, "symbols_overview", {"relative_path": "src/geo/missing.py"})
    r = await call(server, "goto_definition", {"relative_path": "src/geo/units.py", "line": "x", "column": 1})
    assert r.is_error


async def test_undecodable_text_is_handled(py_env):
    server, _, _ = py_env
    r = await ok(server, "symbols_overview", {"relative_path": "src/geo/odd.py"})
    assert [s["name_path"] for s in r["files"]["src/geo/odd.py"]] == ["odd_function"]


async def test_status_provider(py_env):
    server, app, _ = py_env
    await ok(server, "find_symbol", {"name_path": "Shape", "relative_path": "src/geo/base.py"})
    st = app.status_providers["semantic"]()
    assert {"hits", "misses", "evictions", "bytes_on_disk"} <= set(st["cache"])
    assert st["servers"][0]["language"] == "Python" and st["servers"][0]["alive"]
    assert st["servers"][0]["rss_bytes"] > 0
