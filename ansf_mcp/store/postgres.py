"""The PostgreSQL store: the same board for any number of server replicas, on one or several machines.

Callers write one SQL for both engines, with sqlite3's parameter styles; `pg_sql` rewrites them for psycopg's
client-side binding (ClientCursor: values are merged into the statement as literals, so PostgreSQL never has to
guess a parameter's type the way SQLite never does). Rows answer by name and by position, like sqlite3.Row.

Concurrency: each transaction runs at READ COMMITTED; rows a writer must not share are locked with the store's
`for_update` / `skip_locked` clauses (claims skip rows another replica is claiming right now). Schema changes
take an advisory lock so replicas that start together migrate once.

Time-outs: the server ends a statement, a lock wait or an idle transaction that runs past `timeout_s`
(statement_timeout, lock_timeout, idle_in_transaction_session_timeout), TCP keepalives notice a peer that is
gone, and a watchdog thread cuts the connection of a call that gets no answer at all (a database that hangs
never enforces its own time-outs), so every call ends within about `timeout_s` with one sentence.
"""

from __future__ import annotations

import functools
import logging
import math
import re
import socket
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, ClassVar
from urllib.parse import urlsplit, urlunsplit

import psycopg

from ansf_mcp.store.base import DEFAULT_TIMEOUT_S, Connection, Store, StoreError
from ansf_mcp.store.migrations import MIGRATIONS, postgres_ddl

log = logging.getLogger(__name__)

# How long past the server's own time-outs the watchdog waits before it decides the server is not answering.
WATCHDOG_GRACE_S = 2.0

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


class Watchdog:
    """Cuts the connection of a statement that has waited longer than its deadline for any answer."""

    def __init__(self, deadline_s: float):
        self.deadline_s = deadline_s
        self._started: float | None = None
        self._raw: psycopg.Connection[Any] | None = None
        self.fired = False
        self._state = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="ansf-pg-watchdog", daemon=True)
        self._thread.start()

    def begin(self, raw: psycopg.Connection[Any]) -> None:
        with self._state:
            self._started, self._raw, self.fired = time.monotonic(), raw, False

    def end(self) -> None:
        with self._state:
            self._started, self._raw = None, None

    def _watch(self) -> None:
        while not self._stop.wait(0.2):
            with self._state:
                late = self._started is not None and time.monotonic() - self._started > self.deadline_s
                raw = self._raw if late else None
                if raw is not None:
                    self.fired, self._started = True, None
            if raw is not None:
                log.warning("PostgreSQL gave no answer in %.0f s; cutting the connection", self.deadline_s)
                cut(raw)

    def stop(self) -> None:
        self._stop.set()


def cut(raw: psycopg.Connection[Any]) -> None:
    """Shut the connection's socket down under libpq: the call blocked on it returns with an error at once."""
    try:
        sock = socket.socket(fileno=raw.fileno())  # a view on libpq's descriptor, detached below
    except (OSError, psycopg.Error):
        return
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    finally:
        sock.detach()


