"""SQLite store: one WAL database under the data directory, schema versioned by PRAGMA user_version."""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ansf_mcp.store.migrations import MIGRATIONS

log = logging.getLogger(__name__)


class StoreError(RuntimeError):
    """The store cannot be opened or written (bad path, full disk, newer schema...)."""


class Store:
    """A single connection shared by the process, serialised by a lock.

    Writes take BEGIN IMMEDIATE so that two server processes on the same data directory also serialise
    their claims; WAL keeps readers unblocked.
    """

    def __init__(self, path: Path):
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(
                str(path), timeout=30.0, isolation_level=None, check_same_thread=False
            )
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open the store at {path}: {exc}") from exc
        self._conn.row_factory = sqlite3.Row
        self._lock = threading.RLock()
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute("PRAGMA foreign_keys=ON")
        self._conn.execute("PRAGMA busy_timeout=30000")
        self.schema_version = self._migrate()

    def _migrate(self) -> int:
        with self._lock:
            current = self._conn.execute("PRAGMA user_version").fetchone()[0]
            if current > len(MIGRATIONS):
                raise StoreError(
                    f"the store at {self.path} has schema {current}, newer than this version knows "
                    f"({len(MIGRATIONS)}); upgrade ansf-mcp or use another --data-dir"
                )
            for version in range(current + 1, len(MIGRATIONS) + 1):
                with self.transaction() as conn:
                    for statement in MIGRATIONS[version - 1]:
                        conn.execute(statement)
                    conn.execute(f"PRAGMA user_version={version}")
                log.info("store migrated to schema %d", version)
            return len(MIGRATIONS)

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction: all or nothing."""
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                raise StoreError(f"store busy or unwritable: {exc}") from exc
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            else:
                try:
                    self._conn.execute("COMMIT")
                except sqlite3.Error as exc:
                    self._conn.execute("ROLLBACK")
                    raise StoreError(f"could not commit to the store: {exc}") from exc

    @contextmanager
    def reading(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            yield self._conn

    def close(self) -> None:
        with self._lock:
            self._conn.close()
