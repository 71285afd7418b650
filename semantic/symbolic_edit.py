"""Symbolic editing: replace a symbol's body, insert before/after it, rename it, delete it when unreferenced.

Mixed into `SemanticService`. Every edit is planned in memory, confined to the project, written atomically per
file and all or nothing (`editing.commit`), then evicts exactly the cache entries it staled: the symbol trees
of the files it changed and the cross-file answers (references, definitions, hover) of their language.
"""

from __future__ import annotations

import ast
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ansf_mcp.semantic import editing, journal, syntax, type_net
from ansf_mcp.semantic.editing import EditError, FileChange
from ansf_mcp.semantic.languages import language_of
from ansf_mcp.semantic.models import EditedFile, EditResult, Mention
from ansf_mcp.semantic.paths import SKIP_DIRS, PathRefused, resolve_in_root, uri_to_path
from ansf_mcp.semantic.positions import split_lines, to_server

if TYPE_CHECKING:
    from ansf_mcp.semantic import symbols as sym

_IDENT = re.compile(r"^[^\W\d][\w$]*$|^\$[\w$]*$")
MAX_BODY_CHARS = 200_000
MAX_MENTIONS = 50  # leftover mentions listed after a rename; the note gives the full count
READ_ONLY_MESSAGE = ("the semantic layer is read-only (setting ANSF_READ_ONLY=1): editing tools are off; "
                     "nothing was changed")


def _digest(path: Path) -> str | None:
    try:
        return editing.digest(path.read_bytes())
    except OSError:
        return None


def _python_names(text: str, name: str) -> bool:
    """Whether `name` occurs in Python source as a NAME token (not in a string or comment)."""
    import io
    import tokenize

    try:
        return any(t.type == tokenize.NAME and t.string == name
                   for t in tokenize.generate_tokens(io.StringIO(text).readline))
    except (tokenize.TokenError, SyntaxError):
        return True


def _docstring_lines(text: str) -> set[int]:
    """First lines (1-based) of the module's, classes' and functions' docstrings."""
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return set()
    out = set()
    for n in ast.walk(tree):
        if isinstance(n, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and n.body:
            first = n.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) \
                    and isinstance(first.value.value, str):
                out.add(first.lineno)
    return out


def leftover_mentions(text: str, name: str, rel: str, lang: str) -> list[Mention]:
    """Where `name` still occurs as a word in `text` (a file a rename just rewrote): in Python, labelled by the
    token it sits in (docstring, string, comment, code); elsewhere as text."""
    import io
    import tokenize

    word = re.compile(rf"(?<![\w$]){re.escape(name)}(?![\w$])")
    lines = split_lines(text)

    def mention(line: int, kind: str) -> Mention:
        return Mention(relative_path=rel, line=line, kind=kind, text=lines[line - 1].strip()[:160])

    if lang == "python":
        kinds = {tokenize.STRING: "string", tokenize.COMMENT: "comment", tokenize.NAME: "code"}
        docstrings = _docstring_lines(text)
        try:
            out = []
            for t in tokenize.generate_tokens(io.StringIO(text).readline):
                kind = kinds.get(t.type)
                if kind == "string" and t.start[0] in docstrings:
                    kind = "docstring"
                if kind is None or not word.search(t.string):
                    continue
                # a string spanning lines: the line of each occurrence inside it
                for k, part in enumerate(t.string.split("\n")):
                    if word.search(part):
                        out.append(mention(t.start[0] + k, kind))
            return out
        except (tokenize.TokenError, SyntaxError):
            pass
    return [mention(i, "text") for i, ln in enumerate(lines, 1) if word.search(ln)]


