"""Staleness, shrinking, unsupported languages, symlinks, binary and huge files."""

from __future__ import annotations

import os

import pytest

from tests.semantic.conftest import build
from tests.semantic.helpers import err, flat, ok

pytestmark = pytest.mark.anyio


async def test_edits_are_never_served_stale(pyproj_copy, tmp_path):
    server, _app, service = build(pyproj_copy, tmp_path / "data")
    try:
        args = {"name_path": "scale", "relative_path": "src/geo/units.py"}
        assert (await ok(server, "find_references", args))["total"] == 15
        assert (await ok(server, "find_references", args))["total"] == 15  # cached
        # a new file using the name elsewhere in the project
        (pyproj_copy / "src/geo/extra.py").write_text("from geo.units import scale\n\nX = scale(3)\n")
        r = await ok(server, "find_references", args)
        assert r["total"] == 17
        assert ("src/geo/extra.py", 3, "X") in [(x["relative_path"], x["line"], x["symbol"]) for x in flat(r)]
        # an edit of the defining file moves the definition: new content hash, new answer
        units = pyproj_copy / "src/geo/units.py"
        units.write_text('"""Units."""\n\n\nSCALE = 2\n\n\ndef scale(value):\n    return value * SCALE\n')
        r = await ok(server, "find_symbol", {"name_path": "scale", "relative_path": "src/geo/units.py"})
        assert r["matches"][0]["line"] == 7
        # an edit that removes a use
        (pyproj_copy / "src/geo/extra.py").write_text("X = 3\n")
        os.utime(pyproj_copy / "src/geo/extra.py", ns=(1, 1))
        assert (await ok(server, "find_references", args))["total"] == 15
    finally:
        service.shutdown()


async def test_settings_change_changes_fingerprint(pyproj_copy, tmp_path):
    _, _, a = build(pyproj_copy, tmp_path / "data")
    fp_a = a.fingerprint(a.server("python"))
    (pyproj_copy / ".venv/bin").mkdir(parents=True)
    os.symlink(os.path.realpath(os.sys.executable), pyproj_copy / ".venv/bin/python")
    _, _, b = build(pyproj_copy, tmp_path / "data")
    srv_b = b.server("python")
    assert srv_b.spec.init_options["workspace"]["environmentPath"].endswith(".venv/bin/python")
    assert b.fingerprint(srv_b) != fp_a
    a.shutdown()
    b.shutdown()


def sent(result) -> int:
    """Characters of the answer as sent: its text content and its structured content, JSON-encoded."""
    import json

    text = "".join(c.text for c in result.content)
    return len(json.dumps(text, ensure_ascii=False)) + len(
        json.dumps(result.structured_content, separators=(",", ":"), ensure_ascii=False))


async def test_large_answers_are_paged_to_fit_what_is_sent(tmp_path):
    """References come in pages that fit the cap as sent, files whole; the cursors cover every reference once."""
    from ansf_mcp.tools.answers import render
    from ansf_mcp.tools.semantic_tools import overview_steps, reference_steps

    from tests.semantic.conftest import FIXTURES
    from tests.semantic.helpers import call

    server, _, service = build(FIXTURES / "pyproj", tmp_path / "data")
    try:
        args = {"name_path": "scale", "relative_path": "src/geo/units.py"}
        whole = flat(service.find_references(**args))
        assert len(whole) == 15
        for cap in (100_000, 2_500, 1_500):
            server.toolbox.max_answer_chars = cap
            seen, cursor, pages = [], None, 0
            while True:
                result = await call(server, "find_references", {**args, **({"cursor": cursor} if cursor else {})})
                assert not result.is_error, result.content
                page = result.structured_content
                assert sent(result) <= cap and page["total"] == 15 and page["shrunk"] is None
                seen += flat(page)
                pages += 1
                cursor = page["next_cursor"]
                if not cursor:
                    break
            assert seen == whole
            assert (pages == 1) == (cap == 100_000), (cap, pages)
        # a file larger than a page is split; the rest stay whole
        pages_files = [f.relative_path for f in service.find_references(**args, page_chars=400).files]
        assert len(pages_files) == len(set(pages_files))
        # below what one reference needs, the shrinking steps still answer (counts, then the total)
        steps = reference_steps(service.find_references(**args))
        sizes = [render(m, None)[1] for m in (steps.full, *(step() for step in steps.shorter))]
        assert sizes == sorted(sizes, reverse=True) and len(set(sizes)) == 4
        server.toolbox.max_answer_chars = 600  # room for the total alone (below it the answer is an error)
        r = await ok(server, "find_references", args)
        assert r["files"] == [] and r["total"] == 15 and r["shrunk"]
        stale = await err(server, "find_references", {**args, "cursor": "bm90LWEtY3Vyc29y"})
        assert "cursor" in stale
        server.toolbox.max_answer_chars = 900
        r = await ok(server, "symbols_overview", {"relative_path": "src/geo", "depth": 1})
        assert r["shrunk"] and (r["per_file"] or r["total"])
        full = overview_steps(service.symbols_overview("src/geo", 1)).full
        assert render(full, None)[1] > 900
    finally:
        service.shutdown()


