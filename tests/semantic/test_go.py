"""Go through Debian's gopls (scripts/test.sh installs it): symbols, references, definitions, diagnostics, rename."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.conftest import need
from tests.semantic.conftest import FIXTURES, build
from tests.semantic.helpers import err, flat, ok

pytestmark = pytest.mark.anyio


@pytest.fixture
def go_env(tmp_path):
    need(shutil.which("gopls") is not None and shutil.which("go") is not None, "gopls and go")
    proj = tmp_path / "goproj"
    shutil.copytree(FIXTURES / "goproj", proj)
    server, _app, service = build(proj, tmp_path / "data")
    yield server, service, proj
    service.shutdown()


async def test_go_symbols_references_definition(go_env):
    server, _, _ = go_env
    r = await ok(server, "symbols_overview", {"relative_path": "shapes/square.go", "depth": 1})
    syms = r["files"]["shapes/square.go"]
    assert [(s["name_path"], s["kind"], s["line"]) for s in syms] == [
        ("Square", "struct", 4), ("(Square).Area", "method", 9), ("Rect", "struct", 14), ("(Rect).Area", "method", 19)]
    r = await ok(server, "find_symbol", {"name_path": "Area", "relative_path": "shapes"})
    assert sorted(m["name_path"] for m in r["matches"]) == ["(Rect).Area", "(Square).Area", "Shape/Area"]
    r = await ok(server, "find_references", {"name_path": "Scale", "relative_path": "shapes/shape.go"})
    assert [(x["relative_path"], x["line"], x["column"], x["symbol"]) for x in flat(r)] == [
        ("main.go", 19, 33, "main"), ("shapes/square.go", 10, 9, "(Square).Area"),
        ("shapes/square.go", 10, 25, "(Square).Area"), ("shapes/square.go", 20, 9, "(Rect).Area"),
        ("shapes/square.go", 20, 22, "(Rect).Area")]
    r = await ok(server, "goto_definition", {"relative_path": "main.go", "line": 19, "column": 36})
    assert [(d["relative_path"], d["line"], d["symbol"]) for d in r["definitions"]] == [
        ("shapes/shape.go", 5, "Scale")]
    msg = await err(server, "find_references", {"name_path": "Area", "relative_path": "shapes/square.go"})
    assert "ambiguous" in msg and "(Rect).Area" in msg


async def test_go_diagnostics_and_rename(go_env):
    server, _, proj = go_env
    r = await ok(server, "get_diagnostics", {"relative_path": "main.go"})
    assert r["diagnostics"] == []
    r = await ok(server, "rename_symbol", {"name_path": "Scale", "relative_path": "shapes/shape.go",
                                           "new_name": "Grow"})
    assert r["total_edits"] == 7 and [f["relative_path"] for f in r["files"]] == ["main.go", "shapes/shape.go",
                                                                                  "shapes/square.go"]
    assert "shapes.Grow(3)" in (proj / "main.go").read_text()
    assert "// Grow multiplies" in (proj / "shapes/shape.go").read_text()  # gopls renames the doc comment too
    out = subprocess.run(["go", "vet", "./..."], cwd=proj, capture_output=True, text=True, timeout=120,
                         env={**__import__("os").environ, "GOPROXY": "off", "GOFLAGS": "-mod=mod"})
    assert out.returncode == 0, out.stderr
    (proj / "shapes/bad.go").write_text("package shapes\n\nfunc Bad() int {\n\treturn \"text\"\n}\n")
    r = await ok(server, "get_diagnostics", {"relative_path": "shapes/bad.go"})
    assert [(d["line"], d["severity"]) for d in r["diagnostics"]] == [(4, "error")], r