class EditingMixin:
    """Needs from the service: root, read_only, cache, server(), type_checker(), _locate(), reference_list(),
    project_scopes(), lines()."""

    read_only: bool = False
    type_net_seconds: float = type_net.TYPE_NET_SECONDS
    edit_conflicts: dict[str, int]  # how often another writer got in first: {"replanned": n, "refused": m}

    # ---- helpers -----------------------------------------------------------------------------------
    def _conflict(self, attempt: int, exc: editing.ChangedOnDisk) -> None:
        """Another writer changed a file the edit read: counted, planned again once, then refused."""
        key = "refused" if attempt else "replanned"
        self.edit_conflicts[key] = self.edit_conflicts.get(key, 0) + 1
        if attempt:
            raise exc

    def _writable(self) -> None:
        if self.read_only:
            raise EditError(READ_ONLY_MESSAGE)

    def _span(self, path: Path, lang: str, loc: sym.Located, lines: list[str], rel: str,
              with_decorators: bool) -> tuple[int, int]:
        """(first, last) 0-based line indexes the symbol occupies, whole lines; decorators included on request."""
        sl, sc, el, ec = loc.node["range"]
        last = el - 1 if ec == 0 and el > sl else el
        last = min(last, len(lines) - 1)
        head = lines[sl][:sc] if sl < len(lines) else ""
        if head.strip() and not head.strip().startswith(("export", "async", "public", "private", "static")):
            raise EditError(f"{loc.name_path} in {rel} shares line {sl + 1} with other code; it cannot be edited "
                            "as whole lines")
        tail = lines[last][ec:].strip() if last == el and ec > 0 else ""
        if tail and not tail.startswith(("#", "//", "/*", ";", ",")):
            raise EditError(f"{loc.name_path} in {rel} shares line {last + 1} with other code; it cannot be "
                            "edited as whole lines")
        first = sl
        if with_decorators:
            first = self._decorator_start(lang, lines, sl, loc)
        return first, last

    @staticmethod
    def _decorator_start(lang: str, lines: list[str], sl: int, loc: sym.Located) -> int:
        if lang == "python":
            try:
                tree = ast.parse("".join(lines))
            except (SyntaxError, ValueError):
                tree = None
            if tree is not None:
                for node in ast.walk(tree):
                    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) \
                            and node.lineno - 1 == sl and node.decorator_list:
                        return min(d.lineno for d in node.decorator_list) - 1  # the '@' line, 0-based
        first = sl
        while first > 0 and lines[first - 1].strip().startswith("@"):
            first -= 1
        return first

    @staticmethod
    def _blank_lines(lang: str, indent: str) -> int:
        return 2 if lang == "python" and not indent else 1

    def _check_body(self, body: str) -> None:
        if not body.strip():
            raise EditError("body is empty; use safe_delete_symbol to remove a symbol")
        if len(body) > MAX_BODY_CHARS:
            raise EditError(f"body is {len(body)} characters; at most {MAX_BODY_CHARS} per edit")

    def _finish(self, changes: list[FileChange], lang: str, allow_type_errors: bool = False,
                renamed: tuple[str, str] | None = None,
                dependents: list[tuple[Path, str]] | None = None, name: str | None = None) -> tuple[int, str, str]:
        """Check the new contents' syntax and types, commit, then evict exactly what the edit staled; returns the
        number of cache entries evicted and how the syntax and the types were checked."""
        checked = syntax.check(changes, lang)
        types = type_net.check(self.type_checker, changes, lang, allow=allow_type_errors, renamed=renamed,
                               budget_s=self.type_net_seconds, dependents=dependents, name=name)
        journal.commit(changes, self.data_dir)
        from ansf_mcp.semantic.service import file_tag, project_tag

        evicted = sum(self.cache.evict(file_tag(lang, ch.rel)) for ch in changes)
        return evicted + self.cache.evict(project_tag(lang)), checked, types

    def _transaction(self, relative_path: str, plan: Callable[[], EditResult]) -> EditResult:
        """`plan()` (which reads, computes and commits) under the lock of the file it edits; planned again once
        when another program changed the file meanwhile, then refused with what changed."""
        self._writable()
        path, _rel = resolve_in_root(self.root, relative_path, kind="file")
        for attempt in range(2):
            with self.locks.hold([path]):
                try:
                    return plan()
                except editing.ChangedOnDisk as exc:
                    self._conflict(attempt, exc)
        raise AssertionError("unreachable")  # pragma: no cover

    def _read_located(self, name_path: str, relative_path: str) -> tuple[Path, str, str, sym.Located, bytes]:
        """The symbol and the bytes its position belongs to: the file read before and after the language server
        answered must be the same, else another program wrote it meanwhile."""
        path, _rel = resolve_in_root(self.root, relative_path, kind="file")
        before = path.read_bytes()
        self.forget(path)
        path, rel, lang, loc = self._locate(name_path, relative_path)
        if path.read_bytes() != before:
            raise editing.ChangedOnDisk(f"{rel} changed on disk while its symbols were read; nothing was changed")
        return path, rel, lang, loc, before

    def _plan_lines(self, name_path: str, relative_path: str, decorators: bool | None, body: str | None):
        self._writable()
        if body is not None:
            self._check_body(body)
        path, rel, lang, loc, before = self._read_located(name_path, relative_path)
        raw, text, bom = editing.load(path, rel)
        if raw != before:
            raise editing.ChangedOnDisk(f"{rel} changed on disk while the edit was prepared; nothing was changed")
        lines = split_lines(text, keepends=True)
        with_decorators = decorators if decorators is not None else bool(body and body.lstrip().startswith("@"))
        first, last = self._span(path, lang, loc, lines, rel, with_decorators)
        def_line = lines[loc.node["range"][0]]
        indent = def_line[: len(def_line) - len(def_line.lstrip())]
        return path, rel, lang, loc, raw, text, bom, lines, first, last, indent

    # ---- tools -------------------------------------------------------------------------------------
    def replace_symbol_body(self, name_path: str, relative_path: str, body: str,
                allow_type_errors: bool = False) -> EditResult:
        """Replace the symbol's whole definition (signature included) with `body`, re-indented to its place.
        Decorators stay unless `body` starts with one."""
        return self._transaction(relative_path, lambda: self._replace_symbol_body(
            name_path, relative_path, body, allow_type_errors))

    def _replace_symbol_body(self, name_path: str, relative_path: str, body: str,
                allow_type_errors: bool) -> EditResult:
        path, rel, lang, loc, raw, text, bom, lines, first, last, indent = self._plan_lines(
            name_path, relative_path, None, body)
        nl = editing.newline_of(text)
        new_lines = editing.reindent(body, indent, nl)
        if last + 1 >= len(lines) and not lines[last].endswith(("\n", "\r")):
            new_lines[-1] = new_lines[-1].rstrip("\r\n")
        new = "".join(lines[:first] + new_lines + lines[last + 1:])
        evicted, checked, types = self._finish([FileChange(path, rel, raw, new, bom)], lang, allow_type_errors,
                                               dependents=self._importers(rel, lang, loc), name=loc.node["name"])
        return self._edit_answer("replace_symbol_body", loc, rel, first, first + len(new_lines) - 1, evicted,
                                 checked, types)

    def insert_before_symbol(self, name_path: str, relative_path: str, body: str,
                allow_type_errors: bool = False) -> EditResult:
        """Insert `body` before the symbol (and its decorators), at its indentation, blank lines between."""
        return self._transaction(relative_path, lambda: self._insert_before_symbol(
            name_path, relative_path, body, allow_type_errors))

    def _insert_before_symbol(self, name_path: str, relative_path: str, body: str,
                allow_type_errors: bool) -> EditResult:
        path, rel, lang, loc, raw, text, bom, lines, first, _last, indent = self._plan_lines(
            name_path, relative_path, True, body)
        nl = editing.newline_of(text)
        new_lines = editing.reindent(body, indent, nl) + [nl] * self._blank_lines(lang, indent)
        new = "".join(lines[:first] + new_lines + lines[first:])
        evicted, checked, types = self._finish([FileChange(path, rel, raw, new, bom)], lang, allow_type_errors)
        n = len(editing.reindent(body, indent, nl))
        return self._edit_answer("insert_before_symbol", loc, rel, first, first + n - 1, evicted, checked, types)

    def insert_after_symbol(self, name_path: str, relative_path: str, body: str,
                allow_type_errors: bool = False) -> EditResult:
        """Insert `body` after the symbol's last line, at its indentation, blank lines between."""
        return self._transaction(relative_path, lambda: self._insert_after_symbol(
            name_path, relative_path, body, allow_type_errors))

    def _insert_after_symbol(self, name_path: str, relative_path: str, body: str,
                allow_type_errors: bool) -> EditResult:
        path, rel, lang, loc, raw, text, bom, lines, _first, last, indent = self._plan_lines(
            name_path, relative_path, False, body)
        nl = editing.newline_of(text)
        before = list(lines[: last + 1])
        if not before[-1].endswith(("\n", "\r")):
            before[-1] += nl
        blank = [nl] * self._blank_lines(lang, indent)
        body_lines = editing.reindent(body, indent, nl)
        new = "".join(before + blank + body_lines + lines[last + 1:])
        evicted, checked, types = self._finish([FileChange(path, rel, raw, new, bom)], lang, allow_type_errors)
        start = last + 1 + len(blank)
        return self._edit_answer("insert_after_symbol", loc, rel, start, start + len(body_lines) - 1, evicted,
                                 checked, types)

    def safe_delete_symbol(self, name_path: str, relative_path: str) -> EditResult:
        """Delete the symbol (with its decorators) only when nothing outside its own body refers to it."""
        return self._transaction(relative_path, lambda: self._safe_delete_symbol(name_path, relative_path))

    def _safe_delete_symbol(self, name_path: str, relative_path: str) -> EditResult:
        path, rel, lang, loc, before = self._read_located(name_path, relative_path)
        path, rel, lang, loc, refs = self.reference_list(name_path, relative_path)[:5]
        raw, text, bom = editing.load(path, rel)
        if raw != before:
            raise editing.ChangedOnDisk(f"{rel} changed on disk while the edit was prepared; nothing was changed")
        lines = split_lines(text, keepends=True)
        first, last = self._span(path, lang, loc, lines, rel, True)
        outside = [r for r in refs if not (r["relative_path"] == rel and first + 1 <= r["line"] <= last + 1)]
        if outside:
            shown = ", ".join(f"{r['relative_path']}:{r['line']}" for r in outside[:10])
            more = f" and {len(outside) - 10} more" if len(outside) > 10 else ""
            raise EditError(f"{loc.name_path} is still referenced {len(outside)} time(s): {shown}{more}; nothing "
                            "was deleted (remove or rename the uses first)")
        end = last + 1
        if first == 0 or not lines[first - 1].strip():
            while end < len(lines) and not lines[end].strip():
                end += 1
        new = "".join(lines[:first] + lines[end:])
        evicted, checked, types = self._finish([FileChange(path, rel, raw, new, bom)], lang)
        return EditResult(action="safe_delete_symbol", name_path=loc.name_path, files=[
            EditedFile(relative_path=rel, start_line=first + 1, end_line=end, edits=1)],
            total_edits=1, cache_entries_invalidated=evicted, note=f"deleted lines {first + 1}-{end} of {rel}",
            syntax=checked, types=types)

    def rename_symbol(self, name_path: str, relative_path: str, new_name: str,
                      allow_type_errors: bool = False) -> EditResult:
        """The language server's rename (Python's module-level names: from the scope-checked references), applied
        to every file it names, or to none."""
        self._writable()
        new_name = new_name.strip()
        if not _IDENT.match(new_name) or len(new_name) > 200:
            raise EditError(f"{new_name!r} is not a valid identifier")
        _path, _rel, lang, loc = self._locate(name_path, relative_path)
        if lang == "python" and not new_name.isidentifier():
            raise EditError(f"{new_name!r} is not a valid Python identifier")
        if loc.node["name"] == new_name:
            raise EditError(f"{loc.name_path} is already called {new_name!r}")
        for attempt in range(2):
            try:
                return self._rename_once(name_path, relative_path, new_name, allow_type_errors)
            except editing.ChangedOnDisk as exc:
                self._conflict(attempt, exc)
        raise AssertionError("unreachable")  # pragma: no cover

    def _rename_once(self, name_path: str, relative_path: str, new_name: str,
                     allow_type_errors: bool) -> EditResult:
        """Every file of the language is read before the language server is asked; the files its answer names
        are then locked and must still be exactly what was read, or the rename is planned again."""
        from ansf_mcp.semantic.languages import LANGUAGE_EXTENSIONS
        from ansf_mcp.semantic.paths import walk_files

        path, rel = resolve_in_root(self.root, relative_path, kind="file")
        lang = language_of(path)
        seen = {os.path.realpath(p): _digest(p) for p in walk_files(self.root, self.root,
                                                                     LANGUAGE_EXTENSIONS[lang], limit=5_000)}
        self.forget(path)
        path, rel, lang, loc = self._locate(name_path, relative_path)
        srv = self.server(lang)
        line, col = loc.node["sel"]
        precision = None
        if lang == "python" and (len(loc.path) == 1 or self.class_owner(rel, loc) is not None):
            # from the scope-checked references: jedi's own rename of a member renames every same-named symbol
            # it cannot tell apart, and its whole-line edits add a blank line at the end of a file
            edit, precision = self._python_rename_edit(path, name_path, relative_path, loc, new_name,
                                                       srv.position_encoding)
        else:
            character = to_server(self._line(path, line), col, srv.position_encoding)
            edit = srv.request("textDocument/rename", path, lambda uri: {
                "textDocument": {"uri": uri}, "position": {"line": line, "character": character},
                "newName": new_name}, also_open=self.also_open(srv, lang))
        per_file = self._workspace_edit_files(edit)
        if not per_file:
            raise EditError(f"the {srv.spec.language} language server found nothing to rename for "
                            f"{loc.name_path} in {rel}; nothing was changed")
        changes: list[FileChange] = []
        summary = []
        with self.locks.hold([fpath for fpath, _frel, _edits in per_file]):
            for fpath, frel, edits in per_file:
                raw, text, bom = editing.load(fpath, frel)
                if seen.get(os.path.realpath(fpath)) != editing.digest(raw):
                    raise editing.ChangedOnDisk(f"{frel} changed on disk while the language server computed the "
                                                "rename; nothing was changed")
                new = editing.apply_lsp_edits(text, edits, srv.position_encoding, frel)
                changes.append(FileChange(fpath, frel, raw, new, bom))
                summary.append({"relative_path": frel, "edits": len(edits)})
            evicted, checked, types = self._finish(changes, lang, allow_type_errors,
                                                   renamed=(loc.node["name"], new_name))
        total = sum(s["edits"] for s in summary)
        note = f"renamed in {len(summary)} file(s), {total} edit(s)" + (f"; {precision}" if precision else "")
        old_name = loc.node["name"]
        left = [m for ch in changes for m in leftover_mentions(ch.new_text, old_name, ch.rel, lang)]
        if left:
            kinds = sorted({m.kind for m in left})
            note += (f"; {len(left)} mention(s) of {old_name!r} left in the renamed files ({', '.join(kinds)}), not "
                     "changed: see leftover_mentions" + (f" (first {MAX_MENTIONS})" if len(left) > MAX_MENTIONS
                                                          else ""))
        others = self._files_still_naming(loc.node["name"], lang, {ch.rel for ch in changes})
        if others:
            shown = ", ".join(others[:10]) + (f" and {len(others) - 10} more" if len(others) > 10 else "")
            note += (f"; {len(others)} other file(s) still use the name {loc.node['name']!r} as code (other "
                     f"symbols of that name, or uses the server did not resolve): {shown}")
        return EditResult(action="rename_symbol", name_path=loc.name_path, new_name=new_name,
                          files=[EditedFile.model_validate(s) for s in summary], total_edits=total,
                          cache_entries_invalidated=evicted, note=note, syntax=checked, types=types,
                          leftover_mentions=left[:MAX_MENTIONS])

    def _importers(self, rel: str, lang: str, loc: sym.Located) -> list[tuple[Path, str]]:
        """Python, a module-level name: the files that import it (a changed signature may break them)."""
        if lang != "python" or len(loc.path) != 1:
            return []
        users = self.project_scopes(rel, loc.node["name"]).users - {rel}
        return [(self.root / u, u) for u in sorted(users)]

    def _python_rename_edit(self, path: Path, name_path: str, relative_path: str, loc: sym.Located, new_name: str,
                            encoding: str) -> tuple[dict, str | None]:
        """A module-level Python name renamed where it is that global: its definition and its scope-checked
        references (jedi's rename would also rename parameters and locals that shadow it, and misses `__all__`
        entries and string annotations). A workspace edit, and what the precision changed."""
        found = self.reference_list(name_path, relative_path)
        rel, refs, left_out = found.rel, found.refs, found.note
        name = loc.node["name"]
        places = [(rel, loc.node["sel"][0], loc.node["sel"][1])]
        # a use under an alias keeps the alias: renaming the import's original name is enough
        places += [(r["relative_path"], r["line"] - 1, r["column"] - 1) for r in refs if r.get("kind") != "alias"]
        changes: dict[str, list[dict]] = {}
        for frel, line, col in places:
            fpath = self.root / frel
            text = self._line(fpath, line)
            if text[col:col + len(name)] != name:
                raise editing.ChangedOnDisk(f"{frel} changed on disk while the rename was planned (line {line + 1} "
                                            f"no longer names {name!r} at column {col + 1}); nothing was changed")
            start = {"line": line, "character": to_server(text, col, encoding)}
            end = {"line": line, "character": to_server(text, col + len(name), encoding)}
            changes.setdefault(fpath.as_uri(), []).append({"range": {"start": start, "end": end}, "newText": new_name})
        strings = [r for r in refs if r.get("kind") in ("__all__", "string annotation")]
        notes = []
        if strings:
            notes.append(f"{len(strings)} of them in strings that name it (__all__ entries, string annotations)")
        if left_out:
            notes.append(f"not renamed: {left_out}")
        return {"changes": changes}, "; ".join(notes) or None

    def _files_still_naming(self, name: str, lang: str, changed: set[str]) -> list[str]:
        """Files of `lang` outside the edit where `name` still occurs as a word (Python: as a NAME token)."""
        from ansf_mcp.semantic.languages import LANGUAGE_EXTENSIONS
        from ansf_mcp.semantic.paths import read_text, walk_files

        word = re.compile(rf"(?<![\w$]){re.escape(name)}(?![\w$])")
        out = []
        for p in walk_files(self.root, self.root, LANGUAGE_EXTENSIONS[lang], limit=2_000):
            rel = self.rel(p)
            if rel is None or rel in changed:
                continue
            try:
                text = read_text(p)[0]
            except OSError:
                continue
            if word.search(text) and (lang != "python" or _python_names(text, name)):
                out.append(rel)
        return out

    def _workspace_edit_files(self, edit: Any) -> list[tuple[Path, str, list[dict]]]:
        """[(path, rel, text edits)] of a WorkspaceEdit, after checking every target is inside the project."""
        if not edit:
            return []
        grouped: dict[str, list[dict]] = {}
        for uri, edits in (edit.get("changes") or {}).items():
            grouped.setdefault(uri, []).extend(edits)
        for change in edit.get("documentChanges") or []:
            if "kind" in change:  # create / rename / delete a file
                raise EditError(f"the rename would {change['kind']} a file ({change.get('oldUri') or change.get('uri')});"
                                " file operations are not applied; nothing was changed")
            grouped.setdefault(change["textDocument"]["uri"], []).extend(change.get("edits") or [])
        out = []
        for uri, edits in grouped.items():
            if not uri.startswith("file://"):
                raise EditError(f"the rename would change {uri}, which is not a file; nothing was changed")
            p = Path(uri_to_path(uri))
            try:
                rel = Path(os.path.realpath(p)).relative_to(self.root).as_posix()
                real, rel = resolve_in_root(self.root, rel, kind="file")
            except (ValueError, PathRefused) as exc:
                raise EditError(f"the rename would change {p}, outside the project; nothing was changed") from exc
            if any(part in SKIP_DIRS or part.startswith(".") for part in Path(rel).parts[:-1]):
                raise EditError(f"the rename would change {rel}, inside a folder the project does not own "
                                "(virtualenv, build output, VCS); nothing was changed")
            if edits:
                out.append((real, rel, edits))
        out.sort(key=lambda t: t[1])
        return out

    @staticmethod
    def _edit_answer(action: str, loc: sym.Located, rel: str, first: int, last: int, evicted: int,
                     checked: str, types: str) -> EditResult:
        return EditResult(action=action, name_path=loc.name_path, files=[
            EditedFile(relative_path=rel, start_line=first + 1, end_line=last + 1, edits=1)],
            total_edits=1, cache_entries_invalidated=evicted, note=f"{rel} lines {first + 1}-{last + 1} written",
            syntax=checked, types=types)
