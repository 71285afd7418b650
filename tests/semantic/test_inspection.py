"""search_for_pattern, get_diagnostics, find_symbol(include_info) and progress on long queries, through MCP."""

from __future__ import annotations

import re
import shutil

import pytest
from mcp import Client

from tests.conftest import need
from tests.semantic.conftest import FIXTURES, build
from tests.semantic.helpers import call, err, ok

pytestmark = pytest.mark.anyio


async def test_search_for_pattern(py_env):
    server, _, _ = py_env
    r = await ok(server, "search_for_pattern", {"pattern": r"return (scale\(self\.\w+\)) \* (s|3)", "include_glob": "*.py"})
    assert [(f["relative_path"], [m["line"] for m in f["matches"]]) for f in r["files"]] == [
        ("src/geo/rect.py", [14]), ("src/geo/square.py", [13]), ("src/geo/triangle.py", [14])]
    assert r["files"][0]["matches"][0]["column"] == 9 and r["next_cursor"] is None
    assert r["files"][0]["matches"][0]["text"] == "        return scale(self.w) * scale(self.h)"
    r = await ok(server, "search_for_pattern", {"pattern": "^class ", "relative_path": "src/geo/base.py",
                                                "context_lines": 1})
    m = r["files"][0]["matches"][0]
    assert (m["line"], m["before"], m["after"]) == (6, [""], ['    """Base class."""'])
    r = await ok(server, "search_for_pattern", {"pattern": "SCALE", "ignore_case": True, "exclude_glob": "*.toml"})
    assert sum(len(f["matches"]) for f in r["files"]) == r["matches"] > 15
    r = await ok(server, "search_for_pattern", {"pattern": "name", "include_glob": "pyproject.toml"})
    assert [f["relative_path"] for f in r["files"]] == ["pyproject.toml"]  # any text file, not only code
    r = await ok(server, "search_for_pattern", {"pattern": "name", "code_only": True})
    assert "pyproject.toml" not in [f["relative_path"] for f in r["files"]]


async def test_search_pages_fit_what_is_sent(tmp_path):
    proj = tmp_path / "proj"
    proj.mkdir()
    for i in range(30):
        (proj / f"f{i:02d}.txt").write_text("".join(f"needle {i} {j} {'x' * 60}\n" for j in range(10)))
    (proj / "blob.bin").write_bytes(b"\x00needle\x00" * 10)
    (proj / ".git").mkdir()
    (proj / ".git/needle.txt").write_text("needle\n")
    server, _, service = build(proj, tmp_path / "data", max_answer_chars=6_000)
    try:
        seen, cursor, pages = [], None, 0
        while True:
            res = await call(server, "search_for_pattern", {"pattern": "needle", **({"cursor": cursor} if cursor
                                                                                     else {})})
            assert not res.is_error, res.content
            sent = len(res.model_dump_json(by_alias=True, exclude_none=True))
            assert sent <= 6_000 + 200, sent
            page = res.structured_content
            seen += [(f["relative_path"], m["line"]) for f in page["files"] for m in f["matches"]]
            pages += 1
            cursor = page["next_cursor"]
            if not cursor:
                break
        assert pages > 3
        assert seen == [(f"f{i:02d}.txt", j + 1) for i in range(30) for j in range(10)]  # once each, in order
        other = await err(server, "search_for_pattern", {"pattern": "other", "cursor": cursor or "eyJxIjoxfQ"})
        assert "cursor" in other
        # a file added before where a cursor resumes would shift it: skipped and repeated matches, so refused
        first = (await ok(server, "search_for_pattern", {"pattern": "needle"}))
        (proj / "a-first.txt").write_text("needle\n")
        changed = await err(server, "search_for_pattern", {"pattern": "needle", "cursor": first["next_cursor"]})
        assert "project changed" in changed
        # one added after it is read fresh: the cursor still serves
        first = (await ok(server, "search_for_pattern", {"pattern": "needle"}))
        (proj / "z-last.txt").write_text("needle\n")
        page = await ok(server, "search_for_pattern", {"pattern": "needle", "cursor": first["next_cursor"]})
        assert page["files"]
    finally:
        service.shutdown()


async def test_search_bad_input(py_env):
    server, _, _ = py_env
    assert "regular expression" in await err(server, "search_for_pattern", {"pattern": "(unclosed"})
    assert "'..'" in await err(server, "search_for_pattern", {"pattern": "x", "relative_path": "../cproj"})
    assert "absolute" in await err(server, "search_for_pattern", {"pattern": "x", "relative_path": "/etc"})
    assert "pattern" in await err(server, "search_for_pattern", {"pattern": ""})
    assert "cursor" in await err(server, "search_for_pattern", {"pattern": "x", "cursor": "%%%"})


