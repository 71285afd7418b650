"""The project's symbol table: every source file's symbol tree, kept in memory and persisted under the data
directory, so `find_symbol` over a folder reads trees it already has instead of asking the language server (or
the answer cache) for every file.

An entry stands for one file's content: it is used while the file's stat identity (mtime, size, inode) is the one
recorded and was settled when recorded (the racy-git rule of `paths.settled`); otherwise the content hash decides,
and a file whose content changed is parsed again. Trees depend on the language server and its options, so an
entry also records the server's fingerprint and never serves another. Directory listings are kept the same way
(a folder's mtime changes when an entry is added, removed or renamed in it), so a warm walk is a stat per folder
and per file.

The file is SQLite (`<data_dir>/symbol-table/<project key>.db`), zlib-compressed JSON trees, within
SYMBOL_TABLE_BYTES of the semantic layer's disk budget: past it, new trees stay in memory only. A file that cannot
be read (empty, truncated, not a database) is deleted with a log line and the table starts empty: it only holds
what the language server can recompute.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import sqlite3
import threading
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ansf_mcp.semantic.paths import SKIP_DIRS, settled, stamp_ns

log = logging.getLogger(__name__)

SYMBOL_TABLE_BYTES = 2_000_000  # its share of the 25 MB disk budget (semantic/cache.py)
FORMAT = 1  # rows of another format are dropped at load
_BROKEN = (sqlite3.DatabaseError, OSError)


def _names(tree: list[dict], out: set[str]) -> set[str]:
    """Every symbol name in `tree`, and for gopls's methods `(Recv).Name` also `Name` (name paths match it)."""
    for node in tree:
        name = node["name"]
        out.add(name)
        if name.startswith("(") and ")." in name:
            out.add(name.rsplit(").", 1)[1])
        _names(node["children"], out)
    return out


@dataclass
class Entry:
    """One file's symbol tree and what it stands for."""

    lang: str
    fingerprint: str
    ident: tuple[int, int, int]  # (paths.stamp_ns, size, inode) when read; stored in the mtime_ns column
    settled: bool
    digest: str
    tree: list[dict]
    names: frozenset[str] = field(default_factory=frozenset)
    lowered: str = ""

    def __post_init__(self) -> None:
        names = _names(self.tree, set())
        self.names = frozenset(names)
        self.lowered = "\n".join(sorted(n.lower() for n in names))

    def may_hold(self, name: str, substring: bool) -> bool:
        """False when no symbol of the file can match a name path ending in `name` (a necessary condition of
        `symbols.matches`, so skipping such files changes no answer)."""
        if substring:
            return name.lower() in self.lowered
        return name in self.names


def _ident(st: os.stat_result) -> tuple[int, int, int]:
    return stamp_ns(st), st.st_size, st.st_ino


@dataclass
class _Listing:
    mtime_ns: int
    settled: bool
    files: list[str]  # names of source files (and symlinks to files), sorted
    links: list[str]  # which of `files` are symlinks
    dirs: list[str]  # sub-folders to walk, sorted


