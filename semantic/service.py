"""The semantic service: language servers per (language, project root), cached answers (full; the tool layer
shrinks them to fit a context window)."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import itertools
import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

from ansf_mcp.semantic import journal
from ansf_mcp.semantic import symbols as sym
from ansf_mcp.semantic.cache import SemanticCache, make_key
from ansf_mcp.semantic.editing import EditError
from ansf_mcp.semantic.inspection import InputError, InspectionMixin, positions_ok
from ansf_mcp.semantic.languages import (
    BY_KEY,
    LANGUAGE_EXTENSIONS,
    LANGUAGE_NAMES,
    UNSUPPORTED,
    LanguageUnavailable,
    language_of,
    make_spec,
)
from ansf_mcp.semantic.locks import FileLocks, LockTimeout
from ansf_mcp.semantic.lsp import LanguageServer, LspError, LspLoop, ServerSpec, background_work
from ansf_mcp.semantic.models import Definitions, FoundSymbols, References, SymbolsOverview
from ansf_mcp.semantic.paths import (
    PathRefused,
    check_text_file,
    outside_name,
    read_text,
    resolve_in_root,
    settled,
    stamp_ns,
    stat_fingerprint,
    uri_to_path,
    walk_files,
)
from ansf_mcp.semantic.positions import UTF32, from_server, split_lines, to_server
from ansf_mcp.semantic.scopes import ProjectScopes
from ansf_mcp.semantic.symbol_table import Entry, SymbolTable
from ansf_mcp.semantic.symbolic_edit import MAX_MENTIONS, EditingMixin, leftover_mentions

log = logging.getLogger(__name__)

# in the cache fingerprint: answers cached in another format never match
# `obj.name` uses checked for their definition, one language-server request each: at most this many, and for at
# most this long, so that one member's references do not hold the language server from every other call.
MAX_MEMBER_CHECKS = 300
MEMBER_CHECK_S = 5.0
ANSWER_FORMAT = "columns-in-code-points+reference-kinds+mentions+member-precision+scan-cap-note"
MAX_SCAN_FILES = 2_000


def _unsupported_note(path: str, reported: set[str]) -> str | None:
    """For a file of a language recognised but not served: the folder answer's note, once per language ("" after
    the first); None for any other file. A folder scan that passed over such files in silence would look like
    an answer that covers them."""
    entry = UNSUPPORTED.get(os.path.splitext(path)[1].lower())
    if entry is None:
        return None
    name, why = entry
    if name in reported:
        return ""
    reported.add(name)
    return f"{name} files skipped ({os.path.basename(path)} and any others): {why}"
MAX_INFO_MATCHES = 20  # hover requests per find_symbol(include_info=True)
C_OPEN_ALL_LIMIT = 100


Progress = Callable[[int, "int | None", str], None]  # (done, total or None, message)


def _encode_cursor(state: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(state, separators=(",", ":")).encode()).decode().rstrip("=")


def _decode_cursor(cursor: str, what: str) -> dict:
    try:
        state = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if isinstance(state, dict) and positions_ok(state):
            return state
    except ValueError:
        pass
    raise SemanticInputError(f"cursor {cursor[:40]!r} is not a cursor this server gave for {what}")


def _size(obj: Any) -> int:
    return len(json.dumps(obj, ensure_ascii=False, separators=(",", ":")))


def file_tag(lang: str, rel: str) -> str:
    """Cache tag of answers that depend on one file's content only (its symbol tree)."""
    return f"file:{lang}:{rel}"


def project_tag(lang: str) -> str:
    """Cache tag of answers that depend on every file of a language (references, definitions, hover)."""
    return f"project:{lang}"


class ReferenceList(NamedTuple):
    path: Path
    rel: str
    lang: str
    loc: sym.Located
    refs: list[dict]
    key: str  # the answer's cache key (cursors are bound to it)
    note: str | None
    mentions: list[dict] | None


class SemanticInputError(ValueError):
    """Bad input (unknown symbol, ambiguous name path, position out of range...)."""


# Every error a caller should show to the user as-is.
USER_ERRORS = (SemanticInputError, PathRefused, LanguageUnavailable, sym.NamePathError, LspError, EditError,
               InputError, LockTimeout)


def _drop_python_imports(tree: list[dict], lines: list[str]) -> list[dict]:
    """jedi lists imported names as symbols; they are not definitions (they show up as references instead)."""
    out = []
    for node in tree:
        ln = node["sel"][0]
        text = lines[ln].lstrip() if 0 <= ln < len(lines) else ""
        if not node["children"] and (text.startswith(("import ", "from ")) or _in_import(lines, ln)):
            continue
        node["children"] = _drop_python_imports(node["children"], lines)
        out.append(node)
    return out


def _in_import(lines: list[str], ln: int) -> bool:
    """A name inside a parenthesised multi-line `from x import (...)`."""
    for k in range(ln, max(-1, ln - 50), -1):
        if k >= len(lines):
            return False
        t = lines[k].strip()
        if t.startswith(("from ", "import ")):
            return k != ln and t.endswith("(")
        if k != ln and not (t.endswith(",") or t.endswith("(")):
            return False
    return False


def _tree_to_code_points(tree: list[dict], lines: list[str], encoding: str) -> None:
    """Symbol ranges from the server's column units to code points, in place."""
    def line(n: int) -> str:
        return lines[n] if 0 <= n < len(lines) else ""

    for node in tree:
        sl, sc, el, ec = node["range"]
        node["range"] = [sl, from_server(line(sl), sc, encoding), el, from_server(line(el), ec, encoding)]
        node["sel"] = [node["sel"][0], from_server(line(node["sel"][0]), node["sel"][1], encoding)]
        _tree_to_code_points(node["children"], lines, encoding)


def _external_line(path: Path, line: int) -> str:
    """One line of a file outside the project (a definition in the environment), for its column only."""
    if path.stat().st_size > 8 * 1024 * 1024:
        return ""
    lines = split_lines(read_text(path)[0])
    return lines[line] if 0 <= line < len(lines) else ""


INDEX_NICE = 10  # the index's own language server: under CPU contention a caller's query runs first


