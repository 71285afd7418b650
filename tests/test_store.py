"""The store itself on both engines: migrations from an old schema, one-line refusals that write nothing, the
fencing number of a lease, and what `ansf status` / `ansf serve` say about the store."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from ansf_mcp.board import swarms
from ansf_mcp.board import tasks as board_tasks
from ansf_mcp.board.board import EXPIRE_CLAIMS_SQL, Board
from ansf_mcp.board.errors import Refused
from ansf_mcp.board.lifecycle import BoardPolicy, params
from ansf_mcp.board.models import TaskSpec
from ansf_mcp.store.db import Store, StoreError, open_store
from ansf_mcp.store.migrations import MIGRATIONS, postgres_ddl
from ansf_mcp.store.postgres import pg_sql, redact
from tests.board_helpers import FakeClock, agents
from tests.conftest import ansf_command, subprocess_env


def test_parameters_are_rewritten_outside_literals_only() -> None:
    assert pg_sql("SELECT ? FROM t WHERE a = :a AND b::text = 'x:y?%' AND c LIKE '%z'") == (
        "SELECT %s FROM t WHERE a = %(a)s AND b::text = 'x:y?%%' AND c LIKE '%%z'"
    )
    assert redact("postgresql://u:secret@h:5/db") == "postgresql://u:***@h:5/db"


def _schema_one(store_spec: str | Path) -> None:
    """A store as the first release left it: schema 1, one swarm with a task claimed by an agent."""
    rows = [
        "INSERT INTO swarms (id, name, topology, created_at) VALUES ('s', 'old', 'mesh', 1)",
        "INSERT INTO agents (swarm_id, id, position, role, capabilities, capacity) VALUES ('s', 'a', 0, 'r', '[]', 1)",
        "INSERT INTO tasks (swarm_id, id, seq, description, priority, status, lease_owner, lease_expires_at, "
        "attempts, created_at, updated_at) VALUES ('s', 't', 0, 'old work', 1, 'claimed', 'a', 4e9, 1, 1, 1)",
    ]
    if isinstance(store_spec, Path):
        conn = sqlite3.connect(store_spec)
        for statement in [*MIGRATIONS[0], *rows]:
            conn.execute(statement)
        conn.execute("PRAGMA user_version=1")
        conn.commit()
        conn.close()
        return
    import psycopg

    with psycopg.connect(store_spec, autocommit=True) as conn:
        for statement in MIGRATIONS[0]:
            conn.execute(postgres_ddl(statement))  # type: ignore[arg-type]
        for statement in rows:
            conn.execute(statement)  # type: ignore[arg-type]
        conn.execute("CREATE TABLE ansf_schema (version INTEGER NOT NULL)")
        conn.execute("INSERT INTO ansf_schema (version) VALUES (1)")


def test_an_old_store_opens_and_migrates_with_its_data(store_spec: str | Path) -> None:
    _schema_one(store_spec)
    store = open_store(store_spec)
    try:
        assert store.schema_version == len(MIGRATIONS) > 1
        board = Board(store)
        task = board.view("s").tasks[0]
        # The claim made before claims had numbers got its number (the attempt) and a history row.
        assert (task.id, task.state, task.lease_owner, task.claim) == ("t", "claimed", "a", 1)
        receipt = board.report("s", "t", "a", True, "done after the upgrade", claim=1)
        assert receipt.state == "succeeded"
    finally:
        store.close()
    again = open_store(store_spec)  # opening a current store migrates nothing
    assert again.schema_version == len(MIGRATIONS)
    again.close()


def test_claim_expiry_reads_open_claims_only(store: Store, engine: str) -> None:
    """History (claims that ended) stays out of claim expiry: the statement ends the one expired open claim, and
    it is served by the partial index `claims_open` (on SQLite the plan names it; PostgreSQL's planner may start
    from the claimed tasks instead, so there the index's presence and predicate are checked)."""
    clock = FakeClock()
    board = Board(store, BoardPolicy(max_attempts=5, lease_s=60), clock=clock)
    sw = swarms.spawn(store, "s", agents("r", "r"), "mesh")
    with store.transaction() as conn:
        board_tasks.insert_tasks(conn, sw, [TaskSpec(id=f"t{k}", description="work") for k in range(6)], now=clock())
    for _ in range(4):  # history: four claims that ended with an outcome
        claim = board.claim_next(sw, "agent-0")
        board.report(sw, claim.task.id, "agent-0", True, "done")
    late = board.claim_next(sw, "agent-1")
    clock.advance(61)  # agent-1's lease runs out; agent-0's new claim expires it first
    board.claim_next(sw, "agent-0")
    with store.reading() as conn:
        ended = dict(conn.execute("SELECT ended, COUNT(*) FROM claims WHERE swarm_id = ? GROUP BY ended",
                                  (sw,)).fetchall())
        expired = conn.execute("SELECT task_id FROM claims WHERE ended = 'expired'").fetchall()
        if engine == "sqlite":
            plan = " ".join(str(r[-1]) for r in conn.execute(
                "EXPLAIN QUERY PLAN " + EXPIRE_CLAIMS_SQL, params(board.policy, clock(), swarm=sw)).fetchall())
            assert "USING INDEX claims_open " in plan + " ", plan
        else:
            index = conn.execute("SELECT indexdef FROM pg_indexes WHERE indexname = 'claims_open'").fetchone()
            assert index is not None and index[0].endswith("WHERE (ended IS NULL)"), index
    assert ended == {"reported": 4, "expired": 1, None: 1}
    assert [r[0] for r in expired] == [late.task.id]


def test_a_late_report_from_an_expired_claim_is_refused_by_its_number(store: Store) -> None:
    clock = FakeClock()
    board = Board(store, BoardPolicy(max_attempts=5, lease_s=60), clock=clock)
    sw = swarms.spawn(store, "s", agents("r"), "mesh")
    with store.transaction() as conn:
        board_tasks.insert_tasks(conn, sw, [TaskSpec(id="t", description="work")], now=clock())
    first = board.claim_next(sw, "agent-0")
    clock.advance(61)  # the lease runs out; the same agent claims the task again
    second = board.claim_next(sw, "agent-0")
    assert (first.claim, second.claim) == (1, 2)
    with pytest.raises(Refused, match=r"claim #1 .* is over; the live claim is #2"):
        board.report(sw, "t", "agent-0", True, "late", claim=1)
    with pytest.raises(Refused, match="claim #1"):
        board.renew(sw, "t", "agent-0", claim=1)
    with store.reading() as conn:
        assert conn.execute("SELECT COUNT(*) FROM outcomes").fetchone()[0] == 0
    assert board.report(sw, "t", "agent-0", True, "on time", claim=2).claim == 2
    # The same report again (same claim) gets the first answer back; the stale number is still refused.
    assert board.report(sw, "t", "agent-0", True, "on time", claim=2).claim == 2
    with pytest.raises(Refused):
        board.report(sw, "t", "agent-0", True, "late", claim=1)


def _refused(url: str) -> str:
    with pytest.raises(StoreError) as caught:
        open_store(url)
    message = str(caught.value)
    assert "\n" not in message and "secret" not in message
    return message


def test_postgres_refusals_are_one_line_and_write_nothing(pg_cluster) -> None:
    import psycopg

    assert "does not exist" in _refused(pg_cluster.url("no_such_db"))
    pg_cluster.admin("DROP ROLE IF EXISTS ansf_pw")
    pg_cluster.admin("CREATE ROLE ansf_pw LOGIN PASSWORD 'right'")
    url = pg_cluster.new_database()
    pg_cluster.admin(f"GRANT ALL ON DATABASE {url.rsplit('/', 1)[1]} TO ansf_pw")
    wrong = url.replace("postgres@", "ansf_pw:secret@")
    assert "password authentication failed" in _refused(wrong)
    assert _refused(f"postgresql://postgres@127.0.0.1:{pg_cluster.port}x/db")
    # Nothing was created by the refused attempt: the database has no tables.
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT COUNT(*) FROM pg_tables WHERE schemaname = 'public'").fetchone()[0] == 0


def test_status_names_the_engine_and_its_version(store_spec: str | Path, tmp_path: Path) -> None:
    open_store(store_spec).close()
    out = subprocess.run([*ansf_command(), "status", "--json", "--store", str(store_spec)],
                         env=subprocess_env(tmp_path / "data"), capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    store = json.loads(out.stdout)["store"]
    engine = "sqlite" if isinstance(store_spec, Path) else "postgresql"
    assert store["engine"] == engine and store["engine_version"] and store["schema_version"] == len(MIGRATIONS)


def test_serve_with_a_wrong_store_says_so_in_one_line(pg_cluster, tmp_path: Path) -> None:
    out = subprocess.run([*ansf_command(), "serve", "--store", pg_cluster.url("missing_db")],
                         env=subprocess_env(tmp_path / "data"), capture_output=True, text=True, timeout=120,
                         stdin=subprocess.DEVNULL)
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert out.returncode == 2 and out.stdout == ""
    assert len(lines) == 1 and "missing_db" in lines[0] and "does not exist" in lines[0], out.stderr


# -- time-outs: a store call never waits longer than the store's time-out -------------------------------------------


def _hold_write_lock(store_spec: str | Path):
    """Another connection (another process's, as far as the store can tell) holding the write lock / the rows."""
    if isinstance(store_spec, Path):
        other = sqlite3.connect(store_spec, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        return other
    import psycopg

    other = psycopg.connect(store_spec, autocommit=True)
    other.execute("BEGIN")
    other.execute("LOCK TABLE swarms IN ACCESS EXCLUSIVE MODE")
    return other


def test_a_lock_held_from_outside_fails_in_one_sentence_within_the_time_out(store_spec: str | Path) -> None:
    store = open_store(store_spec, timeout_s=0.5)
    swarms.spawn(store, "before", agents("a"), "mesh")
    other = _hold_write_lock(store_spec)
    try:
        started = time.monotonic()
        with pytest.raises(StoreError) as refused:
            swarms.spawn(store, "during", agents("a"), "mesh")
        took = time.monotonic() - started
        if isinstance(store_spec, Path):  # WAL: readers are not held up by the writer waiting for the lock
            with store.reading() as conn:
                assert conn.execute("SELECT COUNT(*) FROM swarms").fetchone()[0] == 1
    finally:
        other.close()  # its transaction ends with it
    text = str(refused.value)
    assert "ANSF_STORE_TIMEOUT_S" in text and "nothing was written" in text and "\n" not in text, text
    assert 0.45 <= took < 2.0, f"refused after {took:.2f} s with a 0.5 s time-out"
    swarms.spawn(store, "after", agents("a"), "mesh")  # the lock is gone: writes go on
    with store.reading() as conn:
        assert [r[0] for r in conn.execute("SELECT name FROM swarms ORDER BY created_at")] == ["before", "after"]
    store.close()


def test_postgresql_sessions_carry_time_outs(pg_cluster) -> None:
    store = open_store(pg_cluster.new_database(), timeout_s=1.5)
    try:
        with store.reading() as conn:
            shown = {name: conn.execute(f"SHOW {name}").fetchone()[0]
                     for name in ("statement_timeout", "lock_timeout", "idle_in_transaction_session_timeout")}
        assert shown == {"statement_timeout": "1500ms", "lock_timeout": "1500ms",
                         "idle_in_transaction_session_timeout": "30s"}
        started = time.monotonic()
        with pytest.raises(StoreError, match=r"did not finish within 1\.5 s"), store.reading() as conn:
            conn.execute("SELECT pg_sleep(30)")
        assert time.monotonic() - started < 3.0
    finally:
        store.close()


def test_writers_queued_behind_a_held_lock_share_one_time_out(tmp_path: Path) -> None:
    """Four writers of one server behind another process's lock: each is refused within the time-out of its own
    call, not one time-out after the writer ahead of it."""
    db = tmp_path / "db.sqlite3"
    store = open_store(db, timeout_s=0.5)
    other = _hold_write_lock(db)
    took: list[float] = []
    errors: list[str] = []

    def write() -> None:
        started = time.monotonic()
        try:
            swarms.spawn(store, "during", agents("a"), "mesh")
        except StoreError as exc:
            errors.append(str(exc))
        took.append(time.monotonic() - started)

    writers = [threading.Thread(target=write) for _ in range(4)]
    try:
        for w in writers:
            w.start()
        for w in writers:
            w.join(timeout=30)
    finally:
        other.close()
        store.close()
    assert len(errors) == 4 and all("ANSF_STORE_TIMEOUT_S" in e for e in errors), errors
    assert max(took) < 1.0, f"queued writers waited {sorted(took)} s with a 0.5 s time-out"


def test_servers_opening_a_fresh_sqlite_store_together_all_start(tmp_path: Path) -> None:
    # 16 standalone stdio servers started by one client on a fresh data directory once raced on the first
    # migration ("table swarms already exists"). Each process waits on a shared start file, then opens the store.
    path = tmp_path / "fresh" / "ansf.db"
    go = tmp_path / "go"
    code = (
        "import os, sys, time\n"
        f"while not os.path.exists({str(go)!r}): time.sleep(0.005)\n"
        "from ansf_mcp.store.db import open_store\n"
        f"s = open_store({str(path)!r}); print(s.schema_version); s.close()\n"
    )
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(8)]
    time.sleep(1.0)  # let every interpreter reach its wait loop before the start signal
    go.touch()
    results = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0] * 8, [err[-500:] for _, err in results]
    assert {out.strip() for out, _ in results} == {str(len(MIGRATIONS))}


def test_another_program_s_sqlite_file_is_refused_and_left_as_it_was(tmp_path: Path) -> None:
    # It used to be migrated: every table of the board was added beside the other program's own.
    path = tmp_path / "notes.db"
    other = sqlite3.connect(path)
    other.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
    other.execute("INSERT INTO notes (body) VALUES ('mine')")
    other.commit()
    other.close()
    with pytest.raises(StoreError, match=r"is not an ansf-mcp store \(it holds other tables: notes\)"):
        open_store(path)
    other = sqlite3.connect(path)
    tables = [r[0] for r in other.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
    assert tables == ["notes"] and other.execute("PRAGMA user_version").fetchone()[0] == 0
    assert other.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    other.close()
    held = [os.readlink(fd) for fd in Path("/proc/self/fd").iterdir() if fd.is_symlink()]
    assert str(path) not in held, "a store that did not open still holds its file"
    empty = tmp_path / "empty.db"
    empty.touch()  # an empty file is an empty database: it becomes a store
    open_store(empty).close()


def test_a_damaged_sqlite_file_is_refused_in_one_sentence(tmp_path: Path) -> None:
    # Damage that is not UTF-8 in the schema pages made opening raise UnicodeDecodeError from sqlite3's own error
    # message: `ansf status` and `ansf serve` ended in a traceback.
    path = tmp_path / "ansf.sqlite3"
    store = open_store(path)
    for i in range(20):
        swarms.spawn(store, f"swarm {i} " * 40, agents("a", "b"), "mesh")
    store.close()
    damaged = bytearray(path.read_bytes())
    for offset in range(3 * 4096, len(damaged), 97):
        damaged[offset] = 0xAB
    path.write_bytes(bytes(damaged))
    with pytest.raises(StoreError, match="damaged") as refused:
        open_store(path)
    assert "\n" not in str(refused.value)
    done = subprocess.run([*ansf_command(), "status"], env=subprocess_env(tmp_path), capture_output=True, text=True,
                          timeout=60)
    assert "Traceback" not in done.stderr + done.stdout and "damaged" in done.stdout + done.stderr, done


def test_damaged_pages_under_the_counts_are_reported_by_status_not_raised(tmp_path: Path) -> None:
    # A read of a damaged page raised sqlite3.DatabaseError past describe(): `ansf status` ended in a traceback.
    path = tmp_path / "ansf.sqlite3"
    store = open_store(path)
    swarms.spawn(store, "s", agents("a"), "mesh")
    store.close()
    other = sqlite3.connect(path)
    roots = [r[0] for r in other.execute("SELECT rootpage FROM sqlite_master WHERE tbl_name IN "
                                         "('swarms', 'tasks', 'outcomes') AND rootpage > 0")]
    page = other.execute("PRAGMA page_size").fetchone()[0]
    other.close()
    damaged = bytearray(path.read_bytes())
    for root in roots:
        for offset in range((root - 1) * page, root * page, 3):
            damaged[offset] = 0x5A
    path.write_bytes(bytes(damaged))
    store = open_store(path)
    try:
        info = store.describe()
    finally:
        store.close()
    assert info.error is not None and "malformed" in info.error and "\n" not in info.error, info
    done = subprocess.run([*ansf_command(), "status"], env=subprocess_env(tmp_path), capture_output=True, text=True,
                          timeout=60)
    assert "Traceback" not in done.stderr + done.stdout and "malformed" in done.stdout, done


def test_a_store_path_that_is_a_directory_says_so(tmp_path: Path) -> None:
    # SQLite said only "unable to open database file" for `--store DIR`.
    with pytest.raises(StoreError, match=r"it is a directory; a store is a file, such as .*ansf\.sqlite3"):
        open_store(tmp_path)


def test_an_error_inside_a_write_is_one_store_error_on_both_engines_and_nothing_is_written(store_spec) -> None:
    # SQLite let its own error out of a write's body: a background writer (the phase-change record) catches
    # StoreError, as PostgreSQL's store raises, so the SQLite one ended silently in its thread.
    store = open_store(store_spec)
    try:
        insert = "INSERT INTO swarms (id, name, topology, created_at) VALUES (?, 'w', 'mesh', 0)"
        with store.transaction() as conn:
            conn.execute(insert, ("kept",))
        with pytest.raises(StoreError, match="nothing was written"):
            with store.transaction() as conn:
                conn.execute(insert, ("lost",))
                conn.execute("SELECT * FROM no_such_table")
        with store.reading() as conn:
            assert [r[0] for r in conn.execute("SELECT id FROM swarms ORDER BY id")] == ["kept"]
    finally:
        store.close()


# -- PostgreSQL migrations run under bounds of their own, not the call time-out -------------------------------


def _pg_schema(url: str) -> tuple[int, set[str]]:
    """The schema version and the tables a PostgreSQL database holds, read apart from any store."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        version = conn.execute("SELECT version FROM ansf_schema").fetchone()[0]  # type: ignore[index]
        tables = {r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")}
        columns = {f"tasks.{r[0]}" for r in conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'tasks'")}
    return version, tables | columns


def _one_more_migration(monkeypatch: pytest.MonkeyPatch, *statements: str) -> int:
    """A release with one more migration than this one (its statements), as the PostgreSQL store sees it."""
    from ansf_mcp.store import postgres

    monkeypatch.setattr(postgres, "MIGRATIONS", [*MIGRATIONS, list(statements)])
    return len(MIGRATIONS) + 1


def test_a_pg_migration_may_run_longer_than_a_call(pg_cluster, monkeypatch: pytest.MonkeyPatch) -> None:
    """A step on a large table takes longer than the call time-out: it ran under that time-out and was killed
    half-way (the whole migration rolled back, and the replica could not start). Calls keep their time-out."""
    url = pg_cluster.new_database()
    open_store(url).close()
    newer = _one_more_migration(monkeypatch, "CREATE TABLE slow_step (x INTEGER)", "SELECT pg_sleep(2)")
    store = open_store(url, timeout_s=1)
    try:
        assert store.schema_version == newer
        with pytest.raises(StoreError, match="ANSF_STORE_TIMEOUT_S"), store.reading() as conn:
            conn.execute("SELECT pg_sleep(3)")  # the migration's bound was its own, not the connection's
    finally:
        store.close()
    version, tables = _pg_schema(url)
    assert version == newer and "slow_step" in tables


def test_a_pg_migration_past_its_own_bound_changes_nothing(pg_cluster, monkeypatch: pytest.MonkeyPatch) -> None:
    url = pg_cluster.new_database()
    open_store(url).close()
    _one_more_migration(monkeypatch, "CREATE TABLE slow_step (x INTEGER)", "SELECT pg_sleep(3)")
    with pytest.raises(StoreError) as refused:
        open_store(url, timeout_s=10, migration_timeout_s=0.5)
    message = str(refused.value)
    assert "ran past 0.5 s (ANSF_MIGRATION_TIMEOUT_S)" in message and "SELECT pg_sleep(3)" in message
    assert f"nothing was changed (the schema stays at {len(MIGRATIONS)}" in message and "\n" not in message
    version, tables = _pg_schema(url)
    assert version == len(MIGRATIONS) and "slow_step" not in tables


def test_a_pg_migration_behind_a_long_transaction_says_who_holds_the_table(
        pg_cluster, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another session's long transaction on a table a step must change: the step waits the migration's lock
    time-out (not the 30 s call time-out: meanwhile every replica's call on that table queues behind it), then
    the migration stops, changes nothing and names the session."""
    import psycopg

    url = pg_cluster.new_database()
    open_store(url).close()
    newer = _one_more_migration(monkeypatch, "CREATE TABLE half_done (x INTEGER)",
                                "ALTER TABLE tasks ADD COLUMN extra TEXT")
    with psycopg.connect(url, application_name="nightly report") as report:
        report.execute("SELECT COUNT(*) FROM tasks")  # its transaction stays open, holding the table
        pid = report.info.backend_pid
        started = time.monotonic()
        with pytest.raises(StoreError) as refused:
            open_store(url, timeout_s=30)
        waited = time.monotonic() - started
    message = str(refused.value)
    assert waited < 15, f"waited {waited:.1f} s"
    assert f"to schema {newer} waited 5 s (ANSF_MIGRATION_LOCK_TIMEOUT_S)" in message
    assert f"session pid {pid} ('nightly report', idle in transaction" in message and "holding tasks" in message
    assert f"nothing was changed (the schema stays at {len(MIGRATIONS)}" in message and "\n" not in message
    version, tables = _pg_schema(url)
    assert version == len(MIGRATIONS) and not {"half_done", "tasks.extra"} & tables
    # The session gone, the same migration goes through.
    open_store(url, timeout_s=30).close()
    version, tables = _pg_schema(url)
    assert version == newer and {"half_done", "tasks.extra"} <= tables


def test_a_replica_waits_for_another_replicas_long_migration(pg_cluster, monkeypatch: pytest.MonkeyPatch) -> None:
    """A replica that starts while another migrates waits for it past the call time-out (it failed after 1 s
    with the call's "try again"); past the migration bound it says that another server is migrating."""
    import psycopg

    from ansf_mcp.store.postgres import MIGRATION_LOCK

    url = pg_cluster.new_database()
    open_store(url).close()
    with psycopg.connect(url, autocommit=True) as other:
        other.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK,))
        with pytest.raises(StoreError) as refused:
            open_store(url, timeout_s=1, migration_timeout_s=0.5)
        assert str(refused.value) == (
            f"another server has been migrating the schema of the PostgreSQL store at {url} for over 0.5 s "
            "(ANSF_MIGRATION_TIMEOUT_S), so this one did not start; let that migration finish and start again")
        release = threading.Timer(2.0, lambda: other.execute("SELECT pg_advisory_unlock_all()"))
        release.start()
        try:
            started = time.monotonic()
            open_store(url, timeout_s=1).close()
            assert time.monotonic() - started >= 1.5
        finally:
            release.join()


