"""The PostgreSQL store: the same board for any number of server replicas, on one or several machines.

Callers write one SQL for both engines, with sqlite3's parameter styles; `pg_sql` rewrites them for psycopg's
client-side binding (ClientCursor: values are merged into the statement as literals, so PostgreSQL never has to
guess a parameter's type the way SQLite never does). Rows answer by name and by position, like sqlite3.Row.

Concurrency: each transaction runs at READ COMMITTED; rows a writer must not share are locked with the store's
`for_update` / `skip_locked` clauses (claims skip rows another replica is claiming right now). Schema changes
take an advisory lock so replicas that start together migrate once.
"""

from __future__ import annotations

import functools
import logging
import re
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, ClassVar
from urllib.parse import urlsplit, urlunsplit

import psycopg

from ansf_mcp.store.db import Store, StoreError
from ansf_mcp.store.migrations import MIGRATIONS, postgres_ddl

log = logging.getLogger(__name__)

# pg_advisory_xact_lock key for migrations (any constant; "ansf" in ASCII).
MIGRATION_LOCK = 0x616E7366

# A quoted literal or identifier (left alone but for %), a cast, or a parameter.
_TOKEN = re.compile(r"'(?:[^']|'')*'|\"[^\"]*\"|::|\?|%|(?<![\w:]):([A-Za-z_]\w*)")


@functools.lru_cache(maxsize=4096)
def pg_sql(sql: str) -> str:
    """`?` and `:name` as psycopg's `%s` and `%(name)s`; a literal % doubled (only used when there are params)."""

    def sub(m: re.Match[str]) -> str:
        token = m.group(0)
        if token[0] in "'\"":
            return token.replace("%", "%%")
        if token == "::":
            return token
        if token == "?":
            return "%s"
        if token == "%":
            return "%%"
        return f"%({m.group(1)})s"

    return _TOKEN.sub(sub, sql)


class Row(tuple):
    """A result row that answers `row["name"]` and `row[0]`, and `dict(row)`, as sqlite3.Row does."""

    __slots__ = ()
    _index: ClassVar[dict[str, int]] = {}

    def __getitem__(self, key: Any) -> Any:  # type: ignore[override]
        if isinstance(key, str):
            return tuple.__getitem__(self, self._index[key])
        return tuple.__getitem__(self, key)

    def keys(self) -> list[str]:
        return list(self._index)


@functools.lru_cache(maxsize=1024)
def _row_class(names: tuple[str, ...]) -> type[Row]:
    # The first of duplicate names wins, as in sqlite3.Row.
    index: dict[str, int] = {}
    for i, name in enumerate(names):
        index.setdefault(name, i)
    return type("Row", (Row,), {"__slots__": (), "_index": index})


def _row_factory(cursor: Any) -> Any:
    if cursor.description is None:
        return tuple
    return _row_class(tuple(c.name for c in cursor.description))


class PgConnection:
    """What store callers use: `execute` / `executemany` with sqlite3's parameter styles, cursors to iterate."""

    def __init__(self, raw: psycopg.Connection[Any]):
        self._raw = raw

    def execute(self, sql: str, params: Sequence[Any] | Mapping[str, Any] | None = None) -> Any:
        cur = self._raw.cursor(row_factory=_row_factory)
        if params:
            cur.execute(pg_sql(sql), params)  # type: ignore[arg-type]
        else:
            cur.execute(sql)  # type: ignore[arg-type]
        return cur

    def executemany(self, sql: str, rows: Iterable[Sequence[Any] | Mapping[str, Any]]) -> Any:
        cur = self._raw.cursor(row_factory=_row_factory)
        rows = list(rows)
        if rows:
            cur.executemany(pg_sql(sql), rows)  # type: ignore[arg-type]
        return cur


def redact(url: str) -> str:
    """The URL without its password, for logs and status."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def one_line(exc: BaseException) -> str:
    """libpq's multi-line messages as one line: its FATAL/ERROR part when there is one."""
    lines = [" ".join(line.split()) for line in str(exc).splitlines() if line.strip()]
    fatal = [line for line in lines if line.startswith(("FATAL:", "ERROR:"))]
    return (fatal[-1] if fatal else "; ".join(lines) or type(exc).__name__).replace("FATAL: ", "")


def _hint(message: str) -> str:
    if "does not exist" in message and "database" in message:
        return " (create it first: createdb, or CREATE DATABASE; README, 'Several machines')"
    if "password authentication failed" in message or "no password supplied" in message:
        return " (check the user and password in the store URL)"
    if "Connection refused" in message or "could not connect" in message or "timeout" in message:
        return " (is PostgreSQL running and listening at that host and port?)"
    return ""


