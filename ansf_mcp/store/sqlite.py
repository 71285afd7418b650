"""The SQLite store: one WAL database under the data directory, the embedded default.

Two connections per process: writes go through one, serialised by a lock and by BEGIN IMMEDIATE (so two server
processes on one data directory also take turns on their claims); reads go through the other, so a reader never
queues behind a writer that is waiting for another process's lock (WAL lets readers through). A writer waits at
most `timeout_s` for that lock (busy_timeout), then fails with one sentence and writes nothing.
"""

from __future__ import annotations

import logging
import os
import shutil
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ansf_mcp import trace
from ansf_mcp.store.base import DEFAULT_TIMEOUT_S, Connection, Store, StoreError
from ansf_mcp.store.db import SQLITE_NAME
from ansf_mcp.store.migrations import MIGRATIONS, PostgresOnly

log = logging.getLogger(__name__)


# SQLite's words for a statement that names what the schema no longer has (a newer server changed it).
_UNDEFINED = ("no such table", "no such column", "has no column named")

# Opening a WAL store writes its shared-memory file (32 KiB) and may grow the log: below this it cannot open.
ROOM_TO_OPEN_BYTES = 1 << 20


def _file_system_says(path: Path) -> str:
    """Why a store may not open, in words the user can act on: SQLite says only "disk I/O error" or "unable to
    open database file" when the disk is full, the directory read-only or the path a directory, even to open a
    store for reading."""
    directory = path.parent
    try:
        if path.is_dir():
            return f" (it is a directory; a store is a file, such as {path / SQLITE_NAME})"
        if not os.access(directory, os.W_OK):
            return f" (the directory {directory} cannot be written: a store opens only where it can write)"
        free = shutil.disk_usage(directory).free
    except OSError:
        return ""
    if free < ROOM_TO_OPEN_BYTES:
        return f" (the disk under {directory} is full: {free // 1024} KiB free)"
    return ""


