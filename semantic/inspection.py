"""Pattern search over the project's files, diagnostics and hover information (mixed into SemanticService)."""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import json
import re
import threading
import time
from pathlib import Path
from typing import Any

from ansf_mcp.semantic.cache import make_key
from ansf_mcp.semantic.languages import language_of
from ansf_mcp.semantic.models import Diagnostics, PatternMatches
from ansf_mcp.semantic.paths import MAX_FILE_BYTES, read_text, resolve_in_root, stamp_ns, walk_files
from ansf_mcp.semantic.positions import from_server, split_lines, to_server

MAX_PATTERN_CHARS = 2_000
MAX_LINE_CHARS = 300  # a matched line is cut around its match to this many characters
MAX_MATCH_LINE = 20_000  # longer lines (minified code) are not searched
SEARCH_FILE_LIMIT = 20_000
SEARCH_SECONDS = 10.0
MAX_INFO_CHARS = 2_000
SEVERITY = {1: "error", 2: "warning", 3: "information", 4: "hint"}


class InputError(ValueError):
    """Bad input to a search (the service maps it to its own input error)."""


def _cursor_encode(state: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(state, separators=(",", ":")).encode()).decode().rstrip("=")


def positions_ok(state: dict) -> bool:
    """A cursor's positions (file, line, reference) are small non-negative integers, or it was not ours."""
    return all(type(state.get(k, 0)) is int and 0 <= state.get(k, 0) < 2**31 for k in ("f", "l", "r"))


def _cursor_decode(cursor: str, what: str) -> dict:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        state = json.loads(raw)
        if not isinstance(state, dict) or not positions_ok(state):
            raise ValueError
        return state
    except (ValueError, json.JSONDecodeError) as exc:
        raise InputError(f"cursor {cursor[:40]!r} is not a cursor this server gave for {what}") from exc


