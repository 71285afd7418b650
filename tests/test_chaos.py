"""Standing chaos tests (issue 10): bounded versions of `ansf bench --suite chaos`, same code."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ansf_mcp.bench.chaos_suite import kill_soak, shared_directory
from ansf_mcp.bench.pgcluster import server_line
from tests.bench_helpers import assert_store_server_named, store_role_url


def _fuzz_holds(report: dict) -> None:
    assert report["calls"] >= 25 * 10, report["per_tool"]
    assert not report["crashes"], report["crashes"][:5]
    assert not report["partial_writes"], report["partial_writes"][:5]
    assert not report["tracebacks"], report["tracebacks"][:5]
    assert not report["over_cap"], report["over_cap"][:5]


@pytest.mark.slow
def test_schema_fuzzing_on_postgresql_finds_no_crash_partial_write_or_traceback(tmp_path: Path, pg_cluster) -> None:
    from ansf_mcp.bench.fuzz import fuzz_tools

    report = fuzz_tools(tmp_path, examples_per_tool=25, store=pg_cluster.new_database())
    assert report["engine"] == "postgresql"
    _fuzz_holds(report)


def test_schema_fuzzing_finds_no_crash_partial_write_or_traceback(tmp_path: Path) -> None:
    from ansf_mcp.bench.fuzz import fuzz_tools

    report = fuzz_tools(tmp_path, examples_per_tool=25)
    assert report["engine"] == "sqlite"
    _fuzz_holds(report)


def _store(engine: str, request: pytest.FixtureRequest) -> str | None:
    """None: the SQLite file in the data directory; else a fresh PostgreSQL database's URL."""
    return None if engine == "sqlite" else request.getfixturevalue("pg_cluster").new_database()


@pytest.mark.slow
def test_sigkill_soak_loses_nothing_and_hands_out_nothing_twice(data_dir: Path, engine: str,
                                                                 request: pytest.FixtureRequest) -> None:
    result = kill_soak(data_dir, tasks=120, kills=8, batch=40, seed=1, store=_store(engine, request))
    assert result["kills"] == 8
    assert (result["lost"], result["succeeded_twice"], result["double_claims"], result["missing"]) == (
        [], [], [], []), json.dumps(result)[:2000]


@pytest.mark.slow
def test_two_servers_on_one_board_never_claim_a_task_twice(data_dir: Path, engine: str,
                                                           request: pytest.FixtureRequest) -> None:
    result = shared_directory(data_dir, servers=2, tasks=150, agents_per_server=3, store=_store(engine, request))
    assert not result["errors"], result["errors"]
    assert result["duplicates"] == []
    assert result["claims"] == 150 and result["states"] == {"succeeded": 150}
    assert all(n > 0 for n in result["claims_per_server"]), "both servers should have claimed work"


def test_the_chaos_report_names_the_engine_each_fuzzing_ran_on() -> None:
    from ansf_mcp.bench.chaos_suite import markdown

    fuzz = {"calls": 300, "crashes": [], "partial_writes": [], "tracebacks": []}
    table = markdown({"fuzz": fuzz, "fuzz_postgresql": {**fuzz, "calls": 250}})
    assert "| schema fuzzing (SQLite) | 300 calls |" in table
    assert "| schema fuzzing (PostgreSQL) | 250 calls |" in table


def test_the_soak_row_gives_the_restart_time_with_its_n_and_no_p95_from_few_kills() -> None:
    """The soak kept the middle restart time of its own (the upper one of an even count) and never printed it:
    it is now the suites' summary, with n, and a p95 from fewer than 20 kills is the maximum, said so."""
    from ansf_mcp.bench.chaos_suite import markdown
    from ansf_mcp.system.stats import latency_summary

    soak = {"kills": 8, "tasks": 120, "lost": [], "succeeded_twice": [], "double_claims": [], "missing": [],
            "restart": latency_summary([0.1 * (i + 1) for i in range(8)])}
    assert soak["restart"]["n"] == 8 and soak["restart"]["p50_ms"] == 450.0 and soak["restart"]["p95_ms"] is None
    assert "; restart (ms) p50 / p95 450.0 / max 800.0 of n=8 |" in markdown({"kill_soak": soak})
    # A report stored before the soak kept it prints a dash, not a made-up figure.
    del soak["restart"]
    assert "restart (ms) p50 / p95 — |" in markdown({"kill_soak_postgresql": soak})


