"""A throw-away PostgreSQL cluster for the tests and `ansf bench --suite scale`: initdb into a temporary folder, a loopback port, run as an
ordinary user (the server refuses root), stopped and removed at the end. One per test session; each test gets a
database of its own."""

from __future__ import annotations

import contextlib
import glob
import itertools
import os
import pwd
import secrets
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from ansf_mcp.ports import free_port

# When we run as root, the cluster runs as this user (Debian's package creates it; otherwise we create it).
CLUSTER_USER = "postgres"


def find_bindir() -> Path | None:
    """Where initdb, pg_ctl and postgres live: pg_config's answer, else the newest Debian version folder."""
    candidates: list[str] = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        try:
            out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, timeout=10).stdout
            candidates.append(out.strip())
        except (OSError, subprocess.SubprocessError):
            pass
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]), reverse=True)
    initdb = shutil.which("initdb")
    if initdb:
        candidates.append(str(Path(initdb).resolve().parent))
    for d in candidates:
        if d and all((Path(d) / exe).exists() for exe in ("initdb", "pg_ctl", "postgres")):
            return Path(d)
    return None


def _as_user(user: str | None, cmd: list[str]) -> list[str]:
    return ["runuser", "-u", user, "--", *cmd] if user else cmd


def _cluster_user() -> str | None:
    """None when we are not root (the cluster runs as us); else an ordinary user, created if missing."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(CLUSTER_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", CLUSTER_USER],
                       check=True, capture_output=True)
    return CLUSTER_USER


@dataclass
class Cluster:
    bindir: Path
    root: Path
    port: int
    user: str | None
    _names: itertools.count = field(default_factory=lambda: itertools.count(1))

    @property
    def data(self) -> Path:
        return self.root / "data"

    def url(self, dbname: str = "postgres", *, user: str = "postgres", password: str | None = None) -> str:
        auth = f"{user}:{password}@" if password else f"{user}@"
        return f"postgresql://{auth}127.0.0.1:{self.port}/{dbname}"

    def admin(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(sql)  # type: ignore[arg-type]

    def new_database(self) -> str:
        """A fresh, empty database; its URL."""
        name = f"ansf_test_{next(self._names)}"
        self.admin(f"CREATE DATABASE {name}")
        return self.url(name)

    def cpu_s(self) -> float | None:
        """CPU seconds the cluster's processes have used so far: the postmaster with its reaped children (each
        connection's backend, once it exits) and its live ones; None when that cannot be read."""
        import psutil

        try:
            postmaster = psutil.Process(int((self.data / "postmaster.pid").read_text().split()[0]))
            times = postmaster.cpu_times()
            total = times.user + times.system + times.children_user + times.children_system
            for child in postmaster.children():
                with contextlib.suppress(psutil.Error):  # a backend that exits now is counted as reaped next time
                    total += sum(child.cpu_times()[:2])
        except (OSError, ValueError, IndexError, psutil.Error):
            return None
        return total

    def start(self) -> None:
        # fsync off (the WAL reaches the OS at each commit, not the disk: what SQLite's synchronous=NORMAL
        # promises too); synchronous_commit stays on, so an acknowledged outcome survives a crash of PostgreSQL.
        opts = (f"-k {self.root} -p {self.port} -h 127.0.0.1 -c fsync=off "
                "-c full_page_writes=off -c max_connections=300")
        subprocess.run(_as_user(self.user, [str(self.bindir / "pg_ctl"), "-D", str(self.data), "-o", opts, "-w",
                                            "-t", "60", "-l", str(self.root / "log"), "start"]),
                       check=True, capture_output=True, timeout=90)

    def restart(self) -> None:
        """A clean restart (fast shutdown: every committed transaction is on disk, even with fsync off),
        cutting every client's connection."""
        subprocess.run(_as_user(self.user, [str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "fast",
                                            "-w", "stop"]), check=True, capture_output=True, timeout=60)
        self.start()

    def stop(self) -> None:
        subprocess.run(_as_user(self.user, [str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "immediate",
                                            "-w", "stop"]), capture_output=True, timeout=60)


def start_cluster() -> Cluster:
    bindir = find_bindir()
    if bindir is None:
        raise FileNotFoundError("PostgreSQL's initdb/pg_ctl/postgres")
    user = _cluster_user()
    root = Path(tempfile.mkdtemp(prefix="ansf-pg-"))
    if user:
        shutil.chown(root, user)
    cluster = Cluster(bindir=bindir, root=root, port=free_port(), user=user)
    subprocess.run(_as_user(user, [str(bindir / "initdb"), "-D", str(cluster.data), "-A", "trust", "-U", "postgres",
                                   "-E", "UTF8", "--no-sync", "--no-instructions"]),
                   check=True, capture_output=True, timeout=120)
    # Passwords are checked on TCP (scram), so the tests can see a refused one; the superuser keeps trust.
    hba = cluster.data / "pg_hba.conf"
    hba.write_text("local all all trust\nhost all postgres 127.0.0.1/32 trust\nhost all all 127.0.0.1/32 scram-sha-256\n")
    if user:
        shutil.chown(hba, user)
    cluster.start()
    return cluster


