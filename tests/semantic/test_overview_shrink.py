"""Overviews shrink by dropping detail and depth; a class's methods go only when nothing else is left to drop."""

from __future__ import annotations

import pytest
from ansf_mcp.semantic.models import SymbolsOverview
from ansf_mcp.tools.answers import compact_json, render
from ansf_mcp.tools.semantic_tools import overview_steps

from tests.semantic.conftest import FIXTURES, build
from tests.semantic.helpers import ok

pytestmark = pytest.mark.anyio


def _sym(name_path: str, kind: str, line: int, children: list[dict] | None = None) -> dict:
    return {"name_path": name_path, "kind": kind, "relative_path": "m.py", "line": line, "column": 5,
            "start_line": line, "end_line": line + 3, **({"children": children} if children else {})}


OVERVIEW = SymbolsOverview.model_validate({"relative_path": "m.py", "files": {"m.py": [
    _sym("Engine", "class", 1, [_sym("Engine/start", "method", 2, [_sym("Engine/start/speed", "variable", 3)]),
                                _sym("Engine/stop", "method", 6)]),
    _sym("run", "function", 10, [_sym("run/total", "variable", 11)]),
]}})


def _names(model: SymbolsOverview) -> set[str]:
    def walk(items):
        for s in items:
            yield s["name_path"]
            yield from walk(s.get("children") or [])
    return set(walk(model.model_dump(exclude_none=True)["files"].get("m.py", [])))


def test_the_steps_keep_a_class_s_methods_until_only_top_level_names_are_left():
    steps = overview_steps(OVERVIEW)
    shorter = [step() for step in steps.shorter]
    names = [_names(m) for m in shorter]
    detail, _members, bare, top = shorter[:4]
    assert names[0] == _names(steps.full)  # detail dropped, depth kept
    assert {"column", "start_line", "end_line", "relative_path"}.isdisjoint(
        detail.model_dump(exclude_none=True)["files"]["m.py"][0])
    assert names[1] == names[2] == {"Engine", "Engine/start", "Engine/stop", "run"}  # locals go, methods stay
    assert "line" not in bare.model_dump(exclude_none=True)["files"]["m.py"][0]["children"][0]
    assert names[3] == {"Engine", "run"} and top.shrunk.startswith("too large: top-level names only")
    assert shorter[4].per_file == {"m.py": 2} and shorter[5].total == 2
    sizes = [len(compact_json(m.model_dump(exclude_none=True))) for m in (steps.full, *shorter)]
    assert sizes[1:4] == sorted(sizes[1:4], reverse=True) and sizes[0] > sizes[1], sizes


async def test_an_overview_too_large_to_send_whole_keeps_the_class_methods(tmp_path):
    server, _app, service = build(FIXTURES / "pyproj", tmp_path / "data")
    try:
        full = render(overview_steps(service.symbols_overview("src/geo/rect.py", 1)).full, None)[1]
        server.toolbox.max_answer_chars = full - 100
        r = await ok(server, "symbols_overview", {"relative_path": "src/geo/rect.py", "depth": 1})
        assert r["shrunk"] == "too large: columns and ranges dropped"
        (rect,) = r["files"]["src/geo/rect.py"]
        assert [c["name_path"] for c in rect["children"]] == ["Rect/__init__", "Rect/w", "Rect/h", "Rect/area"]
        assert "column" not in rect and rect["line"] == 7
    finally:
        service.shutdown()
