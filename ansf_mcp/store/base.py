"""What every store engine offers its callers: transactions, reads, news between waiters, and what it is.

SQLite (`store/sqlite.py`) and PostgreSQL (`store/postgres.py`) are siblings under this interface; nothing
outside `store/` asks which engine it holds, except through the two SQL clauses below. Every call that can wait
on a lock or a database has a time-out (`timeout_s`) and fails with a one-sentence `StoreError` when it runs out.
"""

from __future__ import annotations

import os
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from pydantic import BaseModel

# A store call waits at most this long for a lock or an unresponsive database (ANSF_STORE_TIMEOUT_S).
DEFAULT_TIMEOUT_S = 10.0
# Schema migrations on PostgreSQL run outside the call time-out: a step on a large table of a live database may
# take minutes, and a step killed half-way leaves a replica that cannot start (ANSF_MIGRATION_TIMEOUT_S; 0: none).
DEFAULT_MIGRATION_TIMEOUT_S = 3600.0
# How long a migration step waits for a table another session holds (ANSF_MIGRATION_LOCK_TIMEOUT_S). Short, and
# below the call time-out: while a step waits in a table's lock queue, every other replica's call on that table
# queues behind it.
DEFAULT_MIGRATION_LOCK_TIMEOUT_S = 5.0


class StoreError(RuntimeError):
    """The store cannot be opened or written (bad path or URL, refused password, full disk, newer schema, a lock
    held too long, a database that does not answer...)."""


class Row(Protocol):
    """A result row: by column name and by position (sqlite3.Row, or the PostgreSQL store's Row)."""

    def __getitem__(self, key: str | int) -> Any: ...

    def keys(self) -> list[str]: ...


class Connection(Protocol):
    """What callers run SQL on, with sqlite3's parameter styles (`?` and `:name`) on both engines."""

    def execute(self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ..., /) -> Any: ...

    def executemany(self, sql: str, rows: Iterable[Sequence[Any] | Mapping[str, Any]], /) -> Any: ...


class StoreInfo(BaseModel):
    """What `ansf status` and `system_status` say about the store."""

    engine: str
    engine_version: str | None = None
    location: str
    schema_version: int | None = None
    exists: bool | None = True  # None: not known (the store could not be reached)
    swarms: int | None = None
    tasks: int | None = None
    outcomes: int | None = None
    error: str | None = None


@dataclass(frozen=True)
class ServerFunction:
    """A function the database runs (PL/pgSQL on PostgreSQL): the statement that creates it, and its arguments
    in order (their values come by name); then the store's own: a NOTIFY channel and payload, the backend pid of
    the caller's own LISTEN connection (0 when none: the NOTIFY goes out only where another process listens), and
    a deadline (epoch seconds on the database's clock) past which it must write nothing. It answers one JSON
    object that says `"notified": true` when it sent that NOTIFY to whoever else listens."""

    name: str
    create: str
    args: tuple[str, ...]