def _lower_priority(srv: LanguageServer) -> None:
    """Renice the index's server (once per process; a restarted one is reniced again)."""
    pid = srv.pid
    if pid is None or getattr(srv, "_reniced", None) == pid:
        return
    with contextlib.suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, pid, max(os.getpriority(os.PRIO_PROCESS, pid), INDEX_NICE))
    srv._reniced = pid  # type: ignore[attr-defined]


def _hinted_first(remaining: list[Path], name: str | None, hinted: set[Path] | None = None) -> int:
    """Move the files that mention `name` to the end of `remaining` (popped next), last in walk order first: the
    query names its enclosing symbols from the first file on, so the two meet in the middle instead of asking
    for the same trees; they are added to `hinted`; returns how many."""
    if not name:
        return 0
    needle = name.encode("utf-8", "surrogatepass")
    hit, rest = [], []
    for p in remaining:
        try:
            (hit if needle in p.read_bytes() else rest).append(p)
        except OSError:
            rest.append(p)
    remaining[:] = rest + hit[::-1]
    if hinted is not None:
        hinted.update(hit)
    return len(hit)


def _scan_capped(lang: str, files: int) -> str | None:
    """Why a references answer may be incomplete: jedi parses, and the scope check reads, at most
    MAX_SCAN_FILES files, so on a larger project the rest is missing without a word unless we say so."""
    if files <= MAX_SCAN_FILES:
        return None
    return (f"the project has more than {MAX_SCAN_FILES} {LANGUAGE_NAMES[lang]} files and at most "
            f"{MAX_SCAN_FILES} were searched, so references in the others may be missing; search_for_pattern "
            "finds the name in every file")