def remove(cluster: Cluster) -> None:
    cluster.stop()
    shutil.rmtree(cluster.root, ignore_errors=True)


def server_info(url: str, source: str) -> dict[str, Any]:
    """Which PostgreSQL server a report measured: its version, and `source`, "scratch" (a throw-away cluster of
    this run) or "store" (the --store URL's server). Where it is comes from the open connection (host, port,
    database), never from the URL, which may carry a user and password."""
    import psycopg

    with psycopg.connect(url, autocommit=True, connect_timeout=30) as conn:
        row = conn.execute("SHOW server_version").fetchone()
        info = conn.info
        return {"source": source, "version": row[0] if row else None, "version_num": info.server_version,
                "host": info.host, "port": info.port, "database": info.dbname}


def server_line(pg: dict[str, Any] | None) -> str:
    """The report's sentence for a `server_info` record. `None` is a report stored before suites kept one; a
    `{"skipped": why}` record is a run that had no PostgreSQL to measure."""
    if not pg:
        return "PostgreSQL server: not recorded (a report stored before it was)."
    if "skipped" in pg:
        return f"PostgreSQL server: none ({pg['skipped']})."
    where = f"{pg['host']}:{pg['port']}"
    if pg["source"] == "scratch":
        whose = f"a throw-away cluster started for this run ({where})"
    else:
        whose = (f"the --store server ({where}, database {pg['database']}; each phase in a scratch database of "
                 "its own on it, dropped at the end)")
    return f"PostgreSQL server: {pg['version']} (server_version_num {pg['version_num']}), {whose}."


# One count for the whole process, not one per `postgres()`: a second suite run in the same process (the
# benchmark tool, or the chaos suite after the scale one) on the same --store server would otherwise ask for a
# database name the first already created.
_STORE_NAMES = itertools.count(1)


def _drop(base: str, names: list[str]) -> None:
    """Drop the scratch databases made on the --store server; one that cannot go is named on stderr, not raised
    (the benchmark's figures are already measured)."""
    import psycopg

    from ansf_mcp.store.postgres import one_line

    if not names:
        return
    left = []
    try:
        with psycopg.connect(base, autocommit=True) as conn:
            for name in names:
                try:
                    try:
                        # FORCE ends the sessions a killed replica or agent may still hold on it.
                        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")  # type: ignore[arg-type]
                    except psycopg.errors.SyntaxError:  # before PostgreSQL 13
                        conn.execute(f"DROP DATABASE IF EXISTS {name}")  # type: ignore[arg-type]
                except psycopg.Error as exc:
                    left.append(f"{name} ({one_line(exc)})")
    except psycopg.Error as exc:  # the server itself is gone: none of them could go
        left = [f"{name} ({one_line(exc)})" for name in names]
    if left:
        print(f"ansf bench: could not drop the scratch database(s) {', '.join(left)} on the --store server; drop "
              "them by hand", file=sys.stderr)


def _with_database(url: str, name: str) -> str:
    """The same server URL naming another database; its options (sslmode, ...) kept."""
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


@contextlib.contextmanager
def postgres(ctx: Any) -> Iterator[Any]:
    """A function making a fresh database URL: on the --store server, or in a throw-away cluster. Its `server`
    is that server's `server_info`, for the report."""
    import psycopg

    base = getattr(ctx, "store", None)
    if base and base.startswith(("postgresql://", "postgres://")):
        made: list[str] = []

        def fresh() -> str:
            # A random part too: a run that died before dropping its databases may have had this pid.
            name = f"ansf_scale_{os.getpid()}_{next(_STORE_NAMES)}_{secrets.token_hex(4)}"
            with psycopg.connect(base, autocommit=True) as conn:
                conn.execute(f"CREATE DATABASE {name}")  # type: ignore[arg-type]
            made.append(name)
            return _with_database(base, name)

        fresh.server = server_info(base, "store")  # type: ignore[attr-defined]
        try:
            yield fresh
        finally:
            # The user's server, not ours: a benchmark leaves none of its scratch databases behind there.
            _drop(base, made)
        return
    cluster = start_cluster()
    try:
        def fresh_own() -> str:
            return cluster.new_database()

        fresh_own.restart = cluster.restart  # type: ignore[attr-defined]  # only our own cluster may be restarted
        fresh_own.cpu_s = cluster.cpu_s  # type: ignore[attr-defined]  # the database's CPU, for the scale suite
        fresh_own.server = server_info(cluster.url(), "scratch")  # type: ignore[attr-defined]
        yield fresh_own
    finally:
        remove(cluster)