class SqliteStore(Store):
    engine = "sqlite"
    # BEGIN IMMEDIATE already serialises writers: no row locks to add.

    def __init__(self, path: Path, timeout_s: float = DEFAULT_TIMEOUT_S):
        super().__init__(timeout_s)
        self.path = path
        self.location = str(path)
        self.engine_version = sqlite3.sqlite_version
        self._write_lock = threading.RLock()
        self._read_lock = threading.Lock()
        self._in_transaction = threading.local()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._writer = self._connect()
            self._refuse_foreign()
            self._writer.execute("PRAGMA journal_mode=WAL")
            self._writer.execute("PRAGMA synchronous=NORMAL")
            self.schema_version = self._migrate()
            self._reader = self._connect()
        except BaseException as exc:
            # A store that did not open lets go of its file at once: a caller that goes on, a disk to unmount.
            if hasattr(self, "_writer"):
                self._writer.close()
            if isinstance(exc, OSError | sqlite3.Error):
                raise StoreError(f"cannot open the store at {path}: {exc}{_file_system_says(path)}") from exc
            if isinstance(exc, UnicodeDecodeError):
                # SQLite's message quotes the damaged schema, bytes that are not text: Python cannot even read it.
                raise StoreError(f"cannot open the store at {path}: the file is damaged (its schema is not text); "
                                 "restore it from a copy or use another --data-dir") from exc
            raise

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(str(self.path), timeout=self.timeout_s, isolation_level=None,
                               check_same_thread=False)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute(f"PRAGMA busy_timeout={int(self.timeout_s * 1000)}")
        return conn

    def _refuse_foreign(self) -> None:
        # Schema 0 with tables is another program's database (a --store that names the wrong file): WAL mode and
        # this schema's tables beside its own would change a file that is not ours.
        # One statement, one snapshot: a server migrating this fresh file beside us commits its tables and
        # version together, and two reads could see version 0 before that commit and the tables after it.
        foreign = [row[0] for row in self._writer.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite%' "
            "AND (SELECT user_version FROM pragma_user_version) = 0 ORDER BY name")]
        if foreign:
            shown = ", ".join(foreign[:5]) + (", ..." if len(foreign) > 5 else "")
            raise StoreError(f"{self.path} is not an ansf-mcp store (it holds other tables: {shown}); "
                             "nothing was changed; name another --store or --data-dir")

    def _migrate(self) -> int:
        current = self._writer.execute("PRAGMA user_version").fetchone()[0]
        if current > len(MIGRATIONS):
            raise StoreError(
                f"the store at {self.path} has schema {current}, newer than this version knows "
                f"({len(MIGRATIONS)}); upgrade ansf-mcp or use another --data-dir"
            )
        for version in range(current + 1, len(MIGRATIONS) + 1):
            with self.transaction() as conn:
                # Servers started together on a fresh data directory all read version 0 above; under the write
                # lock only the first applies each step, the others see it done.
                if conn.execute("PRAGMA user_version").fetchone()[0] >= version:
                    continue
                for statement in MIGRATIONS[version - 1]:
                    if not isinstance(statement, PostgresOnly):
                        conn.execute(statement)
                conn.execute(f"PRAGMA user_version={version}")
            log.info("store migrated to schema %d", version)
        return len(MIGRATIONS)

    def _error(self, exc: sqlite3.Error, doing: str) -> StoreError:
        """Any SQLite error as one sentence; a lock held past the time-out says which setting waits, and a
        statement that no longer fits a schema a newer server migrated says so."""
        if any(words in str(exc) for words in _UNDEFINED):
            found = self._schema_now()
            if found is not None and found > self.schema_version:
                return self.schema_moved(found, doing)
        if "locked" in str(exc) or "busy" in str(exc):
            return StoreError(f"the store {self.path} stayed locked by another process for {self.timeout_s:g} s "
                              f"(ANSF_STORE_TIMEOUT_S), so {doing}; try again")
        return StoreError(f"store error, so {doing}: {exc}")

    def _schema_now(self) -> int | None:
        # A connection of its own: the failed call's may sit in a transaction, or hold the read lock's snapshot.
        try:
            conn = sqlite3.connect(str(self.path), timeout=1.0)
            try:
                return int(conn.execute("PRAGMA user_version").fetchone()[0])
            finally:
                conn.close()
        except sqlite3.Error:
            return None

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        # One deadline for the whole wait: writers of this process queued behind one that waits for another
        # process's lock must not each wait a full time-out after it.
        deadline = time.monotonic() + self.timeout_s
        if not self._write_lock.acquire(timeout=self.timeout_s):
            raise StoreError(f"the store {self.path} stayed busy for {self.timeout_s:g} s (ANSF_STORE_TIMEOUT_S) "
                             "behind earlier writes of this server, so nothing was written; try again")
        trace.mark("lock")
        try:
            try:
                self._writer.execute(f"PRAGMA busy_timeout={max(1, int((deadline - time.monotonic()) * 1000))}")
                self._writer.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise self._error(exc, "nothing was written") from exc
            trace.mark("begin")
            self._in_transaction.active = True
            try:
                yield self._writer
            except BaseException as exc:
                self._rollback()
                # One sentence, as on PostgreSQL and as reads already are: a caller that records in the background
                # (a phase change) catches StoreError, and a raw sqlite3 error ended silently in its thread.
                if isinstance(exc, sqlite3.Error):
                    raise self._error(exc, "nothing was written") from exc
                raise
            else:
                trace.mark("commit0")
                try:
                    self._writer.execute("COMMIT")
                    trace.mark("commit1")
                except sqlite3.Error as exc:
                    self._rollback()
                    raise StoreError(f"could not commit to the store: {exc}") from exc
            finally:
                self._in_transaction.active = False
        finally:
            self._write_lock.release()

    def _rollback(self) -> None:
        # SQLite rolls the whole transaction back by itself on some errors (a full disk, an I/O error): a ROLLBACK
        # then fails with "no transaction is active", which would hide the error the caller must see.
        if not self._writer.in_transaction:
            return
        try:
            self._writer.execute("ROLLBACK")
        except sqlite3.Error as exc:
            log.warning("rollback failed after an error: %s", exc)

    @contextmanager
    def reading(self) -> Iterator[Connection]:
        if getattr(self._in_transaction, "active", False):
            yield self._writer  # inside this thread's own transaction: read what it wrote
            return
        with self._read_lock:
            try:
                yield self._reader
            except sqlite3.Error as exc:
                # One sentence, as on PostgreSQL: callers that report a store they cannot read (describe, ansf
                # status, the dashboard) catch StoreError, and a damaged page is no crash of theirs.
                raise self._error(exc, "nothing could be read") from exc

    def close(self) -> None:
        with self._write_lock, self._read_lock:
            self._writer.close()
            if hasattr(self, "_reader"):
                self._reader.close()