class PgConnection:
    """What store callers use: `execute` / `executemany` with sqlite3's parameter styles, cursors to iterate."""

    def __init__(self, raw: psycopg.Connection[Any], watchdog: Watchdog):
        self._raw = raw
        self._watchdog = watchdog

    def execute(self, sql: str, params: Sequence[Any] | Mapping[str, Any] | None = None) -> Any:
        cur = self._raw.cursor(row_factory=_row_factory)
        self._watchdog.begin(self._raw)
        try:
            if params:
                cur.execute(pg_sql(sql), params)  # type: ignore[arg-type]
            else:
                cur.execute(sql)  # type: ignore[arg-type]
        finally:
            self._watchdog.end()
        return cur

    def executemany(self, sql: str, rows: Iterable[Sequence[Any] | Mapping[str, Any]]) -> Any:
        cur = self._raw.cursor(row_factory=_row_factory)
        rows = list(rows)
        if rows:
            self._watchdog.begin(self._raw)
            try:
                cur.executemany(pg_sql(sql), rows)  # type: ignore[arg-type]
            finally:
                self._watchdog.end()
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
    """One connection per process, serialised by a lock; replicas are processes."""

    engine = "postgresql"
    for_update = " FOR UPDATE"
    # Claims read tasks as `t` joined with their assignee (an outer join, which PostgreSQL will not lock).
    skip_locked = " FOR UPDATE OF t SKIP LOCKED"
    # One channel for all news; the payload is the key. A listener thread (one LISTEN connection per process,
    # started on the first wait) turns notifications from every replica into local wake-ups.
    NEWS_CHANNEL = "ansf_news"
    news_poll_s = 5.0  # a safety net only: notifications wake waiters at once

    def __init__(self, url: str, timeout_s: float = DEFAULT_TIMEOUT_S):
        super().__init__(timeout_s)
        self.url = "postgresql://" + url.split("://", 1)[1]  # libpq knows no "+psycopg" dialect suffix
        self.location = redact(self.url)
        self._lock = threading.RLock()
        self._closing = threading.Event()
        self._listener: threading.Thread | None = None
        # The server's own time-outs end a slow statement first; the watchdog only acts on silence.
        self._watchdog = Watchdog(timeout_s + WATCHDOG_GRACE_S)
        self._raw = self._connect()
        version = self._raw.execute("SHOW server_version").fetchone()
        self.engine_version = str(version[0]).split()[0] if version else "?"
        self.schema_version = self._migrate()

    def _options(self) -> dict[str, Any]:
        ms = int(self.timeout_s * 1000)
        return {
            "connect_timeout": max(2, math.ceil(self.timeout_s)),
            "keepalives": 1, "keepalives_idle": 10, "keepalives_interval": 5, "keepalives_count": 3,
            "options": f"-c statement_timeout={ms} -c lock_timeout={ms} "
                       f"-c idle_in_transaction_session_timeout={max(ms * 3, 30_000)}",
        }

    def _connect(self) -> psycopg.Connection[Any]:
        try:
            return psycopg.connect(self.url, autocommit=True, cursor_factory=psycopg.ClientCursor,
                                   application_name="ansf-mcp", **self._options())
        except (psycopg.Error, ValueError) as exc:
            message = one_line(exc)
            raise StoreError(f"cannot open the PostgreSQL store at {self.location}: {message}{_hint(message)}"
                             ) from None

    def _ensure(self) -> psycopg.Connection[Any]:
        """The connection, opened again if the server dropped it (a PostgreSQL restart loses no board state)."""
        if self._raw.closed or self._raw.broken:
            log.warning("PostgreSQL connection lost; reconnecting to %s", self.location)
            self._raw.close()
            self._raw = self._connect()
        return self._raw

    def _error(self, exc: psycopg.Error, doing: str) -> StoreError:
        """One sentence for a failed call; `doing` says what became of the work."""
        if self._watchdog.fired:
            return StoreError(f"the PostgreSQL store at {self.location} did not answer within "
                              f"{self._watchdog.deadline_s:g} s (ANSF_STORE_TIMEOUT_S {self.timeout_s:g} s and "
                              f"{WATCHDOG_GRACE_S:g} s of grace), so {doing}; try again")
        message = one_line(exc)
        if "statement timeout" in message or "lock timeout" in message:
            return StoreError(f"the PostgreSQL store did not finish within {self.timeout_s:g} s "
                              f"(ANSF_STORE_TIMEOUT_S), so {doing}; try again")
        return StoreError(f"store error, so {doing}: {message}")

    @contextmanager
    def _held(self) -> Iterator[None]:
        """This process's connection, waited for at most `timeout_s` (a call ahead may be stuck)."""
        if not self._lock.acquire(timeout=self.timeout_s):
            raise StoreError(f"the PostgreSQL store at {self.location} is busy: an earlier call has not finished "
                             f"in {self.timeout_s:g} s (ANSF_STORE_TIMEOUT_S); try again")
        try:
            yield
        finally:
            self._lock.release()

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
    def transaction(self) -> Iterator[Connection]:
        """A write transaction: all or nothing. Database errors surface as one-line StoreErrors."""
        with self._held():
            try:
                raw = self._ensure()
                conn = PgConnection(raw, self._watchdog)
                conn.execute("BEGIN")
            except psycopg.Error as exc:
                raise self._error(exc, "nothing was written") from exc
            try:
                yield conn
            except BaseException as exc:
                self._rollback(raw)
                if isinstance(exc, psycopg.Error):
                    raise self._error(exc, "nothing was written") from exc
                raise
            else:
                try:
                    conn.execute("COMMIT")
                except psycopg.Error as exc:
                    self._rollback(raw)
                    raise self._error(exc, "it is not known whether the change was written") from exc

    @staticmethod
    def _rollback(raw: psycopg.Connection[Any]) -> None:
        try:
            if not raw.closed and not raw.broken:
                raw.execute("ROLLBACK")
        except psycopg.Error:
            log.debug("rollback failed; the connection is reopened on next use", exc_info=True)

    @contextmanager
    def reading(self) -> Iterator[Connection]:
        with self._held():
            try:
                raw = self._ensure()
            except psycopg.Error as exc:
                raise self._error(exc, "nothing could be read") from exc
            except StoreError:
                raise
            try:
                yield PgConnection(raw, self._watchdog)
            except psycopg.Error as exc:
                raise self._error(exc, "nothing could be read") from exc

    def notify(self, key: str) -> None:
        """In this process at once; on every other replica through LISTEN/NOTIFY."""
        self._heard(key)
        try:
            with self._held():
                PgConnection(self._ensure(), self._watchdog).execute(
                    "SELECT pg_notify(?, ?)", (self.NEWS_CHANNEL, key))
        except (psycopg.Error, StoreError):
            log.debug("notify %s failed", key, exc_info=True)

    def news_version(self, key: str) -> int:
        self._start_listener()  # listening before the caller reads, so nothing sent after the read is missed
        return super().news_version(key)

    def wait_news(self, key: str, seen: int, timeout: float) -> int:
        self._start_listener()
        return super().wait_news(key, seen, timeout)

    def _start_listener(self) -> None:
        with self._news:
            if self._listener is not None or self._closing.is_set():
                return
            self._listener = threading.Thread(target=self._listen, name="ansf-pg-listen", daemon=True)
            self._listener.start()

    def _listen(self) -> None:
        while not self._closing.is_set():
            try:
                with psycopg.connect(self.url, autocommit=True, application_name="ansf-mcp listen",
                                     **self._options()) as conn:
                    conn.execute(f"LISTEN {self.NEWS_CHANNEL}")
                    while not self._closing.is_set():
                        for note in conn.notifies(timeout=1.0):
                            self._heard(note.payload)
            except psycopg.Error:
                log.debug("LISTEN connection lost; reconnecting", exc_info=True)
                self._closing.wait(1.0)

    def close(self) -> None:
        self._closing.set()  # the listener thread leaves within a second
        self._watchdog.stop()
        if self._lock.acquire(timeout=self.timeout_s):
            try:
                self._raw.close()
            finally:
                self._lock.release()
        else:  # a call is stuck on it: cut it loose
            cut(self._raw)
