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
never enforces its own time-outs), so every call ends within about `timeout_s` with one sentence. Schema
migrations are not calls: a step on a large table may take minutes, so each statement of a migration may run
`migration_timeout_s` (ANSF_MIGRATION_TIMEOUT_S), while a step waits only `migration_lock_timeout_s` for a table
another session holds (it would stall every replica's calls on that table meanwhile); either way the migration
is one transaction, so it stops with one sentence and nothing changed.
"""

from __future__ import annotations

import functools
import itertools
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
from psycopg.adapt import Transformer
from psycopg.generators import execute
from psycopg_pool import ConnectionPool, PoolClosed, PoolTimeout

from ansf_mcp.store.base import (
    DEFAULT_MIGRATION_LOCK_TIMEOUT_S,
    DEFAULT_MIGRATION_TIMEOUT_S,
    DEFAULT_TIMEOUT_S,
    Connection,
    ServerFunction,
    Store,
    StoreError,
)
from ansf_mcp.store.migrations import MIGRATIONS, postgres_ddl

log = logging.getLogger(__name__)

# How long past the server's own time-outs the watchdog waits before it decides the server is not answering.
WATCHDOG_GRACE_S = 2.0

# pg_advisory_xact_lock key for migrations (any constant; "ansf" in ASCII).
MIGRATION_LOCK = 0x616E7366
# How often a replica that starts while another migrates looks whether it is done.
MIGRATION_POLL_S = 0.25

# News go out only when a process other than the sender listens: a NOTIFY wakes every listening backend and its
# client, about a tenth of a claim's time, which one server alone would pay for nothing (its own waiters are woken
# in-process). A writer holds NEWS_LOCK shared from its look at the listeners to its commit; a new listener takes
# it exclusively once, after its LISTEN, so every writer that looked before it appeared has committed by then,
# and every writer after sees it.
LISTENER_NAME = "ansf-mcp listen"
NEWS_LOCK = MIGRATION_LOCK + 1


def news_wanted(own_listener: str) -> str:
    """SQL: whether a NOTIFY may reach anyone: false only when the caller's own LISTEN connection (`own_listener`,
    an SQL expression for its backend pid; 0 when it has none) shows in the activity view under its name and no
    other process's does on this database. Where the view shows no names (or no own listener), it is sent. One
    pass over the view, with the pid used twice."""
    return (f"NOT COALESCE((SELECT bool_or(s.pid = {own_listener}) AND NOT COALESCE(bool_or(s.pid <> {own_listener} "
            "AND s.datid = (SELECT oid FROM pg_database WHERE datname = current_database())), false) "
            f"FROM pg_stat_get_activity(NULL) s WHERE s.application_name = '{LISTENER_NAME}'), false)")


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


# What a statement of an older release meets on a schema a newer one changed under it (a column renamed or
# dropped...): the only errors worth a look at the schema's version.
_UNDEFINED = (psycopg.errors.UndefinedColumn, psycopg.errors.UndefinedTable, psycopg.errors.UndefinedFunction,
              psycopg.errors.UndefinedObject)

_TUPLES_OK = psycopg.pq.ExecStatus.TUPLES_OK
_FATAL_ERROR = psycopg.pq.ExecStatus.FATAL_ERROR

# Statements a connection prepares at most (past that, the rest are sent as text); and their names.
MAX_PREPARED = 256
_PREPARED_NAMES = itertools.count(1)
_PREPARABLE = re.compile(r"\s*(SELECT|INSERT|UPDATE|DELETE|WITH)\b", re.IGNORECASE)


@functools.lru_cache(maxsize=1024)
def _dollar_form(sql: str) -> tuple[str, tuple[str | int, ...]] | None:
    """The statement with `$n` parameters for PREPARE, and which value each n takes (a name, or a position);
    None for statements PREPARE does not take."""
    if not _PREPARABLE.match(sql):
        return None
    order: list[str | int] = []

    def sub(m: re.Match[str]) -> str:
        token = m.group(0)
        if token[0] in "'\"" or token in ("::", "%"):
            return token
        key: str | int = len(order) if token == "?" else m.group(1)
        if key not in order or token == "?":
            order.append(key)
        return f"${order.index(key) + 1}"

    return _TOKEN.sub(sub, sql), tuple(order)


def _literal(value: Any) -> str | None:
    """A parameter as an SQL literal, for the types every statement here binds (text, integers, finite floats,
    NULL); None for anything else, which psycopg's own adapters then quote. psycopg's general path costs more
    per claim than the SQL it binds (about 40 values a claim and an outcome)."""
    kind = type(value)
    if kind is bool:
        return "true" if value else "false"
    if kind is str:
        return None if "\x00" in value else "'" + value.replace("'", "''") + "'"
    if kind is int:
        return str(value)
    if kind is float:
        return repr(value) if math.isfinite(value) else None
    if value is None:
        return "NULL"
    return None


def _plain_strings(raw: psycopg.Connection[Any]) -> bool:
    """Whether a backslash in a quoted literal is an ordinary character (standard_conforming_strings, on by
    default since PostgreSQL 9.1): only then is doubling the quotes all the quoting a string needs."""
    plain = raw.__dict__.get("ansf_plain_strings")
    if plain is None:
        plain = raw.__dict__["ansf_plain_strings"] = raw.info.parameter_status("standard_conforming_strings") == "on"
    return plain


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
def _row_class(names: tuple[bytes, ...]) -> type[Row]:
    # The first of duplicate names wins, as in sqlite3.Row.
    index: dict[str, int] = {}
    for i, name in enumerate(names):
        index.setdefault(name.decode(), i)
    return type("Row", (Row,), {"__slots__": (), "_index": index})


def _row_factory(cursor: Any) -> Any:
    # Names straight from libpq's result: cursor.description builds a Column object per field, per result,
    # which costs more than the claim's SQL on the server.
    result = cursor.pgresult
    if result is None or not result.nfields:
        return tuple
    return _row_class(tuple(result.fname(i) for i in range(result.nfields)))


def _has_rows(cursor: Any) -> bool:
    result = cursor.pgresult
    return result is not None and result.status == psycopg.pq.ExecStatus.TUPLES_OK


def _simple_query(raw: psycopg.Connection[Any], query: str) -> list[list[Any]]:
    """One simple-query round trip of several statements, straight on libpq: each statement's rows (Row, by
    name and position; [] for a command). A cursor would go through its per-result machinery (row makers,
    result selection, column objects) about 30 times per claim and outcome, which cost more than the SQL."""
    trips = getattr(raw, "ansf_trips", None)
    if trips is not None:
        trips.add()
    if "\x00" in query:  # libpq would end the query there; the values' quoting refuses NUL before this
        raise psycopg.DataError("PostgreSQL text cannot contain NUL (0x00) characters")
    pgconn = raw.pgconn
    with raw.lock:
        pgconn.send_query(query.encode(raw.info.encoding))
        results = raw.wait(execute(pgconn))
    rows: list[list[Any]] = []
    loader = Transformer(raw)
    for result in results:
        if result.status == _FATAL_ERROR:
            raise psycopg.errors.error_from_result(result, encoding=raw.info.encoding)
        if result.status == _TUPLES_OK:
            loader.set_pgresult(result)
            make = _row_class(tuple(result.fname(i) for i in range(result.nfields)))
            rows.append(loader.load_rows(0, result.ntuples, make))
        else:
            rows.append([])
    return rows


def _measure_clock(raw: psycopg.Connection[Any]) -> None:
    """How far the server's clock is ahead of this machine's (seconds, within half a round trip), kept on the
    connection: server-side functions are given deadlines on the server's clock."""
    sent = time.time()
    server = raw.execute("SELECT extract(epoch FROM clock_timestamp())::float8").fetchone()[0]  # type: ignore[index]
    raw.ansf_clock_offset = server - (sent + time.time()) / 2  # type: ignore[attr-defined]


