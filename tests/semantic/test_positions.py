"""Columns are code points in every answer, whatever unit the language server counts in (UTF-16, UTF-32)."""

from __future__ import annotations

import shutil

import pytest
from ansf_mcp.semantic.positions import UTF8, UTF16, UTF32, from_server, to_server

from tests.conftest import need
from tests.semantic.conftest import FIXTURES, build
from tests.semantic.helpers import flat, ok

pytestmark = pytest.mark.anyio
WIDE = FIXTURES / "widechars"


def test_conversions_round_trip():
    line = 'x = "🎉名"; y'
    # code points: y at 10; UTF-16: the emoji counts 2 -> 11; UTF-8: emoji 4 bytes, CJK 3 -> 15
    assert [to_server(line, 10, e) for e in (UTF32, UTF16, UTF8)] == [10, 11, 15]
    for enc in (UTF32, UTF16, UTF8):
        for cp in range(len(line) + 2):
            assert from_server(line, to_server(line, cp, enc), enc) == cp
    assert from_server(line, 6, UTF16) == 5  # inside the surrogate pair: rounds down to the emoji
    assert to_server("abc", 2, UTF16) == 2


def _column_points_at(rel: str, line: int, column: int, name: str) -> bool:
    text = (WIDE / rel).read_text(encoding="utf-8").splitlines()[line - 1]
    return text[column - 1:].startswith(name)


async def _check_language(server, rel: str, tag_lines: list[int], loud_line: int, shout_def_line: int):
    r = await ok(server, "find_references", {"name_path": "tag", "relative_path": rel})
    refs = [(x["line"], x["column"]) for x in flat(r)]
    assert sorted({ln for ln, _ in refs}) == tag_lines, refs
    for ln, col in refs:
        assert _column_points_at(rel, ln, col, "tag"), (ln, col)
    # two uses of `tag` on the last line, both after wide characters
    assert len([1 for ln, _ in refs if ln == tag_lines[-1]]) == 2
    # a definition asked at a code-point column after emoji
    text = (WIDE / rel).read_text(encoding="utf-8").splitlines()[loud_line - 1]
    col = text.index("shout(") + 1
    d = await ok(server, "goto_definition", {"relative_path": rel, "line": loud_line, "column": col})
    assert [(x["relative_path"], x["line"]) for x in d["definitions"]] == [(rel, shout_def_line)]
    assert _column_points_at(rel, d["definitions"][0]["line"], d["definitions"][0]["column"], "shout")
    return r


async def test_python_columns_after_emoji_and_cjk(tmp_path):
    server, _, service = build(WIDE, tmp_path / "data")
    try:
        await _check_language(server, "wide.py", [12, 13, 14], 12, 8)
        r = await ok(server, "find_symbol", {"name_path": "QUIET", "relative_path": "wide.py"})
        m = r["matches"][0]
        assert _column_points_at("wide.py", m["line"], m["column"], "QUIET")
        assert service.server("python").position_encoding == UTF32
    finally:
        service.shutdown()


async def test_typescript_columns_are_converted_from_utf16(shared_data_dir, tmp_path):
    need(shutil.which("npm") is not None, "npm")
    server, _, service = build(WIDE, shared_data_dir, cache_dir=tmp_path / "cache")
    try:
        await _check_language(server, "wide.ts", [5, 6, 7], 5, 3)
        assert service.server("typescript").position_encoding == UTF16
        r = await ok(server, "find_symbol", {"name_path": "quiet", "relative_path": "wide.ts"})
        m = r["matches"][0]
        assert _column_points_at("wide.ts", m["line"], m["column"], "quiet")
    finally:
        service.shutdown()


async def test_c_columns(shared_data_dir, tmp_path):
    from ansf_mcp.semantic.languages import bin_candidates

    need(bool(bin_candidates("clangd")), "clangd")
    server, _, service = build(WIDE, shared_data_dir, cache_dir=tmp_path / "cache")
    try:
        await _check_language(server, "wide.c", [5, 6, 7], 5, 3)
        r = await ok(server, "find_symbol", {"name_path": "quiet", "relative_path": "wide.c"})
        m = r["matches"][0]
        assert _column_points_at("wide.c", m["line"], m["column"], "quiet")
    finally:
        service.shutdown()
