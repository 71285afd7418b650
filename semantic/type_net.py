"""New type errors checked before an edit is written (Python, basedpyright).

The type checker is asked for the errors of every file the edit changes twice: for the files as they are, and
for the new content sent to it in memory (the project is never written first; afterwards the checker gets the
files on disk back and forgets what it said about the overlay, so a refused edit leaves no trace in later
answers). An error that the new content has and the old did not (compared by rule and message, not by line,
since an edit moves lines) refuses the edit with the first such error in one sentence, nothing written, unless
the caller allowed type errors. Bounded: at most MAX_FILES files and TYPE_NET_SECONDS in all, a cold start of
the checker included; past that, or with the checker unavailable, dead (noticed at once, not at the end of
the budget), the memory phase critical or a budget of 0 (no checker is started), the answer says "types not
checked" and why.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from ansf_mcp.semantic.defaults import TYPE_NET_SECONDS
from ansf_mcp.semantic.editing import EditError, FileChange
from ansf_mcp.semantic.languages import LanguageUnavailable
from ansf_mcp.semantic.lsp import LspError, LspExited, LspTimeout
from ansf_mcp.semantic.positions import split_lines

if TYPE_CHECKING:
    from ansf_mcp.semantic.lsp import LanguageServer

MAX_FILES = 40  # the language server keeps 64 documents open; an overlay evicted would be checked on disk
CHECKER = "basedpyright"
ERROR = 1


def _key(d: dict, renamed: tuple[str, str] | None) -> tuple[str, str]:
    message = str(d.get("message", "")).strip()
    if renamed:  # an error about the old name is the same error about the new one
        message = re.sub(rf"(?<!\w){re.escape(renamed[0])}(?!\w)", renamed[1], message)
    return str(d.get("code") or d.get("source") or ""), message


def _errors(published: list[dict]) -> list[dict]:
    return [d for d in published if (d.get("severity") or ERROR) == ERROR]


def _uses(path: Path, d: dict, name: str | None) -> bool:
    """Whether the lines of diagnostic `d` in `path` name `name` as a word."""
    if not name:
        return True
    rng = d.get("range") or {}
    first = (rng.get("start") or {}).get("line", 0)
    last = (rng.get("end") or {}).get("line", first)
    try:
        lines = split_lines(path.read_text(encoding="utf-8", errors="replace"))[first:last + 1]
    except OSError:
        return True
    word = re.compile(rf"(?<!\w){re.escape(name)}(?!\w)")
    return any(word.search(line) for line in lines)


def _where(rel: str, d: dict) -> str:
    line = ((d.get("range") or {}).get("start") or {}).get("line", 0) + 1
    return f"{rel}:{line}: {' '.join(str(d.get('message', '')).split())[:300]}"


def check(checker: Callable[[], LanguageServer], changes: list[FileChange], lang: str, *, allow: bool = False,
          renamed: tuple[str, str] | None = None,
          budget_s: float = TYPE_NET_SECONDS, dependents: list[tuple[Path, str]] | None = None,
          name: str | None = None) -> str:
    """Raise EditError when the new contents add type errors (unless `allow`); returns how the types were
    checked, for the edit's answer. `checker()` gives the running type checker (started on first use);
    `dependents` (path, relative path): unchanged files that import `name` from what changed, checked with it:
    there a new error counts only on a line that uses `name` (a call that no longer fits), since inference over
    untyped code moves other verdicts too (an override's inferred return type) without breaking anything."""
    if lang != "python":
        return f"types not checked (no type checker for {lang} here)"
    if len(changes) > MAX_FILES:
        return f"types not checked (the edit changes {len(changes)} files; the net checks at most {MAX_FILES})"
    if budget_s <= 0:  # a budget of 0 turns the net off: not even the checker's start is worth paying for
        return f"types not checked (the type net's budget is {budget_s:g} s)"
    changed = {ch.path for ch in changes}
    deps = [(p, rel) for p, rel in dependents or [] if p not in changed][:MAX_FILES - len(changes)]
    checked = [(ch.path, ch.rel) for ch in changes] + deps
    t0 = time.monotonic()
    try:
        srv = checker()
        before = srv.diagnostics_for({p: None for p, _rel in checked}, wait=budget_s, timeout=budget_s)
        left = budget_s - (time.monotonic() - t0)
        if left <= 0:
            raise TimeoutError
        texts: dict[Path, str | None] = {p: None for p, _rel in deps}
        texts.update({ch.path: ch.new_text for ch in changes})
        after = srv.diagnostics_for(texts, wait=left, timeout=left, fresh=frozenset(p for p, _rel in deps))
    except LanguageUnavailable as exc:
        return f"types not checked ({exc})"
    except (LspTimeout, TimeoutError):
        return f"types not checked ({CHECKER}: no answer within the budget of {budget_s:g} s)"
    except LspExited:
        return f"types not checked ({CHECKER} died before it answered; the next edit starts it again)"
    except LspError as exc:
        return f"types not checked ({CHECKER}: {exc})"
    silent = [rel for p, rel in checked if before.get(p) is None or after.get(p) is None]
    if silent:
        return (f"types not checked ({CHECKER} published nothing for {', '.join(silent[:5])} within "
                f"{budget_s:g} s)")
    new: list[str] = []
    files: list[str] = []  # where the new errors are, in order
    dep_paths = {p for p, _rel in deps}
    for p, rel in checked:
        old = Counter(_key(d, renamed) for d in _errors(before[p] or []))
        for d in _errors(after[p] or []):
            if p in dep_paths and not _uses(p, d, name):
                continue
            k = _key(d, renamed)
            if old[k]:
                old[k] -= 1
            else:
                new.append(_where(rel, d))
                if rel not in files:
                    files.append(rel)
    seconds = f"{time.monotonic() - t0:.1f} s" + (f", {len(deps)} importing file(s) too" if deps else "")
    if not new:
        return f"types checked ({CHECKER}, {seconds}): no new type errors"
    first = "the first" if len(new) > 1 else "it"
    where = f"{first} at {new[0]}" + (f" (in {', '.join(files[:5])})" if len(files) > 1 else "")
    if not allow:
        raise EditError(f"the edit would add {len(new)} type error(s) ({CHECKER}), {where}; nothing was written "
                        "(allow_type_errors=true writes it anyway)")
    return f"types checked ({CHECKER}, {seconds}): {len(new)} new type error(s) written as allowed, {where}"