class TripCounter:
    """Round trips to the server, counted where the driver sends them (CountingCursor): what the bench reports."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.value = 0

    def add(self, n: int = 1) -> None:
        with self._lock:
            self.value += n


class CountingCursor(psycopg.ClientCursor[Any]):
    """psycopg's client-side-binding cursor that counts each request it sends (one execute of several
    statements is one simple-query round trip)."""

    def execute(self, query: Any, params: Any = None, **kwargs: Any) -> Any:  # type: ignore[override]
        trips = getattr(self.connection, "ansf_trips", None)
        if trips is not None:
            trips.add()
        return super().execute(query, params, **kwargs)

    def executemany(self, query: Any, params_seq: Any, **kwargs: Any) -> None:  # type: ignore[override]
        rows = list(params_seq)
        trips = getattr(self.connection, "ansf_trips", None)
        if trips is not None:  # pipelined where libpq can (one round trip), else one per row
            trips.add(1 if psycopg.Pipeline.is_supported() else len(rows))
        super().executemany(query, rows, **kwargs)


class Watchdog:
    """Cuts the connection of a statement that has waited longer than its deadline for any answer."""

    def __init__(self, deadline_s: float):
        self.deadline_s = deadline_s
        self._running: dict[int, tuple[float, psycopg.Connection[Any]]] = {}
        self._fired: set[int] = set()
        self._state = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="ansf-pg-watchdog", daemon=True)
        self._thread.start()

    def begin(self, raw: psycopg.Connection[Any]) -> None:
        with self._state:
            self._running[id(raw)] = (time.monotonic(), raw)
            self._fired.discard(id(raw))

    def end(self, raw: psycopg.Connection[Any]) -> None:
        with self._state:
            self._running.pop(id(raw), None)

    def fired(self, raw: psycopg.Connection[Any]) -> bool:
        with self._state:
            return id(raw) in self._fired

    def _watch(self) -> None:
        while not self._stop.wait(0.2):
            with self._state:
                now = time.monotonic()
                late = [raw for started, raw in self._running.values() if now - started > self.deadline_s]
                for raw in late:
                    self._fired.add(id(raw))
                    del self._running[id(raw)]
            for raw in late:
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
    """What store callers use: `execute` / `executemany` with sqlite3's parameter styles, cursors to iterate.

    In a transaction the BEGIN is not sent alone: it goes with the first statement (one round trip fewer)."""

    def __init__(self, raw: psycopg.Connection[Any], watchdog: Watchdog, *, begin: bool = False):
        self._raw = raw
        self._watchdog = watchdog
        self.begin_pending = begin
        self.committed = False
        self.commit_sent = False
        self.sent_news: list[str] = []

    def execute(self, sql: str, params: Sequence[Any] | Mapping[str, Any] | None = None) -> Any:
        if self.begin_pending:
            return _Rows(self.batch([(sql, params or ())])[0])
        cur = self._raw.cursor(row_factory=_row_factory)
        self._watchdog.begin(self._raw)
        try:
            if params:
                cur.execute(pg_sql(sql), params)  # type: ignore[arg-type]
            else:
                cur.execute(sql)  # type: ignore[arg-type]
        finally:
            self._watchdog.end(self._raw)
        return cur

    def executemany(self, sql: str, rows: Iterable[Sequence[Any] | Mapping[str, Any]]) -> Any:
        rows = list(rows)
        if rows and self.begin_pending:
            self.batch([])
        cur = self._raw.cursor(row_factory=_row_factory)
        if rows:
            self._watchdog.begin(self._raw)
            try:
                cur.executemany(pg_sql(sql), rows)  # type: ignore[arg-type]
            finally:
                self._watchdog.end(self._raw)
        return cur

    def batch(self, statements: Sequence[tuple[str, Sequence[Any] | Mapping[str, Any]]], *, commit: bool = False,
              notify: tuple[str, str, int] | None = None) -> list[list[Any]]:
        """The statements as one simple query (values merged client-side, as every statement here is): one
        round trip; each statement's rows, in order. Each statement is a prepared one of this connection (sent
        with its PREPARE the first time): PostgreSQL plans it once, not on every claim."""
        cur = self._raw.cursor(row_factory=_row_factory)
        parts = ["BEGIN"] if self.begin_pending else []
        prepared: dict[str, str] = self._raw.__dict__.setdefault("ansf_prepared", {})
        new: dict[str, str] = {}
        first = len(parts)
        for sql, params in statements:
            parts.append(self._prepared(cur, sql, params, prepared, new))
        if notify is not None:
            channel, key, listener = notify
            parts.append(f"SELECT pg_advisory_xact_lock_shared({NEWS_LOCK})")
            parts.append(cur.mogrify(f"SELECT pg_notify(%s, %s) WHERE {news_wanted('%s')}",
                                     (channel, key, listener, listener)))
        if commit:
            parts.append("COMMIT")
        self.commit_sent = commit
        self.begin_pending = False  # sent now: a failure below leaves a transaction to roll back
        self._watchdog.begin(self._raw)
        try:
            answers = _simple_query(self._raw, ";\n".join(parts))
        finally:
            self._watchdog.end(self._raw)
        prepared.update(new)  # only now: a batch that failed may have stopped before its PREPAREs
        self.committed = commit
        if notify is not None:
            self.sent_news.append(notify[1])
        results: list[list[Any]] = []
        at = 0
        for part in parts:
            at += part.startswith("PREPARE ")  # the PREPARE's own (empty) result
            results.append(answers[at])
            at += 1
        return results[first:first + len(statements)]

    @staticmethod
    def _prepared(cur: Any, sql: str, params: Sequence[Any] | Mapping[str, Any], prepared: dict[str, str],
                  new: dict[str, str]) -> str:
        """`EXECUTE` of the statement's prepared form, preceded by its `PREPARE` when this connection has not
        prepared it yet; the statement as it is when it cannot be prepared (DDL) or too many are."""
        form = _dollar_form(sql)
        if form is None or (sql not in prepared and len(prepared) >= MAX_PREPARED):
            return cur.mogrify(pg_sql(sql), params) if params else sql
        text, names = form
        values = [params[n] for n in names] if isinstance(params, Mapping) else list(params)  # type: ignore[index]
        head = ""
        name = prepared.get(sql) or new.get(sql)
        if name is None:
            name = new[sql] = f"ansf_{next(_PREPARED_NAMES)}"  # never reused: a failed batch's PREPARE may linger
            head = f"PREPARE {name} AS {text};\n"
        if not values:
            return head + f"EXECUTE {name}"
        literals = [_literal(v) for v in values] if _plain_strings(cur.connection) else [None]
        if None in literals:
            return head + f"EXECUTE {name}" + cur.mogrify("(" + ", ".join(["%s"] * len(values)) + ")", values)
        return head + f"EXECUTE {name}(" + ", ".join(literals) + ")"  # type: ignore[arg-type]


class _Rows:
    """Rows already read (a statement sent with the transaction's BEGIN), as a cursor offers them."""

    def __init__(self, rows: list[Any]):
        self._rows = rows
        self._at = 0

    def fetchone(self) -> Any:
        if self._at >= len(self._rows):
            return None
        self._at += 1
        return self._rows[self._at - 1]

    def fetchall(self) -> list[Any]:
        rest, self._at = self._rows[self._at:], len(self._rows)
        return rest

    def __iter__(self) -> Iterator[Any]:
        return iter(self.fetchall())


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
    """Two connection pools per process (writers, and readers that never queue behind them); replicas are
    processes."""

    engine = "postgresql"
    for_update = " FOR UPDATE"
    for_turns = " FOR NO KEY UPDATE"
    # Claims read tasks as `t` joined with their assignee (an outer join, which PostgreSQL will not lock).
    skip_locked = " FOR UPDATE OF t SKIP LOCKED"
    # One channel for all news; the payload is the key. A listener thread (one LISTEN connection per process,
    # started on the first wait) turns notifications from every replica into local wake-ups.
    NEWS_CHANNEL = "ansf_news"
    news_poll_s = 5.0  # a safety net only: notifications wake waiters at once
    hears_other_processes = True
    server_functions = True
    # Connections per process: as many writers as the board's write workers, fewer readers (reads are short).
    WRITERS = 8
    READERS = 4
    # A pooled connection idle longer than this is checked (one round trip) before use: after a PostgreSQL
    # restart the first call then gets a fresh connection instead of an error.
    CHECK_IDLE_S = 2.0

    def __init__(self, url: str, timeout_s: float = DEFAULT_TIMEOUT_S, *,
                 migration_timeout_s: float = DEFAULT_MIGRATION_TIMEOUT_S,
                 migration_lock_timeout_s: float = DEFAULT_MIGRATION_LOCK_TIMEOUT_S):
        super().__init__(timeout_s)
        self.migration_timeout_s = migration_timeout_s
        self.migration_lock_timeout_s = migration_lock_timeout_s
        self.url = "postgresql://" + url.split("://", 1)[1]  # libpq knows no "+psycopg" dialect suffix
        self.location = redact(self.url)
        self.trips = TripCounter()
        self._closing = threading.Event()
        self._listener: threading.Thread | None = None
        self._listening = threading.Event()
        self._listened = False
        self._listener_pid = 0  # the backend of this process's LISTEN connection, once it is in place
        self._local = threading.local()
        self._created: set[str] = set()  # server-side functions this process made sure exist
        # The server's own time-outs end a slow statement first; the watchdog only acts on silence.
        self._watchdog = Watchdog(timeout_s + WATCHDOG_GRACE_S)
        first = self._connect()  # a direct connection first: its refusal is the sentence the user sees
        try:
            version = first.execute("SHOW server_version").fetchone()
            self.engine_version = str(version[0]).split()[0] if version else "?"
            self.schema_version = self._migrate(first)
        finally:
            first.close()
        self._writers = self._pool("writers", self.WRITERS)
        self._readers = self._pool("readers", self.READERS)

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
            raw = psycopg.connect(self.url, autocommit=True, cursor_factory=CountingCursor, prepare_threshold=None,
                                  application_name="ansf-mcp", **self._options())
        except (psycopg.Error, ValueError) as exc:
            message = one_line(exc)
            raise StoreError(f"cannot open the PostgreSQL store at {self.location}: {message}{_hint(message)}"
                             ) from None
        _measure_clock(raw)
        raw.ansf_trips = self.trips  # type: ignore[attr-defined]
        return raw

    def _pool(self, name: str, size: int) -> ConnectionPool[Any]:
        def configure(raw: psycopg.Connection[Any]) -> None:
            _measure_clock(raw)  # before the counter: a connection's set-up is no call's round trip
            raw.ansf_trips = self.trips  # type: ignore[attr-defined]

        pool: ConnectionPool[Any] = ConnectionPool(
            self.url, min_size=1, max_size=size, name=f"ansf-{name}", open=False, timeout=self.timeout_s,
            configure=configure, check=self._check,
            # The store prepares its own statements (PgConnection.batch): psycopg's counting is only overhead.
            kwargs={"autocommit": True, "cursor_factory": CountingCursor, "prepare_threshold": None,
                    "application_name": "ansf-mcp", **self._options()},
        )
        pool.open(wait=False)
        return pool

    def _check(self, raw: psycopg.Connection[Any]) -> None:
        """Ping a connection that sat idle a while (the server may have restarted meanwhile); a busy one is
        used as it is."""
        last = getattr(raw, "ansf_used", 0.0)
        if time.monotonic() - last > self.CHECK_IDLE_S:
            ConnectionPool.check_connection(raw)

    @contextmanager
    def _taken(self, pool: ConnectionPool[Any], doing: str) -> Iterator[psycopg.Connection[Any]]:
        """A pooled connection, waited for at most `timeout_s` (the database may be down, or every connection
        busy with a call that is stuck)."""
        try:
            raw = pool.getconn(timeout=self.timeout_s)
        except PoolTimeout:
            raise StoreError(f"the PostgreSQL store at {self.location} gave no connection within {self.timeout_s:g} s "
                             f"(ANSF_STORE_TIMEOUT_S): it is down or every connection is busy, so {doing}; try again"
                             ) from None
        except PoolClosed:
            raise StoreError(f"the PostgreSQL store at {self.location} is closed, so {doing}") from None
        try:
            yield raw
        finally:
            raw.ansf_used = time.monotonic()  # type: ignore[attr-defined]
            pool.putconn(raw)

    def _error(self, exc: psycopg.Error, raw: psycopg.Connection[Any], doing: str) -> StoreError:
        """One sentence for a failed call; `doing` says what became of the work."""
        if self._watchdog.fired(raw):
            return StoreError(f"the PostgreSQL store at {self.location} did not answer within "
                              f"{self._watchdog.deadline_s:g} s (ANSF_STORE_TIMEOUT_S {self.timeout_s:g} s and "
                              f"{WATCHDOG_GRACE_S:g} s of grace), so {doing}; try again")
        if isinstance(exc, _UNDEFINED):
            found = self._schema_now(raw)
            if found is not None and found > self.schema_version:
                return self.schema_moved(found, doing)
        message = one_line(exc)
        if "statement timeout" in message or "lock timeout" in message:
            return StoreError(f"the PostgreSQL store did not finish within {self.timeout_s:g} s "
                              f"(ANSF_STORE_TIMEOUT_S), so {doing}; try again")
        return StoreError(f"store error, so {doing}: {message}")

    @staticmethod
    def _schema_now(raw: psycopg.Connection[Any]) -> int | None:
        """The schema version as the database has it now, on the failed call's own connection once it is out of
        its transaction (a transaction in error answers nothing); None when that cannot be read."""
        if raw.closed or raw.broken or raw.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            return None
        try:
            row = raw.execute("SELECT version FROM ansf_schema").fetchone()
        except psycopg.Error:
            return None
        return int(row[0]) if row else None

    def _migrate(self, raw: psycopg.Connection[Any]) -> int:
        # The call time-outs this connection was opened with would end a long step half-way (and roll the whole
        # migration back, leaving a replica that cannot start): the steps run under bounds of their own, for this
        # transaction only, with a watchdog that waits as long. Everything else keeps the call's bounds, so a
        # database gone silent is still noticed after the call time-out.
        steps_watchdog = Watchdog(self.migration_timeout_s + WATCHDOG_GRACE_S if self.migration_timeout_s
                                  else math.inf)
        conn = PgConnection(raw, self._watchdog)
        steps = PgConnection(raw, steps_watchdog)
        current: int | None = None
        step: tuple[int, str] | None = None  # the version and statement being applied
        try:
            conn.execute("BEGIN")
            # Replicas that start together queue here; the first migrates, the others find it done. Polled, not
            # waited for in one statement: the wait may be as long as another replica's migration, and a silent
            # database must not look like one.
            give_up = time.monotonic() + (self.migration_timeout_s or math.inf)
            while not conn.execute("SELECT pg_try_advisory_xact_lock(?)", (MIGRATION_LOCK,)).fetchone()[0]:
                if time.monotonic() >= give_up:
                    raise StoreError(f"another server has been migrating the schema of the PostgreSQL store at "
                                     f"{self.location} for over {self.migration_timeout_s:g} s "
                                     "(ANSF_MIGRATION_TIMEOUT_S), so this one did not start; let that migration "
                                     "finish and start again")
                time.sleep(MIGRATION_POLL_S)
            exists = conn.execute("SELECT to_regclass('ansf_schema') IS NOT NULL").fetchone()[0]
            current = conn.execute("SELECT version FROM ansf_schema").fetchone()[0] if exists else 0
            if current > len(MIGRATIONS):
                raise StoreError(
                    f"the store at {self.location} has schema {current}, newer than this version knows "
                    f"({len(MIGRATIONS)}); upgrade ansf-mcp or use another database"
                )
            if current < len(MIGRATIONS):
                conn.execute(f"SET LOCAL statement_timeout = {int(self.migration_timeout_s * 1000)}")  # 0: none
                conn.execute(f"SET LOCAL lock_timeout = {max(1, int(self.migration_lock_timeout_s * 1000))}")
            if not exists:
                conn.execute("CREATE TABLE ansf_schema (version INTEGER NOT NULL)")
                conn.execute("INSERT INTO ansf_schema (version) VALUES (0)")
            for version in range(current + 1, len(MIGRATIONS) + 1):
                for statement in MIGRATIONS[version - 1]:
                    step = (version, statement)
                    steps.execute(postgres_ddl(statement))
                step = None
                conn.execute("UPDATE ansf_schema SET version = ?", (version,))
                log.info("store migrated to schema %d", version)
            conn.execute("COMMIT")
        except psycopg.Error as exc:
            self._rollback(raw)
            if self._watchdog.fired(raw):
                raise self._error(exc, raw, "the schema was not changed") from exc
            raise self._migration_error(exc, raw, steps_watchdog, current, step) from exc
        except BaseException:
            self._rollback(raw)
            raise
        finally:
            steps_watchdog.stop()
        return len(MIGRATIONS)

    def _migration_error(self, exc: psycopg.Error, raw: psycopg.Connection[Any], watchdog: Watchdog,
                         current: int | None, step: tuple[int, str] | None) -> StoreError:
        """A failed migration step in one sentence: what it waited for or ran into, and what to do."""
        message = one_line(exc)
        where = f"the PostgreSQL store at {self.location}"
        if step is None:
            return StoreError(f"could not migrate the schema of {where}, so nothing was changed: {message}")
        version, statement = step
        shown = " ".join(statement.split())
        shown = shown if len(shown) <= 60 else shown[:57] + "..."
        kept = f"nothing was changed (the schema stays at {current}, this server needs {len(MIGRATIONS)})"
        if watchdog.fired(raw):
            return StoreError(f"{where} gave no answer for {watchdog.deadline_s:g} s during the migration to schema "
                              f"{version} (ANSF_MIGRATION_TIMEOUT_S and {WATCHDOG_GRACE_S:g} s of grace), so "
                              f"{kept}; check that the database is up and start again")
        if isinstance(exc, psycopg.errors.LockNotAvailable):
            return StoreError(f"the migration of {where} to schema {version} waited "
                              f"{self.migration_lock_timeout_s:g} s (ANSF_MIGRATION_LOCK_TIMEOUT_S) for a table held "
                              f"by {self._holders(raw, statement)} ({shown}), so {kept}; end or wait for that "
                              "transaction, then start this server again")
        if isinstance(exc, psycopg.errors.QueryCanceled) and "statement timeout" in message:
            return StoreError(f"the migration of {where} to schema {version} ran past {self.migration_timeout_s:g} s "
                              f"(ANSF_MIGRATION_TIMEOUT_S) on {shown}, so {kept}; raise ANSF_MIGRATION_TIMEOUT_S "
                              "(0: no limit) and start again")
        return StoreError(f"the migration of {where} to schema {version} failed on {shown}: {message}, so {kept}")

    @staticmethod
    def _holders(raw: psycopg.Connection[Any], statement: str) -> str:
        """Who holds the tables a migration statement names (its indexes' tables too), as the user can find
        them in pg_stat_activity; read after the migration gave up, so the holder is usually still there."""
        names = sorted(set(re.findall(r"[A-Za-z_]\w*", statement)))
        try:
            rows = raw.execute(
                "SELECT DISTINCT a.pid, coalesce(nullif(a.application_name, ''), 'no name'), coalesce(a.state, '?'), "
                "extract(epoch FROM now() - a.xact_start)::int, c.relname, a.xact_start "
                "FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid JOIN pg_class c ON c.oid = l.relation "
                "WHERE l.granted AND l.pid <> pg_backend_pid() AND l.database = "
                "(SELECT oid FROM pg_database WHERE datname = current_database()) "
                "AND l.relation IN (SELECT to_regclass(w) FROM unnest(%s::text[]) w "
                "UNION SELECT i.indrelid FROM pg_index i "
                "WHERE i.indexrelid IN (SELECT to_regclass(w) FROM unnest(%s::text[]) w)) "
                "ORDER BY a.xact_start LIMIT 3", (names, names)).fetchall()
        except psycopg.Error:
            rows = []
        if not rows:
            return "another session"
        return "; ".join(f"session pid {pid} ('{app}', {state}, in a transaction for {age} s, holding {table})"
                         for pid, app, state, age, table, _ in rows)

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """A write transaction: all or nothing. Database errors surface as one-line StoreErrors."""
        self._local.sent = []
        with self._taken(self._writers, "nothing was written") as raw:
            conn = PgConnection(raw, self._watchdog, begin=True)
            self._local.conn = conn
            try:
                yield conn
            except BaseException as exc:
                if not conn.begin_pending and not conn.committed:
                    self._rollback(raw)
                if isinstance(exc, psycopg.Error):
                    # A batch that carried the COMMIT and lost its connection may have been committed.
                    doing = ("it is not known whether the change was written" if conn.commit_sent and raw.broken
                             else "nothing was written")
                    raise self._error(exc, raw, doing) from exc
                raise
            else:
                if not conn.begin_pending and not conn.committed:
                    try:
                        conn.execute("COMMIT")
                    except psycopg.Error as exc:
                        self._rollback(raw)
                        raise self._error(exc, raw, "it is not known whether the change was written") from exc
            finally:
                self._local.conn = None
                self._local.sent = conn.sent_news

    @staticmethod
    def _rollback(raw: psycopg.Connection[Any]) -> None:
        try:
            if not raw.closed and not raw.broken:
                raw.execute("ROLLBACK")
        except psycopg.Error:
            log.debug("rollback failed; the pool replaces the connection", exc_info=True)

    def batch(self, conn: Connection, statements: Sequence[tuple[str, Sequence[Any] | Mapping[str, Any]]], *,
              commit: bool = False, notify: str | None = None) -> list[list[Any]]:
        assert isinstance(conn, PgConnection)
        return conn.batch(statements, commit=commit,
                          notify=(self.NEWS_CHANNEL, notify, self._listener_pid) if notify is not None and commit
                          else None)

    def call(self, conn: Connection, function: ServerFunction, values: Mapping[str, Any], *, news: str
             ) -> dict[str, Any]:
        """The function's call, its BEGIN and COMMIT in one round trip; created in the same round trip the first
        time this process calls it (under the migration lock: two CREATE OR REPLACE of one function at once
        fail, and replicas start together)."""
        assert isinstance(conn, PgConnection)
        statements: list[tuple[str, Sequence[Any]]] = []
        if function.name not in self._created:
            statements += [("SELECT pg_advisory_xact_lock(?)", (MIGRATION_LOCK,)), (function.create, ())]
        marks = ", ".join(["?"] * (len(function.args) + 4))
        # When this call stops waiting (the statement time-out), on the server's clock: a call that arrives
        # later (a server that hung, then resumed with it still in its socket buffer) writes nothing.
        deadline = time.time() + conn._raw.ansf_clock_offset + self.timeout_s  # type: ignore[attr-defined]
        statements.append((f"SELECT {function.name}({marks})", (*[values[name] for name in function.args],
                                                                self.NEWS_CHANNEL, news, self._listener_pid, deadline)))
        answer: dict[str, Any] = conn.batch(statements, commit=True)[-1][0][0]
        self._created.add(function.name)
        if answer.get("notified"):
            conn.sent_news.append(news)
        return answer

    @contextmanager
    def reading(self) -> Iterator[Connection]:
        mine = getattr(self._local, "conn", None)
        if mine is not None:
            yield mine  # inside this thread's own transaction: read what it wrote
            return
        with self._taken(self._readers, "nothing could be read") as raw:
            try:
                yield PgConnection(raw, self._watchdog)
            except psycopg.Error as exc:
                raise self._error(exc, raw, "nothing could be read") from exc

    def notify(self, key: str) -> None:
        """In this process at once; on every other replica through LISTEN/NOTIFY (already sent when this
        thread's last transaction carried it in its commit)."""
        self._heard(key)
        sent = getattr(self._local, "sent", [])
        if key in sent:
            sent.remove(key)
            return
        try:
            with self._taken(self._writers, "nothing was sent") as raw:
                # The batch's own NOTIFY alone: one simple query, one implicit transaction that holds the lock.
                PgConnection(raw, self._watchdog).batch([], notify=(self.NEWS_CHANNEL, key, self._listener_pid))
        except (psycopg.Error, StoreError):
            log.debug("notify %s failed", key, exc_info=True)

    def news_version(self, key: str) -> int:
        self._start_listener()  # listening before the caller reads, so nothing sent after the read is missed
        return super().news_version(key)

    def wait_news(self, key: str, seen: int, timeout: float) -> int:
        self._start_listener()
        return super().wait_news(key, seen, timeout)

    def any_news_version(self) -> int:
        self._start_listener()
        return super().any_news_version()

    def listening(self, timeout: float) -> bool:
        """Whether this process's LISTEN is in place (waited for up to `timeout`): news sent after that reach it."""
        self._start_listener()
        return self._listening.wait(timeout)

    def _start_listener(self) -> None:
        with self._news:
            if self._listener is not None or self._closing.is_set():
                return
            self._listener = threading.Thread(target=self._listen, name="ansf-pg-listen", daemon=True)
            self._listener.start()

    def _listen(self) -> None:
        while not self._closing.is_set():
            try:
                with psycopg.connect(self.url, autocommit=True, application_name=LISTENER_NAME,
                                     **self._options()) as conn:
                    conn.execute(f"LISTEN {self.NEWS_CHANNEL}")
                    with conn.transaction():  # writers that looked before this connection appeared are done
                        conn.execute("SELECT pg_advisory_xact_lock(%s)", (NEWS_LOCK,))
                    self._listener_pid = conn.info.backend_pid
                    if self._listened:  # news sent while the connection was down are lost: every waiter re-reads
                        for key in list(self._versions) or ["(reconnected)"]:
                            self._heard(key)
                    self._listened = True
                    self._listening.set()
                    while not self._closing.is_set():
                        for note in conn.notifies(timeout=1.0):
                            self._heard(note.payload)
            except psycopg.Error:
                self._listening.clear()
                self._listener_pid = 0
                log.debug("LISTEN connection lost; reconnecting", exc_info=True)
                self._closing.wait(1.0)

    def close(self) -> None:
        self._closing.set()  # the listener thread leaves within a second
        self._watchdog.stop()
        for pool in (self._writers, self._readers):
            pool.close(timeout=self.timeout_s)  # a call stuck on a connection is cut loose after that