class SymbolTable:
    def __init__(self, directory: Path, root: Path, max_bytes: int = SYMBOL_TABLE_BYTES) -> None:
        self.root = Path(root).resolve()
        key = hashlib.blake2b(str(self.root).encode("utf-8", "surrogatepass"), digest_size=8).hexdigest()
        self.path = Path(directory) / f"{key}.db"
        self.max_bytes = max_bytes
        # compressed trees stored; SQLite's pages and its WAL (~100 KB with the pragmas below) take the rest
        self.payload_limit = max_bytes // 2
        self._blob_bytes: dict[str, int] = {}
        self._lock = threading.RLock()
        self._entries: dict[str, Entry] = {}
        self._listings: dict[tuple[str, frozenset[str]], _Listing] = {}
        self._db: sqlite3.Connection | None = None
        self._loaded = False
        self._stored_bytes = 0
        self._full_logged = False
        self.rebuilt = 0
        self.hits = 0
        self.rehashed = 0
        self.stale = 0

    # ---- storage -----------------------------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, timeout=10, check_same_thread=False, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA journal_size_limit=65536")
        db.execute("PRAGMA wal_autocheckpoint=16")
        db.execute("PRAGMA synchronous=NORMAL")  # a torn write is healed like any damage
        db.execute("CREATE TABLE IF NOT EXISTS files (rel TEXT PRIMARY KEY, format INTEGER, lang TEXT, "
                   "fingerprint TEXT, mtime_ns INTEGER, size INTEGER, ino INTEGER, settled INTEGER, digest TEXT, "
                   "tree BLOB)")
        return db

    def _heal(self, exc: BaseException) -> None:
        """Throw the file away and start empty (it holds only what the language server recomputes)."""
        log.warning("symbol table at %s unreadable (%s: %s); deleted and rebuilt", self.path, type(exc).__name__,
                    exc)
        if self._db is not None:
            with contextlib.suppress(Exception):
                self._db.close()
        self._db = None
        for suffix in ("", "-wal", "-shm", "-journal"):
            with contextlib.suppress(OSError):
                os.unlink(f"{self.path}{suffix}")
        self.rebuilt += 1
        self._stored_bytes = 0
        self._blob_bytes.clear()
        try:
            self._db = self._connect()
        except _BROKEN:  # no place to persist: the table still serves from memory
            log.warning("symbol table at %s cannot be written; kept in memory only", self.path, exc_info=True)
            self._db = None

    def _load(self) -> None:
        """Read the persisted entries once (on first use, off the server's start)."""
        if self._loaded:
            return
        self._loaded = True
        rows: list[tuple] = []
        try:
            if self.path.is_file() and self.path.stat().st_size == 0:
                raise sqlite3.DatabaseError("the file is empty (a killed writer?)")
            self._db = self._connect()
            rows = self._db.execute("SELECT rel, format, lang, fingerprint, mtime_ns, size, ino, settled, digest, "
                                    "tree FROM files").fetchall()
        except _BROKEN as exc:
            self._heal(exc)
            return
        dropped = []
        for rel, fmt, lang, fp, mtime_ns, size, ino, is_settled, digest, blob in rows:
            try:
                if fmt != FORMAT:
                    raise ValueError(f"format {fmt}")
                tree = json.loads(zlib.decompress(blob))
            except (zlib.error, ValueError, TypeError):
                dropped.append(rel)
                continue
            self._entries[rel] = Entry(lang, fp, (mtime_ns, size, ino), bool(is_settled), digest, tree)
            self._blob_bytes[rel] = len(blob)
            self._stored_bytes += len(blob)
        if dropped:
            log.warning("symbol table: %d unreadable entries dropped (parsed again on use)", len(dropped))
            self._write("DELETE FROM files WHERE rel = ?", [(r,) for r in dropped])

    def _write(self, sql: str, rows: list[tuple]) -> None:
        if self._db is None:
            return
        try:
            self._db.executemany(sql, rows)
        except _BROKEN as exc:
            self._heal(exc)

    # ---- entries -----------------------------------------------------------------------------------
    def get(self, rel: str, path: str | Path, fingerprint: str, digest_of: Callable[[Path], str]) -> Entry | None:
        """The entry for `rel` if it stands for the file's content now (stat identity, else content hash)."""
        with self._lock:
            self._load()
            entry = self._entries.get(rel)
        if entry is None or entry.fingerprint != fingerprint:
            return None
        st = os.stat(path)
        ident = _ident(st)
        if entry.settled and ident == entry.ident:
            self.hits += 1
            return entry
        if ident[1] != entry.ident[1] or digest_of(Path(path)) != entry.digest:
            self.stale += 1
            return None
        self.rehashed += 1  # touched, or recorded too soon after a write to trust its stat: same content
        now_settled = settled(st)
        if (ident, now_settled) != (entry.ident, entry.settled):
            entry.ident, entry.settled = ident, now_settled
            with self._lock:
                self._write("UPDATE files SET mtime_ns = ?, size = ?, ino = ?, settled = ? WHERE rel = ?",
                            [(*ident, int(now_settled), rel)])
        return entry

    def put(self, rel: str, lang: str, fingerprint: str, st: os.stat_result, digest: str, tree: list[dict]) -> Entry:
        """Record `tree` as the symbols of `rel` whose content (hash `digest`) was read after `st` was taken."""
        entry = Entry(lang, fingerprint, _ident(st), settled(st), digest, tree)
        blob = zlib.compress(json.dumps(tree, separators=(",", ":")).encode("utf-8"), 1)
        with self._lock:
            self._load()
            self._entries[rel] = entry
            self._stored_bytes -= self._blob_bytes.pop(rel, 0)  # replaced below, or deleted
            if self._stored_bytes + len(blob) > self.payload_limit:
                self._write("DELETE FROM files WHERE rel = ?", [(rel,)])  # an older tree must not come back
                if not self._full_logged:
                    self._full_logged = True
                    log.info("symbol table: %d bytes stored, its share of the disk budget; further trees are kept "
                             "in memory only", self._stored_bytes)
                return entry
            self._stored_bytes += len(blob)
            self._blob_bytes[rel] = len(blob)
            self._write("INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        [(rel, FORMAT, lang, fingerprint, *entry.ident, int(entry.settled), digest, blob)])
        return entry

    def __len__(self) -> int:
        with self._lock:
            self._load()
            return len(self._entries)

    # ---- walking -----------------------------------------------------------------------------------
    def walk(self, start: Path, extensions: frozenset[str]) -> Iterator[tuple[str, bool]]:
        """(path, is_symlink) of every source file under `start`, in `paths.walk_files`'s order and with its
        rules (vendored, virtualenv, VCS and hidden folders skipped; symlinks to folders not followed), from
        folder listings kept while each folder's mtime stands."""
        stack = [str(start)]
        while stack:
            d = stack.pop()
            listing = self._listing(d, extensions)
            if listing is None:
                continue
            links = set(listing.links)
            prefix = d.rstrip("/") + "/"
            for name in listing.files:
                yield prefix + name, name in links  # strings: a Path per file costs more than the rest
            stack.extend(os.path.join(d, name) for name in reversed(listing.dirs))

    def _listing(self, d: str, extensions: frozenset[str]) -> _Listing | None:
        key = (d, extensions)
        try:
            st = os.stat(d)
        except OSError:
            self._listings.pop(key, None)
            return None
        known = self._listings.get(key)
        if known is not None and known.settled and known.mtime_ns == st.st_mtime_ns:
            return known
        files, links, dirs = [], [], []
        try:
            entries = sorted(os.scandir(d), key=lambda e: e.name)
        except OSError:
            return None
        for e in entries:
            name = e.name
            try:
                if e.is_dir(follow_symlinks=False):
                    if not (name in SKIP_DIRS or name.endswith(".egg-info") or name.startswith(".")):
                        dirs.append(name)
                elif e.is_file(follow_symlinks=False):
                    if os.path.splitext(name)[1].lower() in extensions:
                        files.append(name)
                elif e.is_symlink():
                    real = Path(os.path.realpath(e.path))
                    if real.is_file() and real.is_relative_to(self.root) and real.suffix.lower() in extensions:
                        files.append(name)
                        links.append(name)
            except OSError:
                continue
        listing = _Listing(st.st_mtime_ns, settled(st), files, links, dirs)
        self._listings[key] = listing
        return listing

    def stats(self) -> dict:
        with self._lock:
            return {"files": len(self._entries), "stored_bytes": self._stored_bytes,
                    "bytes_on_disk": sum(os.path.getsize(p) for p in self.path.parent.glob(self.path.name + "*")
                                         if os.path.isfile(p)),
                    "budget_bytes": self.max_bytes, "hits": self.hits, "rehashed": self.rehashed,
                    "stale": self.stale, "rebuilt_after_damage": self.rebuilt, "path": str(self.path)}

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                with contextlib.suppress(Exception):
                    self._db.close()
                self._db = None
