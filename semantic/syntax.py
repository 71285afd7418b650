"""Syntax checked before an edit is written: the whole new content of every file it changes is parsed, and an
edit that would break a file that parsed before is refused with the parser's error, nothing written.

Python is parsed with `compile()` (the interpreter's own parser, AST only); Go with `gofmt -e` when it is on the
PATH. Other languages have no parser here and are reported as not checked.
"""

from __future__ import annotations

import ast
import shutil
import subprocess

from ansf_mcp.semantic.editing import EditError, FileChange

GOFMT_TIMEOUT_S = 10.0


def _python_error(text: str, rel: str) -> str | None:
    try:
        compile(text, rel, "exec", flags=ast.PyCF_ONLY_AST, dont_inherit=True)
    except SyntaxError as exc:
        return f"{exc.msg} at line {exc.lineno}" + (f", column {exc.offset}" if exc.offset else "")
    except ValueError as exc:  # NUL bytes
        return str(exc)
    return None


def _go_error(text: str, rel: str) -> str | None:
    out = subprocess.run([shutil.which("gofmt") or "gofmt", "-e"], input=text.encode("utf-8"), capture_output=True, timeout=GOFMT_TIMEOUT_S)
    if out.returncode == 0:
        return None
    first = out.stderr.decode("utf-8", "replace").strip().splitlines()[:1]
    # gofmt names stdin "<standard input>:LINE:COL: message"
    return first[0].replace("<standard input>:", "line ", 1) if first else "gofmt refused it"


def _checker(lang: str):
    if lang == "python":
        return "Python's parser", _python_error
    if lang == "go" and shutil.which("gofmt"):
        return "gofmt", _go_error
    return None, None


def check(changes: list[FileChange], lang: str) -> str:
    """Raise EditError when a change would break the syntax of a file that parsed before; returns how the new
    content was checked, for the edit's answer."""
    name, parse = _checker(lang)
    if parse is None:
        return f"syntax not checked (no parser for {lang} here)"
    unchecked = []
    for ch in changes:
        error = parse(ch.new_text, ch.rel)
        if error is None:
            continue
        old_text = ch.old.decode("utf-8", "replace").removeprefix("\ufeff")
        if parse(old_text, ch.rel) is not None:
            unchecked.append(ch.rel)  # already broken: refusing would also refuse the edit that mends it
            continue
        raise EditError(f"the edit would make {ch.rel} a syntax error ({error}; {name}); nothing was written")
    if unchecked:
        return f"syntax checked ({name}); {', '.join(unchecked)} had syntax errors before the edit and still has"
    return f"syntax checked ({name})"