def test_a_server_whose_schema_a_newer_one_changed_mid_run_says_so(store_spec: str | Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Two releases share one store; the newer starts and migrates while the older runs. An additive step leaves
    the older one working; one that changes what it uses (a renamed column) made its calls fail with the
    database's "no such column", which did not say the schema had moved or what to do."""
    from ansf_mcp.store import postgres
    from ansf_mcp.store import sqlite as sqlite_store

    older = open_store(store_spec)
    try:
        swarms.spawn(older, "before", agents("a"), "mesh")
        additive = [*MIGRATIONS, ["CREATE TABLE newer_things (x INTEGER)"]]
        for module in (postgres, sqlite_store):
            monkeypatch.setattr(module, "MIGRATIONS", additive)
        open_store(store_spec).close()
        swarms.spawn(older, "after an additive step", agents("a"), "mesh")
        renamed = [*additive, ["ALTER TABLE swarms RENAME COLUMN topology TO shape"]]
        for module in (postgres, sqlite_store):
            monkeypatch.setattr(module, "MIGRATIONS", renamed)
        open_store(store_spec).close()
        newer = len(renamed)
        with pytest.raises(StoreError) as refused:
            swarms.spawn(older, "after a rename", agents("a"), "mesh")
        assert str(refused.value) == (
            f"the store's schema is now {newer}, newer than this server's {len(MIGRATIONS)}: a newer ansf-mcp "
            "sharing it migrated it while this server ran, so nothing was written; upgrade this server and "
            "restart it")
        with pytest.raises(StoreError, match=f"schema is now {newer}.*so nothing could be read"), \
                older.reading() as conn:
            conn.execute("SELECT topology FROM swarms").fetchall()
    finally:
        older.close()
    for module in (postgres, sqlite_store):
        monkeypatch.setattr(module, "MIGRATIONS", MIGRATIONS)
    with pytest.raises(StoreError, match=f"has schema {newer}, newer than this version knows"):
        open_store(store_spec)  # and an older replica started now refuses at once
