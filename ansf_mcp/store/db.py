"""Opening a store: which engine a `--store` value names, where its SQLite file lives, and how it is shown.

The only place that tells the engines apart by their names; callers hold a `Store` (store/base.py) and write
one SQL for both engines (named `:x` or positional `?` parameters, no engine-only functions); the few places
where the engines must differ ask the store (`for_update`, `skip_locked`).
"""

from __future__ import annotations

from pathlib import Path

from ansf_mcp.store.base import (
    DEFAULT_MIGRATION_LOCK_TIMEOUT_S,
    DEFAULT_MIGRATION_TIMEOUT_S,
    DEFAULT_TIMEOUT_S,
    Connection,
    Row,
    Store,
    StoreError,
    StoreInfo,
)

__all__ = ["DEFAULT_MIGRATION_LOCK_TIMEOUT_S", "DEFAULT_MIGRATION_TIMEOUT_S", "DEFAULT_TIMEOUT_S", "Connection", "Row", "Store", "StoreError", "StoreInfo", "check_spec", "label",
           "open_store", "peek", "resolve", "sqlite_path"]

POSTGRES_SCHEMES = ("postgresql://", "postgres://", "postgresql+psycopg://")
SQLITE_NAME = "ansf.sqlite3"


def _is_url(spec: str | Path | None) -> bool:
    return isinstance(spec, str) and spec.lower().startswith(POSTGRES_SCHEMES)


def check_spec(value: str | None) -> str | None:
    """A `--store` value as given, or None for the default; a URL of another kind is refused in one sentence."""
    if value is None or not value.strip():
        return None
    if _is_url(value) or "://" not in value:
        return value.strip()
    raise ValueError(f"store {value.split('://')[0]}://... is neither a path nor a postgresql:// URL")


def sqlite_path(store: str | None, data_dir: Path) -> Path:
    """The SQLite file: the data directory's unless `store` names another (unused on PostgreSQL)."""
    if store and not _is_url(store):
        return Path(store).expanduser().resolve()
    return data_dir / SQLITE_NAME


def resolve(store: str | None, data_dir: Path) -> str | Path:
    """What `open_store` opens: the PostgreSQL URL, or the SQLite path."""
    return store if store and _is_url(store) else sqlite_path(store, data_dir)


def label(spec: str | Path) -> str:
    """The store for logs and status: the SQLite path, or the URL without its password."""
    if isinstance(spec, Path):
        return str(spec)
    from ansf_mcp.store.postgres import redact

    return redact(spec)


def open_store(spec: str | Path, timeout_s: float = DEFAULT_TIMEOUT_S, *,
               migration_timeout_s: float = DEFAULT_MIGRATION_TIMEOUT_S,
               migration_lock_timeout_s: float = DEFAULT_MIGRATION_LOCK_TIMEOUT_S) -> Store:
    """A `postgresql://` URL opens PostgreSQL; anything else is the path of a SQLite database. The migration
    bounds are PostgreSQL's (SQLite has no statement time-out; its migrations wait `timeout_s` for the file)."""
    if _is_url(spec):
        from ansf_mcp.store.postgres import PostgresStore  # psycopg is imported only when asked for

        return PostgresStore(str(spec), timeout_s, migration_timeout_s=migration_timeout_s,
                             migration_lock_timeout_s=migration_lock_timeout_s)
    from ansf_mcp.store.sqlite import SqliteStore

    return SqliteStore(Path(spec), timeout_s)


def peek(spec: str | Path, timeout_s: float = DEFAULT_TIMEOUT_S, **migration_bounds: float) -> StoreInfo:
    """What a store holds, for `ansf status` without a server; a SQLite file not there yet is not created."""
    if isinstance(spec, Path) and not spec.exists():
        return StoreInfo(engine="sqlite", location=str(spec), exists=False)
    engine = "postgresql" if _is_url(spec) else "sqlite"
    try:
        store = open_store(spec, timeout_s, **migration_bounds)
    except StoreError as exc:
        return StoreInfo(engine=engine, location=label(spec), exists=None, error=str(exc))
    try:
        return store.describe()
    finally:
        store.close()