def _cut(line: str, start: int, end: int) -> str:
    line = line.rstrip("\r\n")
    if len(line) <= MAX_LINE_CHARS:
        return line
    half = max(0, (MAX_LINE_CHARS - (end - start)) // 2)
    lo = max(0, start - half)
    hi = min(len(line), lo + MAX_LINE_CHARS)
    return ("…" if lo else "") + line[lo:hi] + ("…" if hi < len(line) else "")


def _size(obj: Any) -> int:
    return len(json.dumps(obj, ensure_ascii=False, separators=(",", ":")))


def compile_linear(pattern: str, ignore_case: bool) -> Any:
    """The pattern compiled by RE2, whose matching time is linear in the line's length: no pattern can hold the
    process (Python's backtracking engine takes exponential time on `(a+)+$` and keeps the GIL meanwhile)."""
    import re2

    try:
        re.compile(pattern)
    except re.error as exc:
        raise InputError(f"pattern is not a valid regular expression: {exc}") from exc
    try:
        return re2.compile(("(?i)" if ignore_case else "") + pattern)
    except Exception as exc:  # re2.error, or the extension's own Error for syntax it does not run
        detail = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        raise InputError(f"pattern uses syntax the linear-time engine (RE2) does not run ({detail}): "
                         "lookarounds and backreferences are not supported; rewrite it without them") from exc


class InspectionMixin:
    # ---- search_for_pattern ------------------------------------------------------------------------
    def search_for_pattern(self, pattern: str, relative_path: str | None = None, include_glob: str | None = None,
                           exclude_glob: str | None = None, context_lines: int = 0, ignore_case: bool = False,
                           code_only: bool = False, cursor: str | None = None, page_chars: int = 20_000,
                           stop: threading.Event | None = None) -> PatternMatches:
        """Regular expression over the project's text files (line by line), paged: `next_cursor` continues."""
        if not pattern or len(pattern) > MAX_PATTERN_CHARS:
            raise InputError(f"pattern must be 1..{MAX_PATTERN_CHARS} characters")
        if not 0 <= context_lines <= 10:
            raise InputError("context_lines must be 0..10")
        rx = compile_linear(pattern, ignore_case)
        start, rel0 = resolve_in_root(self.root, relative_path, kind="any")
        params = hashlib.blake2b(json.dumps([pattern, rel0, include_glob, exclude_glob, context_lines,
                                             ignore_case, code_only]).encode(), digest_size=6).hexdigest()
        skip_files, skip_lines = 0, 0
        if cursor:
            state = _cursor_decode(cursor, "search_for_pattern")
            if state.get("q") != params:
                raise InputError("this cursor belongs to another search (pattern, path or options differ)")
            skip_files, skip_lines = int(state.get("f", 0)), int(state.get("l", 0))
        files_out: list[dict] = []
        notes: list[str] = []
        used = 0
        matches = 0
        t0 = time.monotonic()
        deadline = t0 + SEARCH_SECONDS
        next_cursor = None
        scanned = 0
        files = [start] if start.is_file() else walk_files(self.root, start, None, limit=SEARCH_FILE_LIMIT)
        # The cursor holds a hash of every file walked up to where it resumes (path, change time, size): a file
        # added, removed or edited before that point would shift what "file f, line l" means, skipping or
        # repeating matches, so such a cursor is refused (files after it are read fresh anyway).
        walked = hashlib.blake2b(digest_size=8)
        state_hash = ""
        index = -1
        for index, path in enumerate(files):
            try:
                st = path.stat()
                walked.update(f"{path}\0{stamp_ns(st)}\0{st.st_size}\n".encode("utf-8", "replace"))
            except OSError:
                walked.update(f"{path}\0gone\n".encode("utf-8", "replace"))
            state_hash = walked.hexdigest()
            if index < skip_files:
                continue
            if cursor and index == skip_files and state_hash != state.get("h"):
                raise InputError("the project changed since this cursor was made (a file before where it resumes "
                                 "was added, removed or edited): search again without the cursor")
            if time.monotonic() > deadline or (stop is not None and stop.is_set()):
                next_cursor = _cursor_encode({"q": params, "f": index, "l": 0, "h": state_hash})
                why = "cancelled" if stop is not None and stop.is_set() else "stopped"
                notes.append(f"{why} after {time.monotonic() - t0:.1f} s, {scanned} files scanned (the budget is "
                             f"{SEARCH_SECONDS:.0f} s); continue with next_cursor")
                break
            rel = self.rel(path)
            if rel is None:
                continue
            if include_glob and not (fnmatch.fnmatch(rel, include_glob) or fnmatch.fnmatch(path.name, include_glob)):
                continue
            if exclude_glob and (fnmatch.fnmatch(rel, exclude_glob) or fnmatch.fnmatch(path.name, exclude_glob)):
                continue
            if code_only:
                try:
                    language_of(path)
                except Exception:
                    continue
            try:
                if path.stat().st_size > MAX_FILE_BYTES:
                    continue
                with path.open("rb") as fh:
                    if b"\x00" in fh.read(8192):
                        continue
                text, _clean = read_text(path)
            except OSError:
                continue
            scanned += 1
            lines = split_lines(text)
            group: list[dict] = []
            first_line = skip_lines if index == skip_files else 0
            for i in range(first_line, len(lines)):
                if i % 512 == 511 and (time.monotonic() > deadline or (stop is not None and stop.is_set())):
                    next_cursor = _cursor_encode({"q": params, "f": index, "l": i, "h": state_hash})
                    why = "cancelled" if stop is not None and stop.is_set() else "stopped"
                    notes.append(f"{why} after {time.monotonic() - t0:.1f} s, {scanned} files scanned (in "
                                 f"{rel} at line {i + 1}); continue with next_cursor")
                    break
                line = lines[i]
                if len(line) > MAX_MATCH_LINE:
                    continue
                m = rx.search(line)
                if not m:
                    continue
                item: dict[str, Any] = {"line": i + 1, "column": m.start() + 1, "text": _cut(line, *m.span())}
                if context_lines:
                    item["before"] = [_cut(x, 0, 0) for x in lines[max(0, i - context_lines):i]]
                    item["after"] = [_cut(x, 0, 0) for x in lines[i + 1:i + 1 + context_lines]]
                cost = _size(item) + 1 + (0 if group else _size({"relative_path": rel, "matches": []}) + 1)
                if used + cost > page_chars and (matches or group):
                    next_cursor = _cursor_encode({"q": params, "f": index, "l": i, "h": state_hash})
                    break
                group.append(item)
                used += cost
                matches += 1
            if group:
                files_out.append({"relative_path": rel, "matches": group})
            if next_cursor:
                break
        if cursor and index < skip_files:
            raise InputError("the project changed since this cursor was made (files were removed before where it "
                             "resumes): search again without the cursor")
        return PatternMatches.model_validate({"pattern": pattern, "relative_path": rel0, "files": files_out,
                                              "matches": matches, "next_cursor": next_cursor, "notes": notes})

    # ---- diagnostics -------------------------------------------------------------------------------
    def get_diagnostics(self, relative_path: str, wait_seconds: float = 10.0) -> Diagnostics:
        """What the file's checker reports for its current content. Python: basedpyright's type-aware checks
        (started on the first such call), or jedi's syntax errors where basedpyright is not installed."""
        path, rel, lang = self._file(relative_path)
        srv = self.server(lang)
        checker = srv.spec.server_name or srv.spec.display_name
        note = None
        if lang == "python":
            from ansf_mcp.semantic.languages import LanguageUnavailable

            try:
                srv = self.type_checker()
                checker = "basedpyright"
            except LanguageUnavailable as exc:
                checker = "jedi-language-server (syntax only)"
                note = f"syntax errors only: {exc}"
        published = srv.diagnostics(path, wait=wait_seconds, name=rel)  # a death: LspExited, its sentence said
        lines = self.lines(path)

        def col(ln: int, units: int) -> int:
            return from_server(lines[ln] if 0 <= ln < len(lines) else "", units, srv.position_encoding) + 1

        items = []
        for d in published or []:
            r = d.get("range") or {"start": {"line": 0, "character": 0}, "end": {"line": 0, "character": 0}}
            s, e = r["start"], r["end"]
            items.append({
                "line": s["line"] + 1, "column": col(s["line"], s["character"]),
                "end_line": e["line"] + 1, "end_column": col(e["line"], e["character"]),
                "severity": SEVERITY.get(d.get("severity") or 1, "error"),
                "message": str(d.get("message", ""))[:1000], "checker": checker,
                "source": d.get("source"), "code": None if d.get("code") is None else str(d.get("code")),
            })
        items.sort(key=lambda x: (x["line"], x["column"]))
        if published is None:
            note = (f"{checker} published no diagnostics for {rel} within {wait_seconds:g} s"
                    + (f"; {note}" if note else ""))
        counts: dict[str, int] = {}
        for it in items:
            counts[it["severity"]] = counts.get(it["severity"], 0) + 1
        return Diagnostics.model_validate({"relative_path": rel, "language": srv.spec.language,
                                           "diagnostics": items, "counts": counts, "note": note})

    # ---- hover -------------------------------------------------------------------------------------
    def symbol_info(self, path: Path, rel: str, lang: str, node: dict) -> str | None:
        """Signature and documentation of a symbol (the server's hover at its name), cached per project state."""
        srv = self.server(lang)
        line, col = node["sel"]
        from ansf_mcp.semantic.service import project_tag

        key = make_key(self.fingerprint(srv), rel, self.content_hash(path), "hover", line, col,
                       self.project_state(lang))
        hit = self.cache.get(key)
        if hit is not None:
            return hit.get("text")
        character = to_server(self._line(path, line), col, srv.position_encoding)
        raw = srv.request("textDocument/hover", path, lambda uri: {
            "textDocument": {"uri": uri}, "position": {"line": line, "character": character}})
        text = _hover_text(raw)
        if text and len(text) > MAX_INFO_CHARS:
            text = text[:MAX_INFO_CHARS] + "…"
        if text:
            self.cache.set(key, {"text": text}, tag=project_tag(lang))
        return text


def _hover_text(raw: Any) -> str | None:
    if not raw:
        return None
    contents = raw.get("contents") if isinstance(raw, dict) else raw
    parts: list[str] = []

    def add(c: Any) -> None:
        if isinstance(c, str):
            parts.append(c)
        elif isinstance(c, dict):
            value = c.get("value", "")
            lang = c.get("language")
            parts.append(f"```{lang}\n{value}\n```" if lang else value)
        elif isinstance(c, list):
            for x in c:
                add(x)

    add(contents)
    text = "\n\n".join(p.strip() for p in parts if p and p.strip())
    return text or None