async def test_unsupported_and_missing_languages_say_so(tmp_path):
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "lib.rs").write_text("fn main() {}\n")
    (proj / "data.xyz").write_text("hello\n")
    (proj / "main.go").write_text("package main\n\nfunc main() {}\n")
    server, _, service = build(proj, tmp_path / "data")
    try:
        msg = await err(server, "symbols_overview", {"relative_path": "lib.rs"})
        assert "Rust" in msg and "not supported" in msg
        msg = await err(server, "find_symbol", {"name_path": "main", "relative_path": "data.xyz"})
        assert ".xyz" in msg and "Python" in msg
        r = await ok(server, "find_symbol", {"name_path": "main"})
        if r["total"] == 0:  # gopls missing here: the answer says so instead of an empty list
            assert any("Go" in n and "gopls" in n for n in r["notes"])
    finally:
        service.shutdown()


async def test_missing_server_is_explicit(tmp_path, monkeypatch):
    from ansf_mcp.semantic.languages import c, typescript

    monkeypatch.setattr(typescript.shutil, "which", lambda _name: None)
    monkeypatch.setattr(c, "bin_candidates", lambda _name: [])
    proj = tmp_path / "proj"
    (proj / "src").mkdir(parents=True)
    (proj / "src/a.c").write_text("int a(void) { return 1; }\n")
    (proj / "b.ts").write_text("export const b = 1;\n")
    server, _, service = build(proj, tmp_path / "data")
    try:
        msg = await err(server, "symbols_overview", {"relative_path": "src/a.c"})
        assert "C/C++" in msg and "clangd" in msg
        msg = await err(server, "symbols_overview", {"relative_path": "b.ts"})
        assert "TypeScript" in msg and "npm" in msg
    finally:
        service.shutdown()


async def test_symlinks_binary_and_huge_files_refused(tmp_path):
    proj = tmp_path / "proj"
    proj.mkdir()
    outside = tmp_path / "secret.py"
    outside.write_text("TOKEN = 1\n")
    os.symlink(outside, proj / "link.py")
    os.symlink(tmp_path, proj / "linkdir")
    (proj / "bin.py").write_bytes(b"\x00\x01\x02" * 100)
    (proj / "huge.py").write_text("x = 1\n" * 400_000)
    server, _, service = build(proj, tmp_path / "data")
    try:
        assert "outside the project" in await err(server, "symbols_overview", {"relative_path": "link.py"})
        assert "outside the project" in await err(server, "find_symbol", {"name_path": "x",
                                                                           "relative_path": "linkdir"})
        assert "binary" in await err(server, "symbols_overview", {"relative_path": "bin.py"})
        assert "too large" in await err(server, "symbols_overview", {"relative_path": "huge.py"})
        r = await ok(server, "find_symbol", {"name_path": "TOKEN"})
        assert r["total"] == 0  # the symlink leading out is never followed by a scan
        assert any("binary" in n for n in r["notes"]) and any("too large" in n for n in r["notes"])
    finally:
        service.shutdown()