def test_the_chaos_report_names_the_users_postgresql_server_without_its_credentials(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, pg_cluster: Any) -> None:
    """The chaos suite started its PostgreSQL as the scale suite does, but its report never said which server it
    was: it now carries the same record (version, ours or the --store one, host/port/database), never the URL's
    user or password."""
    from ansf_mcp.bench import chaos_suite, fuzz
    from ansf_mcp.bench.context import SuiteContext

    # Only the server record and the report are under test: every check is a stub.
    monkeypatch.setattr(chaos_suite, "kill_soak", lambda *a, **k: {})
    monkeypatch.setattr(chaos_suite, "shared_directory", lambda *a, servers, **k: {
        "servers": servers, "claims": 0, "duplicates": [], "errors": []})
    monkeypatch.setattr(fuzz, "fuzz_tools", lambda *a, **k: {})
    url = store_role_url(pg_cluster, "chaos_report_reader")
    result = chaos_suite.run(SuiteContext(quick=True, project=tmp_path, data_dir=tmp_path, store=url))
    text = chaos_suite.markdown(result)
    assert text.splitlines()[0] == server_line(result["postgresql"]), text
    assert_store_server_named(result, text, pg_cluster, "chaos_report_reader")


def test_a_chaos_report_without_a_server_record_says_why() -> None:
    from ansf_mcp.bench.chaos_suite import markdown

    soak = {"kills": 1, "tasks": 1, "lost": [], "succeeded_twice": [], "double_claims": [], "missing": []}
    assert markdown({"kill_soak": soak}).startswith("| check |")  # SQLite only, stored: nothing to name
    assert markdown({"kill_soak_postgresql": soak}).startswith(
        "PostgreSQL server: not recorded (a report stored before it was).\n")
    skipped = {"skipped": "PostgreSQL is not installed and --store names no server"}
    assert markdown({"postgresql": skipped, "kill_soak": soak}).startswith(
        "PostgreSQL server: none (PostgreSQL is not installed and --store names no server).\n")


def test_two_suite_runs_in_one_process_on_one_store_server_get_databases_of_their_own(pg_cluster: Any) -> None:
    """Each run counted its scratch databases from 1 under the process's id, so a second run in the same process
    (the chaos suite after the scale one, or the benchmark tool asked twice) hit DuplicateDatabase."""
    from types import SimpleNamespace

    from ansf_mcp.bench.pgcluster import postgres

    ctx = SimpleNamespace(store=pg_cluster.url())
    with postgres(ctx) as first, postgres(ctx) as second:
        assert first() != second()


def test_a_suite_run_on_a_store_server_leaves_no_scratch_database_there(pg_cluster: Any) -> None:
    """The suites make their scratch databases on the user's --store server; they were never dropped, so each run
    left its databases behind on a server that is not ours. One a session still holds goes too."""
    from types import SimpleNamespace

    import psycopg

    from ansf_mcp.bench.pgcluster import postgres

    def scratch() -> set[str]:
        with psycopg.connect(pg_cluster.url()) as conn:
            return {r[0] for r in conn.execute("SELECT datname FROM pg_database WHERE datname LIKE 'ansf_scale_%'")}

    before = scratch()
    with postgres(SimpleNamespace(store=pg_cluster.url())) as fresh:
        urls = [fresh(), fresh()]
        held = psycopg.connect(urls[1])  # a replica or agent the suite killed may leave a session open
        assert len(scratch() - before) == 2
    try:
        assert scratch() == before
    finally:
        held.close()


def test_a_scratch_database_left_by_a_dead_run_with_this_pid_is_no_obstacle(pg_cluster: Any, monkeypatch) -> None:
    """A run killed before it dropped its scratch databases leaves them behind; a later process given the same pid
    asked for the same names and failed with DuplicateDatabase."""
    import itertools
    import os
    from types import SimpleNamespace

    import psycopg

    from ansf_mcp.bench import pgcluster

    monkeypatch.setattr(pgcluster, "_STORE_NAMES", itertools.count(1))
    left = f"ansf_scale_{os.getpid()}_1"
    pg_cluster.admin(f"CREATE DATABASE {left}")
    try:
        with pgcluster.postgres(SimpleNamespace(store=pg_cluster.url())) as fresh:
            made = fresh().rsplit("/", 1)[1]  # used to raise DuplicateDatabase
            with psycopg.connect(pg_cluster.url()) as conn:
                assert conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (made,)).fetchone()
    finally:
        pg_cluster.admin(f"DROP DATABASE {left}")


def test_a_scratch_database_url_keeps_the_store_urls_options() -> None:
    """The scratch URL was the --store URL cut at its last '/': its options (sslmode, ...) were lost, and a URL
    without a database part lost its host."""
    from ansf_mcp.bench.pgcluster import _with_database

    assert _with_database("postgresql://u:pw@db.example:6432/app?sslmode=require", "ansf_scale_1") == \
        "postgresql://u:pw@db.example:6432/ansf_scale_1?sslmode=require"
    assert _with_database("postgresql://db.example", "ansf_scale_1") == "postgresql://db.example/ansf_scale_1"
