"""Settings: one pydantic model, filled from defaults, then environment variables, then CLI flags."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator

from ansf_mcp.semantic.defaults import (
    SEMANTIC_DEADLINE_SECONDS,
    SEMANTIC_WORKERS,
    TYPE_NET_MAX_SHARE,
    TYPE_NET_SECONDS,
)
from ansf_mcp.store import db
from ansf_mcp.store.base import (
    DEFAULT_MIGRATION_LOCK_TIMEOUT_S,
    DEFAULT_MIGRATION_TIMEOUT_S,
    DEFAULT_TIMEOUT_S,
)

Transport = Literal["stdio", "sse", "http"]

# env var -> field; the README's settings table is generated from the same source of truth by hand,
# so keep both in step (tests/test_settings.py checks every variable here is documented).
ENV_VARS: dict[str, str] = {
    "ANSF_DATA_DIR": "data_dir",
    "ANSF_STORE": "store",
    "ANSF_PROJECT": "project_root",
    "ANSF_HOST": "host",
    "ANSF_PORT": "port",
    "ANSF_TOKEN": "token",
    "ANSF_LOG_LEVEL": "log_level",
    "ANSF_MAX_ATTEMPTS": "max_attempts",
    "ANSF_DEFAULT_LEASE_S": "default_lease_s",
    "ANSF_TAKEOVER_GRACE_S": "takeover_grace_s",
    "ANSF_WARMUP": "warm_model",
    "ANSF_CGROUP_ROOT": "cgroup_root",
    "ANSF_PHASE_CRITICAL_AT": "phase_critical_at",
    "ANSF_PHASE_ENHANCED_AT": "phase_enhanced_at",
    "ANSF_PHASE_HYSTERESIS": "phase_hysteresis",
    "ANSF_HTTP_HEADER_TIMEOUT_S": "http_header_timeout_s",
    "ANSF_HTTP_MAX_CONNECTIONS": "http_max_connections",
    "ANSF_SEMANTIC_WORKERS": "semantic_workers",
    "ANSF_SEMANTIC_DEADLINE_S": "semantic_deadline_s",
    "ANSF_READ_ONLY": "read_only",
    "ANSF_SEMANTIC_INDEX": "semantic_index",
    "ANSF_TYPE_NET_S": "type_net_s",
    "ANSF_STORE_TIMEOUT_S": "store_timeout_s",
    "ANSF_MIGRATION_TIMEOUT_S": "migration_timeout_s",
    "ANSF_MIGRATION_LOCK_TIMEOUT_S": "migration_lock_timeout_s",
    "ANSF_STORE_WORKERS": "store_workers",
    "ANSF_READ_DEADLINE_S": "read_deadline_s",
}

# Settings whose value is never repeated in an error: a token, and a store URL that may carry a password.
SECRET_FIELDS = frozenset({"token", "store"})

# The only names served without a token: the ones a DNS-rebinding check can list exactly.
LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "::1"})


def default_data_dir() -> Path:
    xdg = os.environ.get("XDG_DATA_HOME")
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".local" / "share"
    return (base / "ansf-mcp").resolve()


class Settings(BaseModel):
    data_dir: Path = Field(default_factory=default_data_dir)
    # Nothing: SQLite in the data directory. A path: that SQLite file. A postgresql:// URL: PostgreSQL (replicas).
    store: str | None = None
    project_root: Path = Field(default_factory=lambda: Path.cwd().resolve())
    transport: Transport = "stdio"
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    token: str | None = None
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "WARNING"
    max_attempts: int = Field(default=3, ge=1, le=100)
    default_lease_s: float = Field(default=300.0, gt=0, le=7 * 24 * 3600)
    # A ready task assigned to an agent not seen for this long may be claimed by another agent.
    takeover_grace_s: float = Field(default=600.0, ge=0, le=30 * 24 * 3600)
    # Load the neural model in the background at start when the operating phase allows it.
    warm_model: bool = True
    cgroup_root: Path = Path("/sys/fs/cgroup")
    # Fractions of the memory limit in use: at or above critical_at -> phase 1, above enhanced_at -> phase 2.
    phase_critical_at: float = Field(default=0.99, gt=0, le=1)
    phase_enhanced_at: float = Field(default=0.80, gt=0, le=1)
    phase_hysteresis: float = Field(default=0.03, ge=0, lt=0.5)
    # The semantic layer: no editing tools at all (they are not even listed), and index the project at start.
    read_only: bool = False
    semantic_index: bool = True
    # HTTP listeners: a request's headers must arrive within this many seconds (and its body within 6x), and
    # at most this many connections are open at once (default: below the process's open-file limit).
    http_header_timeout_s: float = Field(default=10.0, gt=0, le=600)
    http_max_connections: int | None = Field(default=None, ge=1, le=1_000_000)
    # Semantic tools: worker threads of their own (never the transport's) and a deadline per call.
    semantic_workers: int = Field(default=SEMANTIC_WORKERS, ge=1, le=64)
    semantic_deadline_s: float = Field(default=SEMANTIC_DEADLINE_SECONDS, gt=0, le=600)
    # The type net: how long a Python edit may wait for basedpyright's verdict on its new content (a cold start of
    # the checker included), then it is written with "types not checked"; 0 turns the net off and starts no
    # checker for edits. No longer than semantic_deadline_s (the edit must answer within its call's deadline).
    type_net_s: float = Field(default=TYPE_NET_SECONDS, ge=0, le=600)
    # The store: a call waits at most this long for a lock or an unresponsive database, then fails in one
    # sentence; board calls run in a pool of this many threads, never on the event loop.
    store_timeout_s: float = Field(default=DEFAULT_TIMEOUT_S, gt=0, le=600)
    store_workers: int = Field(default=8, ge=1, le=64)
    # PostgreSQL schema migrations: the whole migration may run this long (0: no limit), and each step waits this
    # long for a table another session holds, then the migration stops, changes nothing and says who held it.
    migration_timeout_s: float = Field(default=DEFAULT_MIGRATION_TIMEOUT_S, ge=0, le=7 * 24 * 3600)
    migration_lock_timeout_s: float = Field(default=DEFAULT_MIGRATION_LOCK_TIMEOUT_S, gt=0, le=3600)
    # Read-only board answers (swarm_status, get_task) give up sooner: a hung database gets a one-sentence answer
    # within this, while writes keep the longer store time-out.
    read_deadline_s: float = Field(default=0.8, gt=0, le=600)

    @model_validator(mode="after")
    def _ordered_thresholds(self) -> Settings:
        if self.phase_enhanced_at >= self.phase_critical_at:
            raise ValueError("phase_enhanced_at must be below phase_critical_at")
        return self

    @model_validator(mode="after")
    def _type_net_within_deadline(self) -> Settings:
        # The net may take at most TYPE_NET_MAX_SHARE of the call's deadline, leaving the edit room to finish
        # within it. Only a budget the user set is refused: the default shrinks to a shorter deadline set alone.
        most = round(TYPE_NET_MAX_SHARE * self.semantic_deadline_s, 3)
        if self.type_net_s > most and "type_net_s" not in self.model_fields_set:
            self.type_net_s = most
        if self.type_net_s > most:
            raise ValueError(f"type_net_s ({self.type_net_s:g} s) is longer than {TYPE_NET_MAX_SHARE:.0%} of "
                             f"semantic_deadline_s ({self.semantic_deadline_s:g} s), the deadline of the whole call "
                             f"it runs in, which the edit itself needs the rest of: set it at most {most:g} s, or 0 "
                             "to turn the type net off")
        return self

    @field_validator("data_dir", "project_root", mode="after")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        # Never relative to whatever directory a client happened to launch us from.
        return value.expanduser().resolve()

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("store", mode="after")
    @classmethod
    def _store_spec(cls, value: str | None) -> str | None:
        return db.check_spec(value)

    @property
    def db_path(self) -> Path:
        """The SQLite file (the data directory's unless --store names another; unused on PostgreSQL)."""
        return db.sqlite_path(self.store, self.data_dir)

    @property
    def store_spec(self) -> str | Path:
        """What `open_store` opens."""
        return db.resolve(self.store, self.data_dir)

    @property
    def store_options(self) -> dict[str, float]:
        """What `open_store` / `peek` take besides the store: the call time-out and the migration bounds."""
        return {"timeout_s": self.store_timeout_s, "migration_timeout_s": self.migration_timeout_s,
                "migration_lock_timeout_s": self.migration_lock_timeout_s}

    @property
    def store_label(self) -> str:
        """The store for logs and status, without a password."""
        return db.label(self.store_spec)

    @property
    def is_loopback(self) -> bool:
        """Only the exact loopback names: another 127.x address is not covered by the Host check, so it needs
        the token like any other address."""
        return self.host.lower() in LOOPBACK_NAMES

    @classmethod
    def load(cls, **overrides: object) -> Settings:
        return cls.model_validate(layered(ENV_VARS, overrides))


def layered(env_vars: dict[str, str], overrides: dict[str, object]) -> dict[str, object]:
    """Defaults < environment < explicit overrides (CLI flags); None overrides are ignored."""
    values: dict[str, object] = {}
    for env, field in env_vars.items():
        raw = os.environ.get(env)
        if raw not in (None, ""):
            values[field] = raw
    values.update({k: v for k, v in overrides.items() if v is not None})
    return values


def invalid_setting(exc: ValidationError, env_vars: Mapping[str, str] = ENV_VARS) -> str:
    """A settings ValidationError in one line, naming what the user set rather than the model's field.

    Users set environment variables and flags, not fields: pydantic's own text ("phase_critical_at: Input should
    be a valid number ... For further information visit https://errors.pydantic.dev/...") names neither, and spans
    several lines. Each error becomes `ANSF_X='value': why` when the value came from that variable, or
    `field=value (its flag, or ANSF_X): why` when a flag set it; a rule across fields names their variables.
    `env_vars` maps variables to fields (a model with settings of its own passes its map too).
    """
    field_env = {field: env for env, field in env_vars.items()}
    parts: list[str] = []
    for err in exc.errors(include_url=False):
        why = str(err["msg"]).removeprefix("Value error, ")
        field = str(err["loc"][0]) if err["loc"] else None
        if field is None:  # a rule across fields, e.g. "phase_enhanced_at must be below phase_critical_at"
            named = [f for f in field_env if re.search(rf"\b{re.escape(f)}\b", why)]
            for f in named:
                why = re.sub(rf"\b{re.escape(f)}\b", field_env[f], why)
            given = [f"{field_env[f]}={os.environ[field_env[f]]!r}" for f in named if os.environ.get(field_env[f])]
            parts.append(why + (f" (set: {', '.join(given)})" if given else ""))
            continue
        env = field_env.get(field)
        value = err.get("input")
        shown = "" if field in SECRET_FIELDS else f"={_short(value)!r}"
        if env and os.environ.get(env) is not None and os.environ.get(env) == value:
            parts.append(f"{env}{shown}: {why}")
        elif env:
            parts.append(f"{field}{shown} (its flag, or {env}): {why}")
        else:
            parts.append(f"{field}{shown}: {why}")
    return "; ".join(parts) or str(exc).splitlines()[0]


def _short(value: object, limit: int = 80) -> object:
    text = str(value)
    return value if len(text) <= limit else text[:limit] + "..."
