"""Symbolic editing through the MCP tools on a copy of the Python fixture: exact file contents, all or nothing,
confined to the project, exact cache invalidation, true annotations, a read-only setting."""

from __future__ import annotations

import ast
import os
import stat
from pathlib import Path

import pytest
from ansf_mcp.semantic import editing, journal
from ansf_mcp.semantic.service import file_tag, project_tag

from ansf_mcp.bench.semantic_truth import name_lines
from tests.mcp_calls import hints
from tests.semantic.conftest import build
from tests.semantic.helpers import err, flat, ok

pytestmark = pytest.mark.anyio

EDITING = {"replace_symbol_body": (True, False), "insert_before_symbol": (False, False),
           "insert_after_symbol": (False, False), "rename_symbol": (True, False), "safe_delete_symbol": (True, False)}


@pytest.fixture
def env(pyproj_copy, tmp_path):
    server, _app, service = build(pyproj_copy, tmp_path / "data")
    yield server, service, pyproj_copy
    service.shutdown()


def snapshot(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def compiles(root: Path) -> None:
    for p in root.rglob("*.py"):
        ast.parse(p.read_text(encoding="utf-8", errors="replace"))


async def test_annotations_tell_the_truth(env):
    server, _, _ = env
    from mcp import Client

    async with Client(server) as c:
        tools = {t.name: t for t in (await c.list_tools()).tools}
    for name, (destructive, read_only) in EDITING.items():
        a = hints(tools[name])
        assert (a.destructive, a.read_only, a.open_world) == (destructive, read_only, False), name
        assert len(tools[name].description) < 160  # answers: structured content, no listed output schema
    for name in ("search_for_pattern", "get_diagnostics", "find_symbol", "find_references"):
        assert hints(tools[name]).read_only is True
    assert hints(tools["insert_after_symbol"]).idempotent is False  # twice inserts twice


async def test_read_only_setting_removes_and_refuses_edits(pyproj_copy, tmp_path):
    server, _, service = build(pyproj_copy, tmp_path / "data", read_only=True)
    try:
        from mcp import Client

        async with Client(server) as c:
            names = {t.name for t in (await c.list_tools()).tools}
        assert not names & set(EDITING) and {"find_symbol", "search_for_pattern"} <= names
        before = snapshot(pyproj_copy)
        with pytest.raises(editing.EditError, match="read-only"):
            service.rename_symbol("scale", "src/geo/units.py", "rescale")
        assert snapshot(pyproj_copy) == before
    finally:
        service.shutdown()


async def test_replace_symbol_body_evicts_exactly_what_it_stales(env):
    server, service, root = env
    # fill the cache: symbol trees of two files, and a cross-file answer
    await ok(server, "symbols_overview", {"relative_path": "src/geo/rect.py"})
    await ok(server, "symbols_overview", {"relative_path": "src/geo/circle.py"})
    await ok(server, "find_references", {"name_path": "scale", "relative_path": "src/geo/units.py"})
    assert service.cache.count(file_tag("python", "src/geo/rect.py")) == 1
    assert service.cache.count(file_tag("python", "src/geo/circle.py")) == 1
    assert service.cache.count(project_tag("python")) >= 1
    other = (root / "src/geo/circle.py").read_bytes()
    mode = 0o640
    os.chmod(root / "src/geo/rect.py", mode)
    r = await ok(server, "replace_symbol_body", {
        "name_path": "Rect/area", "relative_path": "src/geo/rect.py",
        "body": "def area(self):\n    \"\"\"Width times height, scaled.\"\"\"\n    return scale(self.w * self.h)\n"})
    assert r["files"] == [{"relative_path": "src/geo/rect.py", "edits": 1, "start_line": 13, "end_line": 15}]
    assert (root / "src/geo/rect.py").read_text().splitlines()[12:] == [
        "    def area(self):", '        """Width times height, scaled."""', "        return scale(self.w * self.h)"]
    assert stat.S_IMODE((root / "src/geo/rect.py").stat().st_mode) == mode
    assert not list(root.rglob("*.ansf-*.tmp"))
    assert (root / "src/geo/circle.py").read_bytes() == other
    # exactly: rect's tree and the cross-file answers are gone, circle's tree is still there
    assert service.cache.count(file_tag("python", "src/geo/rect.py")) == 0
    assert service.cache.count(project_tag("python")) == 0
    assert service.cache.count(file_tag("python", "src/geo/circle.py")) == 1
    assert r["cache_entries_invalidated"] >= 2
    found = await ok(server, "find_symbol", {"name_path": "Rect/area", "include_body": True})
    assert "self.w * self.h" in found["matches"][0]["body"]
    refs = await ok(server, "find_references", {"name_path": "scale", "relative_path": "src/geo/units.py"})
    assert refs["total"] == 14  # one use fewer in rect.py, answered fresh
    compiles(root)


async def test_insert_before_and_after(env):
    server, _, root = env
    await ok(server, "insert_after_symbol", {"name_path": "scale", "relative_path": "src/geo/units.py",
                                             "body": "def unscale(value):\n    return value / SCALE"})
    await ok(server, "insert_before_symbol", {"name_path": "Rect/area", "relative_path": "src/geo/rect.py",
                                              "body": "def perimeter(self):\n    return 2 * (self.w + self.h)\n"})
    assert (root / "src/geo/units.py").read_text() == (
        '"""Units."""\n\nSCALE = 2\n\n\ndef scale(value):\n    return value * SCALE\n\n\n'
        "def unscale(value):\n    return value / SCALE\n")
    rect = (root / "src/geo/rect.py").read_text().splitlines()
    assert rect[12:17] == ["    def perimeter(self):", "        return 2 * (self.w + self.h)", "",
                           "    def area(self):", "        return scale(self.w) * scale(self.h)"]
    r = await ok(server, "find_symbol", {"name_path": "Rect", "relative_path": "src/geo/rect.py"})
    assert r["total"] == 1
    over = await ok(server, "symbols_overview", {"relative_path": "src/geo/rect.py", "depth": 1})
    assert [c["name_path"] for c in over["files"]["src/geo/rect.py"][0]["children"] if c["kind"] in ("method", "function")] == [
        "Rect/__init__", "Rect/perimeter", "Rect/area"]
    compiles(root)


async def test_insert_before_a_decorated_function(env):
    server, _, root = env
    path = root / "src/geo/registry.py"
    path.write_text(path.read_text() + "\n\n@staticmethod\n@property\ndef decorated():\n    return 1\n")
    await ok(server, "insert_before_symbol", {"name_path": "decorated", "relative_path": "src/geo/registry.py",
                                              "body": "HELPER = 1"})
    tail = path.read_text().splitlines()[-7:]
    assert tail == ["HELPER = 1", "", "", "@staticmethod", "@property", "def decorated():", "    return 1"]
    await ok(server, "safe_delete_symbol", {"name_path": "decorated", "relative_path": "src/geo/registry.py"})
    assert path.read_text().rstrip().endswith("HELPER = 1") and "@staticmethod" not in path.read_text()


async def test_rename_over_the_project(env):
    server, _, root = env
    before = snapshot(root)
    truth = name_lines(root, "scale")
    r = await ok(server, "rename_symbol", {"name_path": "scale", "relative_path": "src/geo/units.py",
                                           "new_name": "rescale"})
    assert r["total_edits"] == 16 and len(r["files"]) == 8  # 15 references + the definition
    assert "still use" not in r["note"]
    assert name_lines(root, "scale") == set()
    assert name_lines(root, "rescale") == truth
    changed = {k for k, v in snapshot(root).items() if before.get(k) != v}
    assert changed == {f["relative_path"] for f in r["files"]}
    refs = await ok(server, "find_references", {"name_path": "rescale", "relative_path": "src/geo/units.py"})
    assert refs["total"] == 15
    compiles(root)
    msg = await err(server, "rename_symbol", {"name_path": "scale", "relative_path": "src/geo/units.py",
                                              "new_name": "again"})
    assert "no symbol 'scale'" in msg


async def test_rename_is_all_or_nothing(env, monkeypatch):
    server, _, root = env
    before = snapshot(root)
    real = journal._replace_from
    calls = {"n": 0}

    def failing(image, target, side_tmp, expected=None):
        calls["n"] += 1
        if calls["n"] == 4:  # the fourth file of eight: a full disk half-way
            raise OSError(28, "No space left on device")
        return real(image, target, side_tmp, expected)

    monkeypatch.setattr(journal, "_replace_from", failing)
    msg = await err(server, "rename_symbol", {"name_path": "scale", "relative_path": "src/geo/units.py",
                                              "new_name": "rescale"})
    assert "nothing was changed" in msg and "No space left" in msg
    assert snapshot(root) == before
    assert not list(root.rglob("*.ansf-*.tmp"))


async def test_an_edit_refuses_a_file_changed_while_planning(env, monkeypatch):
    _server, service, root = env
    """Another program writes the file between planning and writing, every time: the edit is planned again once,
    then refused; the other program's saves are kept."""
    real = journal.commit

    def meddle(changes, data_dir):
        (root / "src/geo/units.py").write_text((root / "src/geo/units.py").read_text() + "# someone else\n")
        return real(changes, data_dir)

    monkeypatch.setattr(journal, "commit", meddle)
    with pytest.raises(editing.EditError, match="changed on disk"):
        service.replace_symbol_body("scale", "src/geo/units.py", "def scale(value):\n    return value\n")
    assert (root / "src/geo/units.py").read_text().endswith("# someone else\n# someone else\n")
    assert "return value * SCALE" in (root / "src/geo/units.py").read_text()


async def test_an_edit_planned_again_keeps_the_other_programs_save(env, monkeypatch):
    _server, service, root = env
    real = journal.commit
    meddled = []

    def meddle_once(changes, data_dir):
        if not meddled:
            meddled.append(True)
            (root / "src/geo/units.py").write_text((root / "src/geo/units.py").read_text() + "# someone else\n")
        return real(changes, data_dir)

    monkeypatch.setattr(journal, "commit", meddle_once)
    service.replace_symbol_body("scale", "src/geo/units.py", "def scale(value):\n    return value\n")
    text = (root / "src/geo/units.py").read_text()
    assert text.endswith("# someone else\n") and "return value * SCALE" not in text and "    return value\n" in text


async def test_workspace_edits_outside_the_project_are_refused(env, tmp_path):
    _server, service, root = env
    inside = (root / "src/geo/units.py").as_uri()
    edit = {"range": {"start": {"line": 0, "character": 0}, "end": {"line": 0, "character": 0}}, "newText": "x"}
    outside = tmp_path / "outside.py"
    outside.write_text("x = 1\n")
    (root / ".venv/lib").mkdir(parents=True)
    (root / ".venv/lib/dep.py").write_text("x = 1\n")
    for bad in (outside.as_uri(), (root / ".venv/lib/dep.py").as_uri()):
        with pytest.raises(editing.EditError, match="nothing was changed"):
            service._workspace_edit_files({"changes": {inside: [edit], bad: [edit]}})
    with pytest.raises(editing.EditError, match="file operations"):
        service._workspace_edit_files({"documentChanges": [
            {"kind": "rename", "oldUri": inside, "newUri": inside + ".bak"}]})
    assert outside.read_text() == "x = 1\n"


async def test_safe_delete_refuses_while_referenced(env):
    server, _, root = env
    before = snapshot(root)
    msg = await err(server, "safe_delete_symbol", {"name_path": "make_id", "relative_path": "src/geo/base.py"})
    assert "still referenced 2 time(s)" in msg and "src/geo/" in msg
    assert snapshot(root) == before
    original = (root / "src/geo/base.py").read_text()
    await ok(server, "insert_after_symbol", {"name_path": "make_id", "relative_path": "src/geo/base.py",
                                             "body": "def unused(x):\n    return unused(x - 1) if x else 0"})
    r = await ok(server, "safe_delete_symbol", {"name_path": "unused", "relative_path": "src/geo/base.py"})
    assert r["action"] == "safe_delete_symbol"
    assert (root / "src/geo/base.py").read_text().rstrip("\n") == original.rstrip("\n")


async def test_bad_edit_input_is_refused_and_loses_nothing(env):
    server, _, root = env
    before = snapshot(root)
    assert "'..'" in await err(server, "replace_symbol_body", {"name_path": "x", "relative_path": "../pyproj/a.py",
                                                                "body": "x = 1"})
    assert "absolute" in await err(server, "rename_symbol", {"name_path": "scale", "relative_path": "/etc/passwd",
                                                              "new_name": "y"})
    assert "not a valid" in await err(server, "rename_symbol", {"name_path": "scale",
                                                                 "relative_path": "src/geo/units.py",
                                                                 "new_name": "1abc"})
    assert "not a valid" in await err(server, "rename_symbol", {"name_path": "scale",
                                                                 "relative_path": "src/geo/units.py",
                                                                 "new_name": "a b"})
    assert "body" in await err(server, "insert_after_symbol", {"name_path": "scale",
                                                                "relative_path": "src/geo/units.py", "body": ""})
    assert "body" in await err(server, "insert_after_symbol", {"name_path": "scale",
                                                                "relative_path": "src/geo/units.py",
                                                                "body": "x" * 200_001})
    assert "no symbol" in await err(server, "safe_delete_symbol", {"name_path": "nope",
                                                                    "relative_path": "src/geo/units.py"})
    (root / "src/geo/latin1.py").write_bytes(b"def f():\n    return '\xe9'\n")
    assert "UTF-8" in await err(server, "replace_symbol_body", {"name_path": "f", "relative_path": "src/geo/latin1.py",
                                                                 "body": "def f():\n    return 1"})
    after = snapshot(root)
    after.pop("src/geo/latin1.py")
    assert after == before


async def test_crlf_and_bom_are_kept(env):
    server, _, root = env
    path = root / "src/geo/crlf.py"
    path.write_bytes(b"\xef\xbb\xbfdef one():\r\n    return 1\r\n")
    await ok(server, "insert_after_symbol", {"name_path": "one", "relative_path": "src/geo/crlf.py",
                                             "body": "def two():\n    return 2\n"})
    assert path.read_bytes() == b"\xef\xbb\xbfdef one():\r\n    return 1\r\n\r\n\r\ndef two():\r\n    return 2\r\n"


async def test_references_after_edits_are_fresh(env):
    server, _, _root = env
    args = {"name_path": "make_id", "relative_path": "src/geo/base.py"}
    assert (await ok(server, "find_references", args))["total"] == 2
    await ok(server, "insert_after_symbol", {**args, "body": "def uses():\n    return make_id('x')"})
    r = await ok(server, "find_references", args)
    assert r["total"] == 3 and ("src/geo/base.py", "uses") in [(x["relative_path"], x["symbol"]) for x in flat(r)]


async def test_rename_says_which_files_still_use_the_old_name(env):
    server, _, root = env
    (root / "src/geo/other.py").write_text("def scale(x):\n    return x\n\n\nY = scale(2)  # scale\n")
    r = await ok(server, "rename_symbol", {"name_path": "scale", "relative_path": "src/geo/units.py",
                                           "new_name": "rescale"})
    assert "src/geo/other.py" not in [f["relative_path"] for f in r["files"]]
    assert "1 other file(s) still use the name 'scale'" in r["note"] and "src/geo/other.py" in r["note"]


def test_an_edit_to_the_end_of_a_file_adds_no_blank_line():
    from ansf_mcp.semantic.editing import apply_lsp_edits

    text = "import a\nprint(a.total(1))\n"
    # jedi-language-server's whole-line edit of the last line: its end one unit past the final line break
    edit = {"range": {"start": {"line": 1, "character": 0}, "end": {"line": 1, "character": 18}},
            "newText": "print(a.grand_total(1))\n"}
    assert apply_lsp_edits(text, [edit], "utf-16", "m.py") == "import a\nprint(a.grand_total(1))\n"
    # a column past the end of a line's text is that line's end (LSP's rule), elsewhere in the file
    edit = {"range": {"start": {"line": 0, "character": 7}, "end": {"line": 0, "character": 99}}, "newText": "b"}
    assert apply_lsp_edits(text, [edit], "utf-16", "m.py") == "import b\nprint(a.total(1))\n"


async def test_lines_are_counted_as_the_language_server_counts_them(env):
    """A form feed or U+2028 inside a line is no line break for LSP or Python's tokenizer; counted as one, every
    later line number was off by one: edits refused as sharing a line, renames as changed on disk."""
    server, service, root = env
    f = root / "src/geo/breaks.py"
    f.write_text('"""Breaks."""\n# a\u2028b\n\x0c\n\nclass A:\n    def m(self) -> int:\n        x = 1\n        return x\n\n'
                 '    def n(self) -> int:\n        return 2\n\n\nVALUE = A().n()\n', encoding="utf-8")
    service.replace_symbol_body("A/m", "src/geo/breaks.py", "def m(self) -> int:\n    return 5\n")
    service.rename_symbol("A/n", "src/geo/breaks.py", "nn")
    service.rename_symbol("VALUE", "src/geo/breaks.py", "VAL")
    assert f.read_text(encoding="utf-8") == (
        '"""Breaks."""\n# a\u2028b\n\x0c\n\nclass A:\n    def m(self) -> int:\n        return 5\n\n'
        '    def nn(self) -> int:\n        return 2\n\n\nVAL = A().nn()\n')
    found = await ok(server, "search_for_pattern", {"pattern": "VAL =", "relative_path": "src/geo/breaks.py"})
    assert [m["line"] for f in found["files"] for m in f["matches"]] == [13]


async def test_an_insert_keeps_lone_cr_line_endings(env):
    _server, service, root = env
    f = root / "src/geo/cr.py"
    f.write_bytes(b'"""CR."""\r\r\rdef a() -> int:\r    return 1\r')
    r = service.insert_after_symbol("a", "src/geo/cr.py", "def b() -> int:\n    return 2\n")
    assert f.read_bytes() == b'"""CR."""\r\r\rdef a() -> int:\r    return 1\r\r\rdef b() -> int:\r    return 2\r'
    assert (r.files[0].start_line, r.files[0].end_line) == (8, 9)
