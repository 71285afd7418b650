"""Bounded on-disk answer cache (diskcache), real size incl. WAL kept under a budget; the disk budget of the
whole semantic layer per project, split between this cache and jedi's parse cache.

A cache file that cannot be read (empty, truncated, not a database) never fails a call: the cache is emptied,
logged and rebuilt once, and the call goes on as a miss."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import sqlite3
import threading
import zlib
from pathlib import Path
from typing import Any

import diskcache

log = logging.getLogger(__name__)

MIB = 1024 * 1024
DISK_BUDGET_BYTES = 25_000_000  # the promise: all the semantic layer keeps on disk for a project, caches included
JEDI_CACHE_BYTES = 6_000_000  # jedi's parse pickles (<data_dir>/lsp/jedi-cache), trimmed oldest-first
# The symbol table (<data_dir>/symbol-table) takes SYMBOL_TABLE_BYTES = 2 MB (semantic/symbol_table.py).
ANSWER_CACHE_BYTES = 16_000_000  # this cache's directory, WAL included; the last MB holds locks and journals
SIZE_LIMIT_BYTES = 11 * MIB  # diskcache's own limit (main db only, culled lazily) leaves room for WAL + slack
_BROKEN = (sqlite3.DatabaseError, OSError)  # what an empty, truncated or foreign cache.db raises
MAX_ENTRY_BYTES = 1 * MIB  # compressed; larger answers are not cached (they would thrash eviction)


def make_key(*parts: Any) -> str:
    raw = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.blake2b(raw.encode("utf-8"), digest_size=20).hexdigest()


def dir_bytes(directory: Path) -> int:
    """Real bytes on disk of every file in `directory` (allocated blocks, or apparent size if larger)."""
    total = 0
    for dirpath, _dirs, files in os.walk(directory):
        for f in files:
            try:
                st = os.stat(os.path.join(dirpath, f))
            except OSError:
                continue
            total += max(st.st_size, getattr(st, "st_blocks", 0) * 512)
    return total


class SemanticCache:
    """zlib-compressed JSON values in one SQLite file; no side files (min_file_size is huge)."""

    def __init__(self, directory: Path, size_limit: int = SIZE_LIMIT_BYTES):
        self.directory = Path(directory)
        self.size_limit = size_limit
        self.rebuilt = 0
        self._lock = threading.Lock()
        db = self.directory / "cache.db"
        if db.is_file() and db.stat().st_size == 0:  # SQLite takes it as a new database: say what was lost
            log.warning("semantic cache at %s was an empty file (a killed writer?); starting empty", self.directory)
            self.rebuilt += 1
        try:
            self._cache = self._open()
            len(self._cache)  # reads the table: a broken file fails here, not on the first call
        except _BROKEN as exc:
            self._cache = self._rebuild(exc)
        self.hits = 0
        self.misses = 0
        self.sets = 0
        self.skipped_empty = 0
        self.skipped_large = 0
        self.invalidated = 0
        self._count0 = len(self._cache)

    def _open(self) -> diskcache.Cache:
        self.directory.mkdir(parents=True, exist_ok=True)
        return diskcache.Cache(
            str(self.directory),
            cull_limit=16,
            eviction_policy="least-recently-stored",  # reads stay read-only (no access-time writes)
            disk_min_file_size=2**31,  # keep values inside SQLite: no stray files, exact accounting
            sqlite_journal_size_limit=MIB,  # truncate the WAL back to 1 MiB after checkpoints
            sqlite_wal_autocheckpoint=128,  # pages (4 KiB): checkpoint at ~512 KiB of WAL
            sqlite_cache_size=2**10,
            sqlite_mmap_size=0,
            tag_index=True,  # edits evict exactly the entries they stale, by tag
            size_limit=self.size_limit,
        )

    def _rebuild(self, exc: BaseException) -> diskcache.Cache:
        """Empty the directory and open a fresh cache: what it held is only answers, recomputed on demand."""
        log.warning("semantic cache at %s unreadable (%s: %s); emptied and rebuilt", self.directory,
                    type(exc).__name__, exc)
        old = getattr(self, "_cache", None)
        if old is not None:
            with contextlib.suppress(Exception):
                old.close()
        shutil.rmtree(self.directory, ignore_errors=True)
        self.rebuilt += 1
        return self._open()

    def _heal(self, exc: BaseException) -> None:
        with self._lock:
            self._cache = self._rebuild(exc)
            self._count0 = 0
            self.sets = 0
            self.invalidated = 0

    def get(self, key: str) -> Any | None:
        try:
            blob = self._cache.get(key, default=None, retry=True)
        except _BROKEN as exc:
            self._heal(exc)
            blob = None
        if blob is None:
            with self._lock:
                self.misses += 1
            return None
        try:
            value = json.loads(zlib.decompress(blob))
        except (zlib.error, ValueError, TypeError):
            self._cache.delete(key, retry=True)
            with self._lock:
                self.misses += 1
            return None
        with self._lock:
            self.hits += 1
        return value

    def set(self, key: str, value: Any, tag: str | None = None) -> bool:
        """Store a non-empty JSON value. Empty results are never cached. `tag` names what the value depends on
        (`file:<lang>:<path>` for one file's answers, `project:<lang>` for cross-file ones) so that an edit can
        evict exactly those."""
        if value is None or value == [] or value == {} or (isinstance(value, dict) and value.get("empty")):
            self.skipped_empty += 1
            return False
        blob = zlib.compress(json.dumps(value, separators=(",", ":")).encode("utf-8"), 1)
        if len(blob) > MAX_ENTRY_BYTES:
            self.skipped_large += 1
            return False
        try:
            self._cache.set(key, blob, retry=True, tag=tag)
        except _BROKEN as exc:
            self._heal(exc)
            return False
        with self._lock:
            self.sets += 1
        return True

    def evict(self, tag: str) -> int:
        """Remove every entry stored under `tag`; returns how many."""
        try:
            removed = self._cache.evict(tag, retry=True)
        except _BROKEN as exc:
            self._heal(exc)  # an emptied cache holds nothing stale
            return 0
        with self._lock:
            self.invalidated += removed
        return removed

    def count(self, tag: str) -> int:
        """Entries stored under `tag` (tests and status)."""
        ((n,),) = self._cache._sql("SELECT COUNT(*) FROM Cache WHERE tag = ?", (tag,)).fetchall()
        return n

    def bytes_on_disk(self) -> int:
        return dir_bytes(self.directory)

    def stats(self) -> dict:
        try:
            count = len(self._cache)
        except _BROKEN as exc:
            self._heal(exc)
            count = 0
        total = self.hits + self.misses
        return {
            "hits": self.hits,
            "misses": self.misses,
            "hit_ratio": round(self.hits / total, 4) if total else None,
            "entries": count,
            "evictions": max(0, self._count0 + self.sets - count - self.invalidated),
            "invalidated_by_edits": self.invalidated,
            "not_cached_empty": self.skipped_empty,
            "not_cached_too_large": self.skipped_large,
            "bytes_on_disk": self.bytes_on_disk(),
            "budget_bytes": ANSWER_CACHE_BYTES,
            "rebuilt_after_damage": self.rebuilt,
            "directory": str(self.directory),
        }

    def clear(self) -> None:
        self._cache.clear(retry=True)
        self._count0 = 0
        self.sets = 0

    def close(self) -> None:
        try:
            self._cache.close()
        except Exception:  # pragma: no cover
            pass