async def test_python_diagnostics_without_a_type_checker_are_jedi_s_syntax_errors(pyproj_copy, tmp_path,
                                                                                   monkeypatch):
    from ansf_mcp.semantic.languages import LanguageUnavailable, python

    def missing(_root):
        raise LanguageUnavailable("Python type checking", "type checking needs basedpyright")

    monkeypatch.setattr(python, "type_checker_spec", missing)
    server, _, service = build(pyproj_copy, tmp_path / "data")
    try:
        r = await ok(server, "get_diagnostics", {"relative_path": "src/geo/units.py"})
        assert r["diagnostics"] == [] and r["counts"] == {} and "syntax errors only" in r["note"]
        (pyproj_copy / "src/geo/broken.py").write_text("def ok():\n    return 1\n\n\ndef broken(:\n    pass\n")
        r = await ok(server, "get_diagnostics", {"relative_path": "src/geo/broken.py"})
        assert [(d["line"], d["severity"]) for d in r["diagnostics"]] == [(5, "error")]
        assert "SyntaxError" in r["diagnostics"][0]["message"] and r["counts"] == {"error": 1}
        assert r["diagnostics"][0]["checker"] == "jedi-language-server (syntax only)"
        # fixed on disk: the next answer is about the new content
        (pyproj_copy / "src/geo/broken.py").write_text("def fixed():\n    return 1\n")
        assert (await ok(server, "get_diagnostics", {"relative_path": "src/geo/broken.py"}))["diagnostics"] == []
        assert "supported" in await err(server, "get_diagnostics", {"relative_path": "pyproject.toml"})
    finally:
        service.shutdown()


async def test_typescript_diagnostics(shared_data_dir, tmp_path):
    need(shutil.which("npm") is not None, "npm")
    proj = tmp_path / "ts"
    proj.mkdir()
    (proj / "tsconfig.json").write_text('{"compilerOptions": {"strict": true}, "include": ["*.ts"]}')
    (proj / "bad.ts").write_text('export const n: number = "text";\nexport const ok = 1;\n')
    server, _, service = build(proj, shared_data_dir, cache_dir=tmp_path / "cache")
    try:
        r = await ok(server, "get_diagnostics", {"relative_path": "bad.ts"})
        assert [(d["line"], d["column"], d["severity"]) for d in r["diagnostics"]] == [(1, 14, "error")]
        assert "string" in r["diagnostics"][0]["message"] and r["language"] == "TypeScript/JavaScript"
    finally:
        service.shutdown()


async def test_find_symbol_with_info(py_env):
    server, _, _ = py_env
    r = await ok(server, "find_symbol", {"name_path": "Shape", "relative_path": "src/geo/base.py",
                                         "include_info": True})
    info = r["matches"][0]["info"]
    assert "Shape" in info and "Base class." in info
    r = await ok(server, "find_symbol", {"name_path": "scale", "relative_path": "src/geo/units.py",
                                         "include_info": True})
    assert "scale(value)" in r["matches"][0]["info"]
    r = await ok(server, "find_symbol", {"name_path": "scale", "relative_path": "src/geo/units.py"})
    assert "info" not in r["matches"][0] or r["matches"][0]["info"] is None


async def test_long_reference_queries_report_progress(tmp_path, monkeypatch):
    """A reference query that takes seconds sends progress notifications (what, files done, seconds)."""
    from ansf_mcp.tools import semantic_tools

    monkeypatch.setattr(semantic_tools, "PROGRESS_EVERY_S", 0.05)
    server, _, service = build(FIXTURES / "pyproj", tmp_path / "data")
    slow = service._describe

    def describe(*args, **kwargs):
        import time

        time.sleep(0.03)
        return slow(*args, **kwargs)

    monkeypatch.setattr(service, "_describe", describe)
    seen: list[tuple[float, str | None]] = []

    async def on_progress(progress, total, message):
        seen.append((progress, message))

    try:
        async with Client(server) as c:
            r = await c.call_tool("find_references", {"name_path": "scale", "relative_path": "src/geo/units.py"},
                                  progress_callback=on_progress)
        assert not r.is_error and r.structured_content["total"] == 15
        assert len(seen) >= 3
        assert [p for p, _ in seen] == sorted(p for p, _ in seen)  # progress only grows
        assert any(m and re.search(r"\d of \d+ files", m) for _, m in seen), seen[-5:]
    finally:
        service.shutdown()
