"""Edits with a net: the new content's syntax is checked before anything is written."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from ansf_mcp.semantic import syntax
from ansf_mcp.semantic.editing import EditError, FileChange

from tests.semantic.conftest import build
from tests.semantic.helpers import err, ok

pytestmark = pytest.mark.anyio


@pytest.fixture
def env(pyproj_copy, tmp_path):
    server, _app, service = build(pyproj_copy, tmp_path / "data")
    yield server, service, pyproj_copy
    service.shutdown()


def snapshot(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("tool", ["replace_symbol_body", "insert_before_symbol", "insert_after_symbol"])
async def test_a_body_that_breaks_the_syntax_is_refused_and_nothing_is_written(env, tool):
    server, _, root = env
    before = snapshot(root)
    msg = await err(server, tool, {"name_path": "Rect/area", "relative_path": "src/geo/rect.py",
                                   "body": "def area(self:\n    return self.w * self.h\n"})
    assert "src/geo/rect.py a syntax error" in msg and "line " in msg and "nothing was written" in msg, msg
    assert snapshot(root) == before


async def test_a_good_edit_says_how_its_syntax_was_checked(env):
    server, _, root = env
    r = await ok(server, "replace_symbol_body", {"name_path": "Rect/area", "relative_path": "src/geo/rect.py",
                                                 "body": "def area(self):\n    return self.w * self.h\n"})
    assert r["syntax"] == "syntax checked (Python's parser)"
    assert "return self.w * self.h" in (root / "src/geo/rect.py").read_text()


def _change(rel: str, old: str, new: str) -> FileChange:
    return FileChange(Path(rel), rel, old.encode(), new, False)


def test_a_file_broken_before_the_edit_is_not_blocked_by_it():
    note = syntax.check([_change("a.py", "def f(:\n", "def f(:\n    pass\n")], "python")
    assert note == "syntax checked (Python's parser); a.py had syntax errors before the edit and still has"
    assert syntax.check([_change("a.py", "def f(:\n", "def f():\n    pass\n")], "python") == \
        "syntax checked (Python's parser)"


def test_every_file_of_a_multi_file_edit_is_checked():
    good = _change("a.py", "x = 1\n", "y = 1\n")
    bad = _change("b.py", "x = 1\n", "y = = 1\n")
    with pytest.raises(EditError, match=r"b\.py a syntax error \(invalid syntax at line 1"):
        syntax.check([good, bad], "python")


@pytest.mark.skipif(shutil.which("gofmt") is None, reason="gofmt is not installed")
def test_go_is_checked_with_gofmt():
    old = "package p\n\nfunc F() int { return 1 }\n"
    assert syntax.check([_change("p.go", old, old.replace("1", "2"))], "go") == "syntax checked (gofmt)"
    with pytest.raises(EditError, match=r"p\.go a syntax error \(line 3:.*gofmt\); nothing was written"):
        syntax.check([_change("p.go", old, old.replace("{ return 1 }", "{ return 1"))], "go")


def test_languages_without_a_parser_here_say_not_checked():
    assert syntax.check([_change("a.ts", "let x = 1\n", "let x = (\n")], "typescript") == \
        "syntax not checked (no parser for typescript here)"


async def test_rename_lists_the_old_name_left_in_strings_and_comments_of_the_files_it_changed(env):
    server, _, root = env
    rect = root / "src/geo/rect.py"
    rect.write_text(rect.read_text() + '\n\n# scale is applied to both sides\nLABEL = "scale(w) * scale(h)"\n'
                    'DOC = """Multiplies\nthe scaled sides: scale twice."""\n')
    r = await ok(server, "rename_symbol", {"name_path": "scale", "relative_path": "src/geo/units.py",
                                           "new_name": "rescale"})
    text = rect.read_text()
    assert "# scale is applied" in text and 'LABEL = "scale(w) * scale(h)"' in text  # listed, not changed
    left = [(m["relative_path"], m["kind"], m["text"]) for m in r["leftover_mentions"]]
    n = len(text.splitlines())
    assert left == [("src/geo/rect.py", "comment", "# scale is applied to both sides"),
                    ("src/geo/rect.py", "string", 'LABEL = "scale(w) * scale(h)"'),
                    ("src/geo/rect.py", "string", 'the scaled sides: scale twice."""')], left
    assert [m["line"] for m in r["leftover_mentions"]] == [n - 3, n - 2, n]
    assert "3 mention(s) of 'scale' left in the renamed files (comment, string), not changed" in r["note"]


def test_mentions_outside_python_are_listed_as_text():
    from ansf_mcp.semantic.symbolic_edit import leftover_mentions

    found = leftover_mentions("let rescale = 1;\n// scale it\nconst s = 'scale';\n", "scale", "a.ts", "typescript")
    assert [(m.line, m.kind) for m in found] == [(2, "text"), (3, "text")]
