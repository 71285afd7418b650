"""The board's NOTIFY on PostgreSQL (store/postgres.py: NEWS_LOCK, news_wanted): sent when another process
listens, on every path that sends it (the claim and outcome functions, a batch's commit, a plain notify), and
not when the only listener is the sender's own; a new listener waits for the writers that looked before it."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import psycopg
import pytest

from ansf_mcp.board.board import Board
from ansf_mcp.board.models import TaskSpec
from ansf_mcp.store.db import open_store
from ansf_mcp.store.postgres import NEWS_LOCK, PostgresStore
from tests.board_helpers import FakeClock, agents


@pytest.fixture
def url(pg_cluster) -> str:
    return pg_cluster.new_database()


@pytest.fixture
def here(url: str) -> Iterator[PostgresStore]:
    store = open_store(url)
    assert isinstance(store, PostgresStore)
    yield store
    store.close()


def _probe(url: str) -> psycopg.Connection:
    """A LISTEN connection that is not a replica's (its own application name): it sees what was sent without
    counting as a listener."""
    conn = psycopg.connect(url, autocommit=True, application_name="test probe")
    conn.execute(f"LISTEN {PostgresStore.NEWS_CHANNEL}")
    return conn


def _heard(probe: psycopg.Connection) -> list[str]:
    return [n.payload for n in probe.notifies(timeout=0.5, stop_after=100)]


def _every_path(store: PostgresStore) -> None:
    """A write through each way news leave: a batch (coordinate), the claim and outcome functions, notify."""
    board = Board(store, clock=FakeClock())
    sw = board.spawn("news", agents("a"), "mesh").swarm_id
    board.coordinate(sw, [TaskSpec(id="t0", description="one")], "round-robin")
    agent = board.get_task(sw, "t0").task.assignee
    assert board.claim_next(sw, agent).claimed
    board.report(sw, "t0", agent, True, "done")
    store.notify("messages:" + sw)


def test_a_lone_server_sends_no_notify_and_another_listener_gets_every_one(url: str, here: PostgresStore) -> None:
    probe = _probe(url)
    try:
        assert here.listening(10.0)  # its own listener only: nobody else would hear a NOTIFY
        _every_path(here)
        assert _heard(probe) == []
        there = open_store(url)
        try:
            assert isinstance(there, PostgresStore) and there.listening(10.0)
            seen = there.any_news_version()
            _every_path(here)
            heard = _heard(probe)
            # coordinate's batch, the claim and outcome functions, the plain notify: each path sent its news
            assert len(heard) == 4 and heard[:3] == [heard[0]] * 3 and heard[0].startswith("board:"), heard
            assert heard[3].startswith("messages:"), heard
            assert there.wait_any_news(seen, 5.0) > seen
        finally:
            there.close()
    finally:
        probe.close()


def test_a_writer_without_a_listener_of_its_own_still_notifies_a_listening_replica(url: str,
                                                                                   here: PostgresStore) -> None:
    there = open_store(url)
    try:
        assert isinstance(there, PostgresStore) and there.listening(10.0)
        seen = there.any_news_version()
        _every_path(here)  # `here` never waited, so it has no listener: pid 0 excludes nobody
        assert there.wait_any_news(seen, 5.0) > seen
    finally:
        there.close()


def test_news_go_out_when_the_writer_cannot_see_its_own_listener(url: str, here: PostgresStore) -> None:
    """The activity view is how a writer knows it is alone; where it does not show the writer's own listener
    (names hidden, a listener just replaced), the NOTIFY is sent rather than skipped."""
    probe = _probe(url)
    try:
        assert here.listening(10.0)
        here._listener_pid = 2**31 - 1  # no such backend: its own listener is not seen
        here.notify("messages:x")
        assert _heard(probe) == ["messages:x"]
    finally:
        probe.close()


def test_a_new_listener_waits_for_a_writer_that_looked_before_it_appeared(url: str, here: PostgresStore) -> None:
    writer = psycopg.connect(url, autocommit=True)
    try:
        writer.execute("BEGIN")
        writer.execute("SELECT pg_advisory_xact_lock_shared(%s)", (NEWS_LOCK,))  # a writer between look and commit
        ready = threading.Event()
        waiter = threading.Thread(target=lambda: ready.set() if here.listening(10.0) else None)
        waiter.start()
        assert not ready.wait(1.0)  # LISTEN is in place, but news of that writer could still be missed
        writer.execute("COMMIT")
        assert ready.wait(5.0)
        waiter.join()
    finally:
        writer.close()