class Store(ABC):
    engine: ClassVar[str]
    # Row locks appended to a SELECT inside a transaction: the row read is the row written (`for_update`), and a
    # claim passes over tasks another replica is claiming right now (`skip_locked`; the tasks are aliased `t`).
    for_update: ClassVar[str] = ""
    skip_locked: ClassVar[str] = ""
    # A lock on a parent row (a swarm) that writers of its children take turns on, while rows that only refer to it
    # are still written (`FOR NO KEY UPDATE` does not conflict with the key-share lock a foreign key check takes).
    for_turns: ClassVar[str] = ""
    # A waiter in another process re-reads at least this often (the engine may wake it sooner).
    news_poll_s: ClassVar[float] = 0.25
    # Whether news from other processes (other replicas) arrive here as they happen, or only changes made in this
    # process (SQLite: other processes' changes are seen by re-reading).
    hears_other_processes: ClassVar[bool] = False
    # Whether `call` runs server-side functions (PostgreSQL): a whole claim or outcome in one round trip.
    server_functions: ClassVar[bool] = False

    location: str
    engine_version: str
    schema_version: int

    def __init__(self, timeout_s: float = DEFAULT_TIMEOUT_S):
        self.timeout_s = timeout_s
        self._news = threading.Condition()
        self._versions: dict[str, int] = {}
        self._any = 0  # news under any key, for watchers of everything (the dashboard)
        self.waits_ended = False  # end_waits() was called: every wait for news returns at once from now on

    @abstractmethod
    def transaction(self) -> AbstractContextManager[Connection]:
        """A write transaction: all or nothing."""

    @abstractmethod
    def reading(self) -> AbstractContextManager[Connection]:
        """A connection for reads; never waits behind a writer that waits for a lock."""

    @abstractmethod
    def close(self) -> None: ...

    def batch(self, conn: Connection, statements: Sequence[tuple[str, Sequence[Any] | Mapping[str, Any]]], *,
              commit: bool = False, notify: str | None = None) -> list[list[Any]]:
        """Run `statements` in order inside the caller's transaction and return each one's rows. SQLite runs them
        one by one (a call into the library); PostgreSQL sends them in one round trip, with the transaction's
        BEGIN when it is the first, and with its COMMIT and a NOTIFY of `notify` when `commit` says this is the
        transaction's last batch (nothing may be written after it). A statement that fails ends the batch and
        the transaction rolls back, as if each had been executed alone."""
        return [conn.execute(sql, params).fetchall() for sql, params in statements]

    def call(self, conn: Connection, function: ServerFunction, values: Mapping[str, Any], *, news: str
             ) -> dict[str, Any]:
        """Run `function` as the caller's whole transaction, committed with it (create it first if this process
        has not); its JSON answer. `news` is what it NOTIFYs if it changes the board. Only where
        `server_functions` says so."""
        raise NotImplementedError(f"the {self.engine} store runs no server-side functions")

    # -- news: "something changed under this key" (a swarm's messages...), for callers that wait for it ---------

    def news_version(self, key: str) -> int:
        with self._news:
            return self._versions.get(key, 0)

    def _heard(self, key: str) -> None:
        with self._news:
            self._versions[key] = self._versions.get(key, 0) + 1
            self._any += 1
            self._news.notify_all()

    def listening(self, timeout: float) -> bool:
        """Whether news sent from now on reach this process (waited for up to `timeout` where the engine listens
        on a connection of its own)."""
        return True

    def any_news_version(self) -> int:
        """How many news under any key this process has heard so far."""
        with self._news:
            return self._any

    def wait_any_news(self, seen: int, timeout: float) -> int:
        """Block until news under any key passes `seen`, or `timeout`; the count now."""
        with self._news:
            self._news.wait_for(lambda: self._any > seen, timeout=timeout)
            return self._any

    def notify(self, key: str) -> None:
        """Tell waiters that `key` changed: in this process at once; other processes as the engine allows."""
        self._heard(key)

    def wait_news(self, key: str, seen: int, timeout: float) -> int:
        """Block until `key`'s version passes `seen` or `timeout` (at most `news_poll_s`) runs out; the version
        now. Callers re-read the store either way."""
        with self._news:
            self._news.wait_for(lambda: self.waits_ended or self._versions.get(key, 0) > seen,
                                timeout=min(timeout, self.news_poll_s))
            return self._versions.get(key, 0)

    def end_waits(self) -> None:
        """Wake every wait for news now and let none start: the process is finishing (a stdio client closed its
        input), and a long-poll held to its full `wait_s` would keep it alive for nobody."""
        with self._news:
            self.waits_ended = True
            self._news.notify_all()

    # -- what components of this process report, for watchers in other processes ---------------------------

    def put_component_status(self, name: str, status: str) -> None:
        """Upsert one component's status (JSON text) with this process's id and the time."""
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO component_status (name, pid, status, updated_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (name) DO UPDATE SET pid = excluded.pid, status = excluded.status, "
                "updated_at = excluded.updated_at",
                (name, os.getpid(), status, time.time()),
            )

    # -- a schema newer than this server's, met while it runs ---------------------------------------------------

    def schema_moved(self, found: int, doing: str) -> StoreError:
        """A newer release sharing the store migrated it while this server ran, and a statement of this one no
        longer fits: said as what to do, not as the database's "no such column". Additive migrations never get
        here (this server's statements still fit); a replica of the older release refuses to start from now on."""
        return StoreError(f"the store's schema is now {found}, newer than this server's {self.schema_version}: a "
                          f"newer ansf-mcp sharing it migrated it while this server ran, so {doing}; upgrade this "
                          "server and restart it")

    # -- what it is ------------------------------------------------------------------------------------------

    def describe(self) -> StoreInfo:
        """The engine, where it is, its schema, and how much it holds."""
        info = StoreInfo(engine=self.engine, engine_version=self.engine_version, location=self.location,
                         schema_version=self.schema_version)
        try:
            with self.reading() as conn:
                info.swarms, info.tasks, info.outcomes = (
                    conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
                    for table in ("swarms", "tasks", "outcomes")
                )
        except StoreError as exc:
            info.error = str(exc)
        return info