class SemanticService(InspectionMixin, EditingMixin):
    def __init__(self, project_root: Path, data_dir: Path, *, request_timeout: float = 30.0,
                 read_only: bool = False, cache_dir: Path | None = None,
                 spec_overrides: dict[str, ServerSpec] | None = None,
                 progress: Callable[[str], None] | None = None, separate_index_server: bool = True,
                 type_net_seconds: float | None = None) -> None:
        """`type_net_seconds`: the type net's time budget per edit. The operating phase reaches the type checker
        through `checker_refusal` (set by the host): no checker starts while memory is critical, for diagnostics
        and for the type net alike."""
        self.root = Path(project_root).resolve()
        self.data_dir = Path(data_dir).resolve()
        self.lsp_dir = self.data_dir / "lsp"
        self.cache = SemanticCache(cache_dir or (self.data_dir / "semantic-cache"))
        self.symbols = SymbolTable(self.data_dir / "symbol-table", self.root)
        self._fingerprints: dict[int, str] = {}
        self.request_timeout = request_timeout
        self.read_only = read_only
        self.spec_overrides = dict(spec_overrides or {})
        self.progress = progress or (lambda msg: log.info("%s", msg))
        if type_net_seconds is not None:
            self.type_net_seconds = type_net_seconds
        self._loop: LspLoop | None = None
        self._servers: dict[str, LanguageServer] = {}
        self._unavailable: dict[str, LanguageUnavailable] = {}
        self._lock = threading.RLock()
        self._hash_memo: dict[str, tuple[int, int, int, str, bool]] = {}
        self.indexing: dict[str, Any] | None = None  # the background index's progress (status)
        self._lines_memo: dict[str, tuple[str, list[str]]] = {}
        self.locks = FileLocks(self.data_dir / "locks")
        self.edit_conflicts: dict[str, int] = {}
        # Why no type checker may start now (the host asks the operating phase), or None.
        self.checker_refusal: Callable[[], str | None] = lambda: None
        self.separate_index_server = separate_index_server
        self._index_servers: dict[str, LanguageServer] = {}
        self._index_hint: str | None = None
        if not read_only:
            journal.recover(self.data_dir)  # edits a crash interrupted: rolled back before any new one

    # ---- servers -----------------------------------------------------------------------------------
    def server(self, lang: str) -> LanguageServer:
        return self._server(lang, lambda: make_spec(lang, self.root, self.lsp_dir, self.progress))

    def type_checker(self) -> LanguageServer:
        """Python's type checker (basedpyright), started on the first diagnostics request, never before."""
        from ansf_mcp.semantic.languages.python import TYPE_CHECKER_KEY, type_checker_spec

        if why := self.checker_refusal():
            self.stop_type_checker(why)
            raise LanguageUnavailable("Python type checking", why)
        return self._server(TYPE_CHECKER_KEY, lambda: type_checker_spec(self.root))

    def stop_type_checker(self, why: str) -> bool:
        """Stop a running type checker (it starts again on a later diagnostics request that may have one)."""
        from ansf_mcp.semantic.languages.python import TYPE_CHECKER_KEY

        with self._lock:
            checker = self._servers.pop(TYPE_CHECKER_KEY, None)
        if checker is None:
            return False
        log.info("the type checker (%s) stopped: %s", checker.spec.display_name, why)
        checker.stop()
        return True

    def _server(self, lang: str, make: Callable[[], ServerSpec]) -> LanguageServer:
        srv = self._servers.get(lang)
        if srv is not None:
            return srv
        with self._lock:
            srv = self._servers.get(lang)
            if srv is not None:
                return srv
            if lang in self._unavailable:
                raise self._unavailable[lang]
            try:
                spec = self.spec_overrides.get(lang) or make()
            except LanguageUnavailable as exc:
                if "npm install" not in str(exc):  # a failed download may succeed later; a missing tool won't
                    self._unavailable[lang] = exc
                raise
            if self._loop is None:
                self._loop = LspLoop()
            srv = LanguageServer(spec, self.root, self._loop, request_timeout=self.request_timeout)
            self._servers[lang] = srv
            return srv

    def fingerprint(self, srv: LanguageServer) -> str:
        s = srv.spec
        known = self._fingerprints.get(id(s))
        if known is None:  # a spec never changes once its server exists: hashed once, not per file
            known = self._fingerprints[id(s)] = make_key(s.key, s.version, s.cmd[1:], s.init_options, s.settings,
                                                         str(self.root), ANSWER_FORMAT)
        return known

    def shutdown(self) -> None:
        self.stop_index_servers("shutting down")
        with self._lock:
            servers = list(self._servers.values())
            self._servers.clear()
        for srv in servers:
            srv.stop()
        if self._loop is not None:
            self._loop.stop()
            self._loop = None
        self.cache.close()
        self.symbols.close()

    # ---- files -------------------------------------------------------------------------------------
    def _file(self, relative_path: str) -> tuple[Path, str, str]:
        path, rel = resolve_in_root(self.root, relative_path, kind="file")
        lang = language_of(path)
        check_text_file(path, rel)
        return path, rel, lang

    def content_hash(self, path: Path) -> str:
        st = path.stat()
        key = str(path)
        memo = self._hash_memo.get(key)
        if memo and memo[4] and memo[:3] == (stamp_ns(st), st.st_size, st.st_ino):
            return memo[3]
        digest = hashlib.blake2b(path.read_bytes(), digest_size=16).hexdigest()
        self._hash_memo[key] = (stamp_ns(st), st.st_size, st.st_ino, digest, settled(st))
        return digest

    def forget(self, path: Path) -> None:
        """Drop what is remembered of one file's content (an edit reads it afresh)."""
        self._hash_memo.pop(str(path), None)
        self._lines_memo.pop(str(path), None)

    def trim_memory(self) -> int:
        """Drop in-memory file memos and stop the type checker (memory pressure; it starts again on the next
        diagnostics request); returns how many memo entries were dropped."""
        with self._lock:
            dropped = len(self._lines_memo) + len(self._hash_memo)
            self._lines_memo.clear()
            self._hash_memo.clear()
        self.stop_type_checker("memory pressure; it starts again when diagnostics are asked for")
        self.separate_index_server = False  # the index goes on, if the phase lets it, in the query's server
        self.stop_index_servers("memory pressure")
        return dropped

    def lines(self, path: Path) -> list[str]:
        h = self.content_hash(path)
        memo = self._lines_memo.get(str(path))
        if memo and memo[0] == h:
            return memo[1]
        text, _clean = read_text(path)
        lines = split_lines(text)
        if len(self._lines_memo) > 512:
            self._lines_memo.clear()
        self._lines_memo[str(path)] = (h, lines)
        return lines

    def project_state(self, lang: str) -> str:
        """Hash of (path, mtime, size) of every source file of `lang`: cross-file answers key on it."""
        return self.project_walk(lang)[0]

    def project_walk(self, lang: str) -> tuple[str, list[Path]]:
        """The project state of `lang` and its source files in walk order, from one walk of the project."""
        h = hashlib.blake2b(digest_size=16)
        walked: list[Path] = []
        stat_fingerprint(self.root, LANGUAGE_EXTENSIONS[lang], h, walked)
        return h.hexdigest(), walked

    def rel(self, path: Path) -> str | None:
        try:
            return Path(os.path.realpath(path)).relative_to(self.root).as_posix()
        except ValueError:
            return None

    # ---- document symbols --------------------------------------------------------------------------
    def document_symbols(self, path: Path, rel: str, lang: str) -> list[dict]:
        """The file's symbol tree (shared: read it, never change it)."""
        return self.symbol_entry(path, rel, lang).tree

    def symbol_entry(self, path: Path, rel: str, lang: str, via: LanguageServer | None = None) -> Entry:
        """The file's entry in the symbol table: kept while it stands for the file's content, else read from the
        answer cache or asked of the language server (`via`: another process of the same spec, the index's),
        and recorded."""
        main = self.server(lang)
        fp = self.fingerprint(main)
        srv = via or main
        entry = self.symbols.get(rel, path, fp, self.content_hash)
        if entry is not None:
            return entry
        check_text_file(path, rel)
        st = path.stat()  # before the content is read: a write after it shows as another stat next time
        digest = self.content_hash(path)
        key = make_key(fp, rel, digest, "documentSymbol")
        tree = self.cache.get(key)
        if tree is None:
            raw = srv.request("textDocument/documentSymbol", path, lambda uri: {"textDocument": {"uri": uri}})
            if via is not None:
                _lower_priority(via)
            tree = sym.normalise(raw)
            if srv.position_encoding != UTF32:
                _tree_to_code_points(tree, self.lines(path), srv.position_encoding)
            if lang == "python":
                tree = _drop_python_imports(tree, self.lines(path))
            self.cache.set(key, tree, tag=file_tag(lang, rel))
        return self.symbols.put(rel, lang, fp, st, digest, tree)

    # ---- tools -------------------------------------------------------------------------------------
    def symbols_overview(self, relative_path: str, depth: int = 0) -> SymbolsOverview:
        if depth < 0:
            raise SemanticInputError("depth must be >= 0")
        path, rel = resolve_in_root(self.root, relative_path, kind="any")
        if path.is_file():
            path, rel, lang = self._file(relative_path)
            tree = self.document_symbols(path, rel, lang)
            files = {rel: self._top_level(tree, rel, depth)}
            notes: list[str] = []
        else:
            files, notes = {}, []
            for fpath, frel, lang, err in self._scan(path):
                if err:
                    notes.append(err)
                    continue
                tree = self.document_symbols(fpath, frel, lang)
                if tree:
                    files[frel] = self._top_level(tree, frel, depth)
        return SymbolsOverview.model_validate({"relative_path": rel, "files": files, "notes": notes})

    def _top_level(self, tree: list[dict], rel: str, depth: int) -> list[dict]:
        out = []
        for loc in sym.iter_symbols(tree):
            if len(loc.path) == 1:
                out.append(sym.to_public(loc.node, loc.name_path, rel, depth))
        return out

    def _scan(self, start: Path):
        """Yield (path, rel, lang, error_note) for every supported source file under start."""
        exts = frozenset().union(*LANGUAGE_EXTENSIONS.values(), UNSUPPORTED)
        reported: set[str] = set()
        n = 0
        for p in walk_files(self.root, start, exts):
            skipped = _unsupported_note(str(p), reported)
            if skipped is not None:
                if skipped:
                    yield None, None, None, skipped
                continue
            n += 1
            if n > MAX_SCAN_FILES:
                yield None, None, None, f"stopped after {MAX_SCAN_FILES} files; narrow relative_path"
                return
            rel = self.rel(p)
            if rel is None:
                continue
            lang = language_of(p)
            try:
                self.server(lang)
                check_text_file(p, rel)
            except LanguageUnavailable as exc:
                if lang not in reported:
                    reported.add(lang)
                    yield None, None, None, f"{LANGUAGE_NAMES[lang]} files skipped: {exc}"
                continue
            except PathRefused as exc:
                yield None, None, None, str(exc)
                continue
            yield p, rel, lang, None

    def find_symbol(self, name_path: str, relative_path: str | None = None, include_body: bool = False,
                    substring: bool = False, max_matches: int = 50, include_info: bool = False) -> FoundSymbols:
        """Symbols by name path. Over a folder, from the symbol table: files whose recorded tree still stands for
        their content are not asked again, and files holding no symbol of the last component's name are
        skipped (a necessary condition of a match: the answer is the same as matching every tree)."""
        _absolute, comps = sym.parse_name_path(name_path)
        if max_matches < 1:
            raise SemanticInputError("max_matches must be >= 1")
        start, _rel = resolve_in_root(self.root, relative_path, kind="any")
        if start.is_file():
            path, rel, lang = self._file(relative_path or "")
            sources: Any = [(path, rel, lang, None)]
        else:
            sources = self._indexed_scan(start)
        last = comps[-1][0]
        matches: list[dict] = []
        notes: list[str] = []
        total = 0
        fingerprints: dict[str, str] = {}
        for where, rel, lang, err in sources:
            if err:
                notes.append(err)
                continue
            fp = fingerprints.get(lang) or fingerprints.setdefault(lang, self.fingerprint(self.server(lang)))
            entry = self.symbols.get(rel, where, fp, self.content_hash)  # the warm path: no Path, no request
            try:
                entry = entry or self.symbol_entry(Path(where), rel, lang)
            except PathRefused as exc:  # a file that turned binary or too large since it was recorded
                notes.append(str(exc))
                continue
            if not entry.may_hold(last, substring):
                continue
            path = Path(where)
            found = sym.find(entry.tree, name_path, substring)
            total += len(found)
            for loc in found:
                if len(matches) < max_matches:
                    lines = self.lines(path) if include_body else None
                    public = sym.to_public(loc.node, loc.name_path, rel, 0, lines, include_body)
                    if include_info and len(matches) < MAX_INFO_MATCHES:
                        try:
                            public["info"] = self.symbol_info(path, rel, lang, loc.node)
                        except LspError as exc:
                            notes.append(f"no info for {rel}:{public['line']}: {exc}")
                    matches.append(public)
        return FoundSymbols.model_validate({"total": total, "matches": matches, "truncated": total > len(matches),
                                            "notes": notes})

    def _indexed_scan(self, start: Path):
        """`_scan` from the symbol table's folder listings: the same files in the same order and the same notes;
        a file's text check runs when its entry is (re)built, not on every call."""
        exts = frozenset().union(*LANGUAGE_EXTENSIONS.values(), UNSUPPORTED)
        by_ext = {ext: lang for lang, lang_exts in LANGUAGE_EXTENSIONS.items() for ext in lang_exts}
        served: dict[str, bool] = {}
        reported: set[str] = set()
        prefix = str(self.root).rstrip("/") + "/"
        n = 0
        for text, link in self.symbols.walk(start, exts):
            skipped = _unsupported_note(text, reported)
            if skipped is not None:
                if skipped:
                    yield None, None, None, skipped
                continue
            n += 1
            if n > MAX_SCAN_FILES:
                yield None, None, None, f"stopped after {MAX_SCAN_FILES} files; narrow relative_path"
                return
            if link or not text.startswith(prefix):
                rel = self.rel(Path(text))
                lang = language_of(Path(text))
            else:
                rel = text[len(prefix):]
                lang = by_ext[os.path.splitext(text)[1].lower()]
            if rel is None:
                continue
            if lang not in served:
                try:
                    self.server(lang)
                    served[lang] = True
                except LanguageUnavailable as exc:
                    served[lang] = False
                    yield None, None, None, f"{LANGUAGE_NAMES[lang]} files skipped: {exc}"
            if served[lang]:
                yield text, rel, lang, None

    def _locate(self, name_path: str, relative_path: str) -> tuple[Path, str, str, sym.Located]:
        path, rel, lang = self._file(relative_path)
        tree = self.document_symbols(path, rel, lang)
        found = sym.find(tree, name_path)
        if not found:
            top = [loc.name_path for loc in sym.iter_symbols(tree) if len(loc.path) <= 2][:20]
            raise SemanticInputError(f"no symbol {name_path!r} in {rel}; symbols there include: {', '.join(top)}"
                                     if top else f"no symbol {name_path!r} in {rel} (the file has no symbols)")
        if len(found) > 1:
            exact = [f for f in found if f.name_path == name_path.strip("/")]
            if len(exact) == 1:
                found = exact
            else:
                cands = ", ".join(f.name_path for f in found[:10])
                raise SemanticInputError(f"{name_path!r} is ambiguous in {rel}: {cands}; use a longer name path "
                                         "or an index like name[1]")
        return path, rel, lang, found[0]

    def find_references(self, name_path: str, relative_path: str, cursor: str | None = None,
                        page_chars: int | None = None, progress: Progress | None = None) -> References:
        """References grouped by file, one page at a time: files are kept whole on a page unless one file alone
        exceeds `page_chars` (JSON characters of the references); `next_cursor` continues."""
        found = self.reference_list(name_path, relative_path, progress)
        rel, loc, refs, key = found.rel, found.loc, found.refs, found.key
        groups: list[tuple[str, list[dict]]] = []
        for r in refs:
            item = {k: v for k, v in r.items() if k != "relative_path"}
            if groups and groups[-1][0] == r["relative_path"]:
                groups[-1][1].append(item)
            else:
                groups.append((r["relative_path"], [item]))
        first_file, first_ref = 0, 0
        if cursor:
            state = _decode_cursor(cursor, "find_references")
            if state.get("k") != key[:20]:
                raise SemanticInputError("the project changed since this cursor was given (or it belongs to another "
                                         "symbol); ask again without a cursor")
            first_file, first_ref = int(state.get("f", 0)), int(state.get("r", 0))
        page: list[dict] = []
        used = 0
        nxt: tuple[int, int] | None = None
        for fi in range(first_file, len(groups)):
            frel, items = groups[fi]
            j0 = first_ref if fi == first_file else 0
            costs = [_size(x) + 1 for x in items[j0:]]
            head = _size({"relative_path": frel, "count": len(items), "references": []}) + 1
            if page_chars is not None and page and used + head + sum(costs) > page_chars:
                nxt = (fi, j0)  # the whole file goes on the next page
                break
            chunk: list[dict] = []
            used += head
            for j, cost in zip(range(j0, len(items)), costs, strict=True):
                if page_chars is not None and chunk and used + cost > page_chars:
                    nxt = (fi, j)  # one file larger than a page: split it
                    break
                chunk.append(items[j])
                used += cost
            page.append({"relative_path": frel, "count": len(items), "references": chunk})
            if nxt:
                break
        return References.model_validate({
            "name_path": loc.name_path, "relative_path": rel, "total": len(refs), "total_files": len(groups),
            "files": page, "next_cursor": _encode_cursor({"k": key[:20], "f": nxt[0], "r": nxt[1]}) if nxt else None,
            "note": found.note, "mentions": None if cursor else found.mentions})

    def reference_list(self, name_path: str, relative_path: str, progress: Progress | None = None
                       ) -> ReferenceList:
        """Every reference to the symbol (cached), sorted by (file, line, column), with the answer's cache key;
        Python: a note on what was left out (occurrences that bind another object of the same name) and the
        mentions in docstrings, comments and strings."""
        path, rel, lang, loc = self._locate(name_path, relative_path)
        srv = self.server(lang)
        line, col = loc.node["sel"]
        line_text = self._line(path, line)
        # The same walk gives the cache key and, on a miss, the files the scope check reads (a walk each was two
        # or three passes over every folder of the project per call).
        state, walked = self.project_walk(lang)
        key = make_key(self.fingerprint(srv), rel, self.content_hash(path), "references", line, col, state)
        answer = self.cache.get(key)
        if answer is None:
            if progress:
                progress(0, None, f"asking the {srv.spec.language} language server for references")
            raw = srv.request("textDocument/references", path, lambda uri: {
                "textDocument": {"uri": uri},
                "position": {"line": line, "character": to_server(line_text, col, srv.position_encoding)},
                "context": {"includeDeclaration": False}}, also_open=self.also_open(srv, lang, walked)) or []
            refs = self._locations_to_refs(raw, lang, srv.position_encoding, exclude=(str(path), line, col),
                                           progress=progress)
            answer = {"refs": refs, "note": None, "mentions": None}
            if lang == "python":
                answer = self._python_precision(rel, loc, refs, walked[:MAX_SCAN_FILES], state)
                if capped := _scan_capped(lang, len(walked)):
                    answer["note"] = f"{answer['note']}; {capped}" if answer["note"] else capped
            self.cache.set(key, answer, tag=project_tag(lang))
        return ReferenceList(path, rel, lang, loc, answer["refs"], key, answer["note"], answer["mentions"])

    # ---- Python scopes -----------------------------------------------------------------------------
    def _labelled(self, refs: list[dict], name: str) -> list[dict]:
        """Each reference with what the occurrence of `name` there is in its file (code, attribute, import...)."""
        from ansf_mcp.semantic.scopes import CODE, ModuleNames, analyse

        per_file: dict[str, ModuleNames | None] = {}
        out = []
        for r in refs:
            frel = r["relative_path"]
            if frel not in per_file:
                try:
                    per_file[frel] = analyse(read_text(self.root / frel)[0], name)
                except OSError:
                    per_file[frel] = None
            names = per_file[frel]
            occ = names.occurrences.get((r["line"] - 1, r["column"] - 1)) if names is not None else None
            out.append({**r, "kind": occ.kind if occ is not None else CODE})
        return out

    def project_scopes(self, rel: str, name: str, files: list[Path] | None = None) -> ProjectScopes:
        """Which occurrences of `name` across the project's Python files are the global `name` of `rel`;
        `files`: the files to read when the caller has walked the project already."""
        from ansf_mcp.semantic.languages.python import extra_paths

        word = re.compile(rf"(?<!\w){re.escape(name)}(?!\w)")
        texts: dict[str, str | None] = {}
        for p in self._scan_files(files):
            prel = self.rel(p)
            if prel is None:
                continue
            try:
                text = read_text(p)[0]
            except OSError:
                continue
            if word.search(text):
                texts[prel] = text
        roots = [self.rel(Path(r)) or "" for r in extra_paths(self.root)]
        return ProjectScopes(rel, name, texts.get, list(texts), roots)

    def _scan_files(self, files: list[Path] | None) -> list[Path]:
        """The Python files a scope or member check reads: the caller's, or the first MAX_SCAN_FILES walked."""
        if files is not None:
            return files
        return list(walk_files(self.root, self.root, LANGUAGE_EXTENSIONS["python"], limit=MAX_SCAN_FILES))

    def _python_precision(self, rel: str, loc: sym.Located, refs: list[dict], files: list[Path],
                          state: str) -> dict[str, Any]:
        """jedi's references, each labelled with its kind; for a module-level name, without the occurrences
        that bind another object of that name (parameters, locals, class attributes, another module's import)
        and with the places it is written as a string (`__all__` entries, string annotations)."""
        name = loc.node["name"]
        top_level = len(loc.path) == 1
        if not top_level:
            owner = self.class_owner(rel, loc)
            if owner is None:  # a function's local: jedi resolves it by scope, each reference labelled
                return {"refs": self._labelled(refs, name), "note": None, "mentions": None}
            return self._member_precision(rel, owner, name, refs, files, state)
        scopes = self.project_scopes(rel, name, files)
        kept: list[dict] = []
        left_out: dict[str, int] = {}
        for r in refs:
            is_it, kind = scopes.classify(r["relative_path"], r["line"] - 1, r["column"] - 1)
            if is_it:
                kept.append({**r, "kind": kind})
            else:
                left_out[kind] = left_out.get(kind, 0) + 1
        have = {(r["relative_path"], r["line"], r["column"]) for r in kept}
        for frel, occ in [*scopes.added(), *scopes.alias_uses()]:
            if (frel, occ.line + 1, occ.column + 1) not in have:
                kept.append({**self._describe(self.root / frel, frel, "python", occ.line, occ.column),
                             "kind": occ.kind})
        kept.sort(key=lambda r: (r["relative_path"], r["line"], r["column"]))
        note = None
        if left_out:
            parts = ", ".join(f"{n} {k}" for k, n in sorted(left_out.items()))
            note = (f"{sum(left_out.values())} occurrence(s) of {name!r} left out: a parameter, local, class "
                    f"attribute or another module's import of that name binds them (by kind: {parts})")
        mentions = []
        for frel in sorted(scopes.users):
            text = scopes.read(frel)
            # a line that holds a reference is not also a mention (`__all__`, string annotations, f-strings)
            taken = {r["line"] for r in kept if r["relative_path"] == frel}
            mentions += [m.model_dump() for m in leftover_mentions(text or "", name, frel, "python")
                         if m.kind != "code" and m.line not in taken]
        if len(mentions) > MAX_MENTIONS:
            note = (note + "; " if note else "") + (f"{len(mentions)} mentions in docstrings, comments and strings, "
                                                    f"the first {MAX_MENTIONS} listed")
        return {"refs": kept, "note": note, "mentions": mentions[:MAX_MENTIONS] or None}

    def class_owner(self, rel: str, loc: sym.Located) -> tuple[str, ...] | None:
        """The chain of classes a Python symbol is a member of, or None (module level, a function's local)."""
        from ansf_mcp.semantic.scopes import classes

        owner = tuple(n for n, _i in loc.path[:-1])
        if not owner:
            return None
        try:
            text = read_text(self.root / rel)[0]
        except OSError:
            return None
        return owner if any(c.chain == owner for c in classes(text, rel, loc.node["name"])) else None

    def _member_precision(self, rel: str, owner: tuple[str, ...], name: str, refs: list[dict], files: list[Path],
                          state: str) -> dict[str, Any]:
        """A class member's references: jedi's answer without what cannot be this member, plus the definitions
        of the same member in its class family (overrides). jedi falls back to the bare name when it cannot
        infer a receiver, and then lists every `name` of the project; an `obj.name` whose definition jedi finds
        outside the family is another class's member."""
        from ansf_mcp.semantic.scopes import (
            ATTRIBUTE,
            CODE,
            OTHER_CLASS_ATTRIBUTE,
            SELF_ATTRIBUTE,
            classes,
            member_family,
            member_occurrences,
        )

        texts: dict[str, str] = {}
        for p in files:
            prel = self.rel(p)
            with contextlib.suppress(OSError):
                text = read_text(p)[0] if prel is not None else ""
                if prel is not None and ("class" in text or name in text or prel == rel):
                    texts[prel] = text
        table = [c for prel, text in texts.items() for c in classes(text, prel, name)]
        me = next(c for c in table if c.rel == rel and c.chain == owner)
        family, lineage = member_family(table, me)
        defs = {(c.rel, c.defines[0]) for c in family if c.defines is not None}
        owners: dict[str, set[tuple[str, ...]]] = {}
        for c in family:
            owners.setdefault(c.rel, set()).add(c.chain)
        mine: dict[str, frozenset[tuple[str, ...]]] = {}
        for c in lineage:
            mine[c.rel] = mine.get(c.rel, frozenset()) | {c.chain}
        theirs: dict[str, frozenset[tuple[str, ...]]] = {}
        for c in set(table) - set(lineage):
            if c.defines is not None:
                theirs[c.rel] = theirs.get(c.rel, frozenset()) | {c.chain}

        def occurrences(frel: str, text: str) -> dict | None:
            return member_occurrences(text, name, owners.get(frel, set()), mine.get(frel, frozenset()),
                                      theirs.get(frel, frozenset()))

        per_file: dict[str, dict | None] = {}
        kept: list[dict] = []
        left_out: dict[str, int] = {}
        asked, until, refused = 0, time.monotonic() + MEMBER_CHECK_S, []

        def may_ask() -> bool:
            if asked < MAX_MEMBER_CHECKS and time.monotonic() < until:
                return True
            refused.append(True)  # a check was wanted and not made: the note says so
            return False

        def definitions(frel: str, line: int, column: int) -> set[tuple[str | None, int]]:
            """Where jedi says the use at (line, column), 1-based, is defined; empty when it cannot say (also when
            the file changed since it was read, or the server failed: the use is then taken as unresolved)."""
            try:
                found = self.goto_definition(frel, line, column, state=state).definitions
            except (SemanticInputError, LspError, OSError):
                return set()
            return {(d.relative_path, d.line - 1) for d in found}

        for r in refs:
            frel = r["relative_path"]
            if frel not in per_file:
                text = texts.get(frel)
                if text is None:
                    with contextlib.suppress(OSError):
                        text = read_text(self.root / frel)[0]
                per_file[frel] = None if text is None else occurrences(frel, text)
            kind, can = (per_file[frel] or {}).get((r["line"] - 1, r["column"] - 1), (CODE, True))
            if can and kind == ATTRIBUTE and may_ask():
                asked += 1
                at = definitions(frel, r["line"], r["column"])
                if at and not at & defs:
                    kind, can = OTHER_CLASS_ATTRIBUTE, False
            if can:
                kept.append({**r, "kind": ATTRIBUTE if kind == SELF_ATTRIBUTE else kind})
            else:
                left_out[kind] = left_out.get(kind, 0) + 1
        # uses jedi's list misses (it skips names inside f-strings, for one): every `obj.name` of the project
        # whose definition jedi finds in the family
        listed = {(r["relative_path"], r["line"], r["column"]) for r in refs}
        word = re.compile(rf"(?<!\w){re.escape(name)}(?!\w)")
        for frel, text in sorted(texts.items()):
            if not word.search(text) or not may_ask():
                continue
            if frel not in per_file:
                per_file[frel] = occurrences(frel, text)
            for (ln, cl), (kind, can) in sorted((per_file[frel] or {}).items()):
                if not can or kind not in (ATTRIBUTE, SELF_ATTRIBUTE) or (frel, ln + 1, cl + 1) in listed:
                    continue
                if kind == ATTRIBUTE:
                    if not may_ask():
                        continue
                    asked += 1
                    if not definitions(frel, ln + 1, cl + 1) & defs:
                        continue
                kept.append({**self._describe(self.root / frel, frel, "python", ln, cl), "kind": ATTRIBUTE})
        have = {(r["relative_path"], r["line"], r["column"]) for r in kept}
        for c in family:  # overrides and the base definitions: the same member, renamed together
            if c.defines is None or c == me:
                continue
            ln, cl = c.defines
            if (c.rel, ln + 1, cl + 1) not in have:
                kept.append({**self._describe(self.root / c.rel, c.rel, "python", ln, cl), "kind": CODE})
        kept.sort(key=lambda r: (r["relative_path"], r["line"], r["column"]))
        notes = []
        if len(family) > 1:
            others = ", ".join(f"{c.rel}:{'.'.join(c.chain)}" for c in family if c != me)
            notes.append(f"the same member in its class family (bases and overrides, matched by name): {others}")
        if left_out:
            parts = ", ".join(f"{n} {k}" for k, n in sorted(left_out.items()))
            notes.append(f"{sum(left_out.values())} occurrence(s) of {name!r} the language server named left out: "
                         f"they cannot be the member {'.'.join(owner)}.{name} (by kind: {parts})")
        if refused:
            notes.append(f"only the first {asked} `obj.{name}` uses were checked against their definitions (at most "
                         f"{MAX_MEMBER_CHECKS} requests, {MEMBER_CHECK_S:g} s); the rest are jedi's answer, and uses "
                         "its list missed may be missing")
        return {"refs": kept, "note": "; ".join(notes) or None, "mentions": None}

    def also_open(self, srv: LanguageServer, lang: str, walked: list[Path] | None = None) -> list[Path] | None:
        """Files to open first for cross-file requests (clangd has no background index); `walked`: the project's
        files from a walk the caller already made."""
        if not srv.spec.open_all_for_references:
            return None
        files = walked if walked is not None else walk_files(self.root, self.root, LANGUAGE_EXTENSIONS[lang])
        return list(itertools.islice(files, C_OPEN_ALL_LIMIT))

    def _line(self, path: Path, line: int) -> str:
        lines = self.lines(path)
        return lines[line] if 0 <= line < len(lines) else ""

    def _locations_to_refs(self, raw: list[dict], lang: str, encoding: str,
                           exclude: tuple[str, int, int] | None, progress: Progress | None = None) -> list[dict]:
        refs = []
        seen = set()
        files = sorted({item.get("uri") or item.get("targetUri") or "" for item in raw})
        described: set[str] = set()
        for item in sorted(raw, key=lambda i: i.get("uri") or i.get("targetUri") or ""):
            uri = item.get("uri") or item.get("targetUri")
            rng = item.get("range") or item.get("targetSelectionRange")
            if not uri or not rng or not uri.startswith("file://"):
                continue
            p = Path(uri_to_path(uri))
            rel = self.rel(p)
            if rel is None:
                continue  # outside the project (environment, stdlib)
            ln = rng["start"]["line"]
            try:
                cl = from_server(self._line(p, ln), rng["start"]["character"], encoding)
            except OSError:
                continue  # deleted since the server answered
            real = os.path.realpath(p)
            if exclude and (real, ln, cl) == (os.path.realpath(exclude[0]), exclude[1], exclude[2]):
                continue
            if (real, ln, cl) in seen:
                continue
            seen.add((real, ln, cl))
            if progress and uri not in described:
                described.add(uri)
                progress(len(described), len(files), f"naming the enclosing symbols in {rel}")
            refs.append(self._describe(p, rel, lang, ln, cl))
        refs.sort(key=lambda r: (r["relative_path"], r["line"], r["column"]))
        return refs

    def _describe(self, p: Path, rel: str, lang: str, ln: int, cl: int) -> dict:
        context = None
        symbol = None
        try:
            lines = self.lines(p)
            if 0 <= ln < len(lines):
                context = lines[ln].strip()[:200]
            flang = language_of(p) if p.suffix else lang
            tree = self.document_symbols(p, rel, flang)
            enc = sym.enclosing(tree, ln, cl)
            symbol = enc.name_path if enc else None
        except (OSError, LanguageUnavailable, LspError, PathRefused) as exc:
            log.debug("describe %s:%s failed: %s", rel, ln, exc)
        return {"relative_path": rel, "line": ln + 1, "column": cl + 1, "symbol": symbol, "context": context}

    def goto_definition(self, relative_path: str, line: int, column: int, *, state: str | None = None
                        ) -> Definitions:
        """`state`: the project state when the caller has it already (a references call asking per use)."""
        path, rel, lang = self._file(relative_path)
        lines = self.lines(path)
        if line < 1 or line > max(1, len(lines)):
            raise SemanticInputError(f"line {line} is outside {rel} (1..{len(lines)}); lines and columns are 1-based")
        width = len(lines[line - 1]) + 1 if lines else 1
        if column < 1 or column > width:
            raise SemanticInputError(f"column {column} is outside line {line} of {rel} (1..{width})")
        srv = self.server(lang)
        if state is None:
            state = self.project_state(lang)
        key = make_key(self.fingerprint(srv), rel, self.content_hash(path), "definition", line, column, state)
        defs = self.cache.get(key)
        if defs is None:
            character = to_server(lines[line - 1] if lines else "", column - 1, srv.position_encoding)
            raw = srv.request("textDocument/definition", path, lambda uri: {
                "textDocument": {"uri": uri}, "position": {"line": line - 1, "character": character}})
            if isinstance(raw, dict):
                raw = [raw]
            defs = []
            for item in raw or []:
                uri = item.get("targetUri") or item.get("uri")
                rng = item.get("targetSelectionRange") or item.get("range")
                if not uri or not rng:
                    continue
                p = Path(uri_to_path(uri))
                drel = self.rel(p)
                ln, cl = rng["start"]["line"], rng["start"]["character"]
                with contextlib.suppress(OSError):
                    text = self._line(p, ln) if drel is not None else _external_line(p, ln)
                    cl = from_server(text, cl, srv.position_encoding)
                if drel is None:
                    defs.append({"relative_path": None, "external_path": str(p), "line": ln + 1, "column": cl + 1,
                                 "symbol": None, "context": None})
                else:
                    defs.append(self._describe(p, drel, lang, ln, cl))
            self.cache.set(key, defs, tag=project_tag(lang))
        shown = [{**d, "external_path": outside_name(d["external_path"])} if d.get("external_path") else d
                 for d in defs]
        return Definitions.model_validate({
            "relative_path": rel, "line": line, "column": column, "definitions": shown,
            "note": None if defs else f"no definition found at {rel}:{line}:{column} (not on a name, or the name "
                                      "is defined nowhere the server can see)"})

    # ---- background index --------------------------------------------------------------------------
    def index(self, budget: Callable[[], int], stop: threading.Event | None = None, recheck_every: int = 25,
              pause: Callable[[], None] | None = None) -> dict:
        """Fetch the symbol tree of every source file into the symbol table (and the cache), so that a query
        finds it done. `budget()` is how many files the operating phase allows now (0 stops); it is asked again
        every `recheck_every` files, so a phase change takes effect soon. Files whose recorded tree still stands
        (a restart) cost a stat, not a request.

        A query never waits behind the index: `pause()` (the host's gate) holds the index while a caller's call
        runs, and lets it resume after. Python's trees come from a language server of the index's own (the same
        spec, so the same trees), run at a lower CPU priority and stopped when the index ends; the files a query
        names (`hint_index`) are indexed next and go on beside it, ready for its enclosing symbols, while the
        rest waits at the gate. Other languages share the query's server, so every file waits there."""
        stop = stop or threading.Event()
        pause = pause or (lambda: None)
        t0 = time.monotonic()
        state = self.indexing = {"state": "running", "files": 0, "total": None, "seconds": 0.0, "stopped": None,
                                 "hinted": 0}
        langs = [lang for lang in LANGUAGE_EXTENSIONS if self._indexable(lang)]
        remaining = [p for p in walk_files(self.root, self.root, frozenset().union(
            *(LANGUAGE_EXTENSIONS[lang] for lang in langs)) if langs else frozenset(), limit=MAX_SCAN_FILES)]
        remaining.reverse()  # popped from the end: walk order
        state["total"] = len(remaining)
        allowed = budget()
        hint_seen: str | None = None  # a hint given before the index started counts too
        hinted: set[Path] = set()
        done = 0
        try:
            while remaining:
                if done % recheck_every == 0 and done:
                    allowed = budget()
                if self._index_hint != hint_seen:
                    hint_seen = self._index_hint
                    state["hinted"] += _hinted_first(remaining, hint_seen, hinted)
                path = remaining[-1]
                try:
                    lang = language_of(path)
                except LanguageUnavailable:
                    lang = ""
                separate = lang == "python" and self.separate_index_server
                if not separate or path not in hinted:  # only a query's own files go on beside it
                    pause()
                try:
                    via = self.index_server(lang) if separate else None  # after the pause: it may have been let go
                except LanguageUnavailable:
                    via = None
                if stop.is_set():
                    state["stopped"] = "server shutting down"
                    break
                if done >= allowed:
                    state["stopped"] = (f"the operating phase allows {allowed} files" if allowed else
                                        "memory is critical: indexing paused")
                    break
                remaining.pop()
                done += 1
                rel = self.rel(path)
                if rel is None or not lang:
                    continue
                try:
                    check_text_file(path, rel)
                    with background_work():
                        self.symbol_entry(path, rel, lang, via=via)
                except (LanguageUnavailable, PathRefused, LspError, OSError) as exc:
                    log.debug("index: %s skipped: %s", rel, exc)
                    continue
                finally:
                    if via is not None and self._index_servers.get(lang) is not via:
                        via.stop()  # stopped under the request (memory pressure): not restarted behind our back
                state["files"] = done
                state["seconds"] = round(time.monotonic() - t0, 2)
        finally:
            self.stop_index_servers("the index ended")
        state["state"] = "done" if state["stopped"] is None else "stopped"
        state["seconds"] = round(time.monotonic() - t0, 2)
        log.info("semantic index: %s", state)
        return state

    def hint_index(self, name: str) -> None:
        """A query about `name` is coming: the index takes the files that mention it next."""
        self._index_hint = name

    def index_server(self, lang: str) -> LanguageServer | None:
        """The index's own language server for `lang` (Python only: a second jedi costs ~100 MB and no download),
        at a lower CPU priority; None where the index shares the query's server."""
        if lang != "python" or not self.separate_index_server:
            return None
        main = self.server(lang)
        with self._lock:
            srv = self._index_servers.get(lang)
            if srv is None:
                assert self._loop is not None
                srv = self._index_servers[lang] = LanguageServer(main.spec, self.root, self._loop,
                                                                 request_timeout=self.request_timeout)
        return srv

    def stop_index_servers(self, why: str) -> None:
        with self._lock:
            servers = list(self._index_servers.values())
            self._index_servers.clear()
        for srv in servers:
            log.info("the index's own %s server stopped: %s", srv.spec.key, why)
            srv.stop()

    def _indexable(self, lang: str) -> bool:
        """A language is indexed when the project has its files and its server needs no download."""
        if not BY_KEY[lang].installed(self.lsp_dir):
            return False
        if not any(True for _ in walk_files(self.root, self.root, LANGUAGE_EXTENSIONS[lang], limit=1)):
            return False
        try:
            self.server(lang)
        except LanguageUnavailable:
            return False
        return True

    # ---- status ------------------------------------------------------------------------------------
    def status(self) -> dict:
        servers = [s.status() for s in list(self._servers.values())]
        servers += [{**s.status(), "role": "index (lower CPU priority, stopped when the index ends)"}
                    for s in list(self._index_servers.values())]
        return {
            "project_root": str(self.root),
            "index": self.indexing,
            "cache": self.cache.stats(),
            "symbol_table": self.symbols.stats(),
            "servers": servers,
            # every language server's memory, the type checker's included (it is this layer's largest process)
            "servers_rss_bytes": sum(s["rss_bytes"] or 0 for s in servers),
            "unavailable": {k: str(v) for k, v in self._unavailable.items()},
            "edit_conflicts": dict(self.edit_conflicts),
            "time": time.time(),
        }
