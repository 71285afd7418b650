"""The store: SQLite (one WAL database under the data directory, the embedded default) or PostgreSQL (a
`postgresql://` URL, for several server replicas on one board). `open_store` picks the engine.

Every caller writes the same SQL for both engines (named `:x` or positional `?` parameters, no engine-only
functions); the few places where the engines must differ ask the store (`for_update`, `skip_locked`). SQLite
hands out its own connection unchanged, so the embedded path pays nothing for the second engine.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ansf_mcp.store.migrations import MIGRATIONS

log = logging.getLogger(__name__)

POSTGRES_SCHEMES = ("postgresql://", "postgres://", "postgresql+psycopg://")


class StoreError(RuntimeError):
    """The store cannot be opened or written (bad path or URL, refused password, full disk, newer schema...)."""


def is_postgres_url(spec: str | Path | None) -> bool:
    return isinstance(spec, str) and spec.lower().startswith(POSTGRES_SCHEMES)


def open_store(spec: str | Path) -> Store:
    """A `postgresql://` URL opens PostgreSQL; anything else is the path of a SQLite database."""
    if is_postgres_url(spec):
        from ansf_mcp.store.postgres import PostgresStore  # psycopg is imported only when asked for

        return PostgresStore(str(spec))
    return Store(Path(spec))


class Store:
    """SQLite: a single connection shared by the process, serialised by a lock.

    Writes take BEGIN IMMEDIATE so that two server processes on the same data directory also serialise
    their claims; WAL keeps readers unblocked. `PostgresStore` subclasses this so that every caller keeps
    one type to name.
    """

    engine = "sqlite"
    # Row locks appended to a SELECT inside a transaction: the row read is the row written (`for_update`), and a
    # claim passes over tasks another replica is claiming right now (`skip_locked`; the tasks are aliased `t`).
    # SQLite's BEGIN IMMEDIATE already serialises writers, so both are empty here.
    for_update = ""
    skip_locked = ""

    def __init__(self, path: Path):
        self.path = path
        self.location = str(path)
        self.engine_version = sqlite3.sqlite_version
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
    def transaction(self) -> Iterator[Any]:
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

    def put_component_status(self, name: str, status: str) -> None:
        """What a component of this process reports (JSON text), for watchers in other processes."""
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO component_status (name, pid, status, updated_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (name) DO UPDATE SET pid = excluded.pid, status = excluded.status, "
                "updated_at = excluded.updated_at",
                (name, os.getpid(), status, time.time()),
            )

    @contextmanager
    def reading(self) -> Iterator[Any]:
        with self._lock:
            yield self._conn

    # -- news: "something changed under this key" (a swarm's messages...), for callers that wait for it ---------

    # SQLite has no cross-process signal: a waiter in another process re-reads at least this often.
    news_poll_s = 0.25

    def _news(self) -> tuple[threading.Condition, dict[str, int]]:
        news = self.__dict__.get("_news_state")
        if news is None:
            news = self.__dict__.setdefault("_news_state", (threading.Condition(), {}))
        return news

    def news_version(self, key: str) -> int:
        cond, versions = self._news()
        with cond:
            return versions.get(key, 0)

    def _heard(self, key: str) -> None:
        cond, versions = self._news()
        with cond:
            versions[key] = versions.get(key, 0) + 1
            cond.notify_all()

    def notify(self, key: str) -> None:
        """Tell waiters that `key` changed: in this process at once; other processes through LISTEN/NOTIFY on
        PostgreSQL (SQLite waiters in other processes find it on their next poll)."""
        self._heard(key)

    def wait_news(self, key: str, seen: int, timeout: float) -> int:
        """Block until `key`'s version passes `seen` or `timeout` (at most `news_poll_s` on SQLite) runs out;
        the version now. Callers re-read the store either way."""
        cond, versions = self._news()
        with cond:
            cond.wait_for(lambda: versions.get(key, 0) > seen, timeout=min(timeout, self.news_poll_s))
            return versions.get(key, 0)

    def describe(self) -> dict[str, Any]:
        """What `ansf status` and `system_status` say about the store."""
        return {"engine": self.engine, "engine_version": self.engine_version, "location": self.location,
                "schema_version": self.schema_version}

    def close(self) -> None:
        with self._lock:
            self._conn.close()