class PostgresStore(Store):
    """One connection per process, serialised by a lock like the SQLite store; replicas are processes."""

    engine = "postgresql"
    for_update = " FOR UPDATE"
    # Claims read tasks as `t` joined with their assignee (an outer join, which PostgreSQL will not lock).
    skip_locked = " FOR UPDATE OF t SKIP LOCKED"

    def __init__(self, url: str):  # Store.__init__ is not called: there is no SQLite file to open
        self.url = "postgresql://" + url.split("://", 1)[1]  # libpq knows no "+psycopg" dialect suffix
        self.location = redact(self.url)
        self.path = None  # type: ignore[assignment]
        self._lock = threading.RLock()
        self._raw = self._connect()
        version = self._raw.execute("SHOW server_version").fetchone()
        self.engine_version = str(version[0]).split()[0] if version else "?"
        self.schema_version = self._migrate()

    def _connect(self) -> psycopg.Connection[Any]:
        try:
            return psycopg.connect(self.url, autocommit=True, cursor_factory=psycopg.ClientCursor,
                                   connect_timeout=10, application_name="ansf-mcp")
        except (psycopg.Error, ValueError) as exc:
            message = one_line(exc)
            raise StoreError(f"cannot open the PostgreSQL store at {self.location}: {message}{_hint(message)}"
                             ) from None

    def _ensure(self) -> psycopg.Connection[Any]:
        """The connection, opened again if the server dropped it (a PostgreSQL restart loses no board state)."""
        if self._raw.closed or self._raw.broken:
            log.warning("PostgreSQL connection lost; reconnecting to %s", self.location)
            self._raw = self._connect()
        return self._raw

    def _migrate(self) -> int:
        with self.transaction() as conn:
            # Replicas that start together queue here; the first migrates, the others find it done.
            conn.execute("SELECT pg_advisory_xact_lock(?)", (MIGRATION_LOCK,))
            exists = conn.execute("SELECT to_regclass('ansf_schema') IS NOT NULL").fetchone()[0]
            current = conn.execute("SELECT version FROM ansf_schema").fetchone()[0] if exists else 0
            if current > len(MIGRATIONS):
                raise StoreError(
                    f"the store at {self.location} has schema {current}, newer than this version knows "
                    f"({len(MIGRATIONS)}); upgrade ansf-mcp or use another database"
                )
            if not exists:
                conn.execute("CREATE TABLE ansf_schema (version INTEGER NOT NULL)")
                conn.execute("INSERT INTO ansf_schema (version) VALUES (0)")
            for version in range(current + 1, len(MIGRATIONS) + 1):
                for statement in MIGRATIONS[version - 1]:
                    conn.execute(postgres_ddl(statement))
                conn.execute("UPDATE ansf_schema SET version = ?", (version,))
                log.info("store migrated to schema %d", version)
        return len(MIGRATIONS)

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        """A write transaction: all or nothing. Database errors surface as one-line StoreErrors."""
        with self._lock:
            try:
                raw = self._ensure()
                raw.execute("BEGIN")
            except psycopg.Error as exc:
                raise StoreError(f"store unavailable: {one_line(exc)}") from exc
            try:
                yield PgConnection(raw)
            except BaseException as exc:
                self._rollback(raw)
                if isinstance(exc, psycopg.Error):
                    raise StoreError(f"store error, nothing was written: {one_line(exc)}") from exc
                raise
            else:
                try:
                    raw.execute("COMMIT")
                except psycopg.Error as exc:
                    self._rollback(raw)
                    raise StoreError(f"could not commit to the store: {one_line(exc)}") from exc

    @staticmethod
    def _rollback(raw: psycopg.Connection[Any]) -> None:
        try:
            if not raw.closed:
                raw.execute("ROLLBACK")
        except psycopg.Error:
            log.debug("rollback failed; the connection is reopened on next use", exc_info=True)

    @contextmanager
    def reading(self) -> Iterator[Any]:
        with self._lock:
            try:
                raw = self._ensure()
            except psycopg.Error as exc:
                raise StoreError(f"store unavailable: {one_line(exc)}") from exc
            try:
                yield PgConnection(raw)
            except psycopg.Error as exc:
                raise StoreError(f"store error: {one_line(exc)}") from exc

    # One channel for all news; the payload is the key. A listener thread (one LISTEN connection per process,
    # started on the first wait) turns notifications from every replica into local wake-ups.
    NEWS_CHANNEL = "ansf_news"
    news_poll_s = 5.0  # a safety net only: notifications wake waiters at once

    def notify(self, key: str) -> None:
        self._heard(key)
        with self._lock:
            try:
                self._ensure().execute("SELECT pg_notify(%s, %s)", (self.NEWS_CHANNEL, key))
            except psycopg.Error:
                log.debug("notify %s failed", key, exc_info=True)

    def news_version(self, key: str) -> int:
        self._start_listener()  # listening before the caller reads, so nothing sent after the read is missed
        return super().news_version(key)

    def wait_news(self, key: str, seen: int, timeout: float) -> int:
        self._start_listener()
        return super().wait_news(key, seen, timeout)

    def _start_listener(self) -> None:
        with self._lock:
            if getattr(self, "_listener", None) is not None or getattr(self, "_closing", False):
                return
            self._listener = threading.Thread(target=self._listen, name="ansf-pg-listen", daemon=True)
            self._listener.start()

    def _listen(self) -> None:
        while not getattr(self, "_closing", False):
            try:
                with psycopg.connect(self.url, autocommit=True, connect_timeout=10,
                                     application_name="ansf-mcp listen") as conn:
                    conn.execute(f"LISTEN {self.NEWS_CHANNEL}")
                    while not getattr(self, "_closing", False):
                        for note in conn.notifies(timeout=1.0):
                            self._heard(note.payload)
            except psycopg.Error:
                log.debug("LISTEN connection lost; reconnecting", exc_info=True)
                time.sleep(1.0)

    def close(self) -> None:
        self._closing = True  # the listener thread leaves within a second
        with self._lock:
            if not self._raw.closed:
                self._raw.close()
