"""The dashboard listens instead of polling on PostgreSQL: a claim or an outcome written by another replica (this
test process, with a store of its own) reaches the page's WebSocket within a second, while collection runs once an
hour."""

from __future__ import annotations

import json
import time

import pytest
from websockets.sync.client import connect

from ansf_mcp.board.board import Board
from ansf_mcp.board.models import TaskSpec
from ansf_mcp.store.db import open_store
from tests.board_helpers import agents


def _next_snapshot(ws, deadline: float, collected: set[float] | None = None) -> dict:
    """The next snapshot pushed, passing over the first collection's (pushed as the page connected)."""
    while True:
        message = json.loads(ws.recv(timeout=max(0.01, deadline - time.monotonic())))
        if message["type"] != "snapshot":
            continue
        snapshot = message["snapshot"]
        if collected is not None and not snapshot["live"] and snapshot["ts"] in collected:
            continue
        return snapshot


def test_another_replicas_claim_and_outcome_reach_the_websocket_within_a_second(dashboard_process,
                                                                                pg_cluster) -> None:
    url = pg_cluster.new_database()
    replica = open_store(url)
    try:
        board = Board(replica)
        sw = board.spawn("live", agents("a"), "mesh").swarm_id
        board.coordinate(sw, [TaskSpec(id="t0", description="first"), TaskSpec(id="t1", description="second")],
                         "round-robin")
        agent = board.get_task(sw, "t0").task.assignee
        base = dashboard_process.start(env={"ANSF_STORE": url, "ANSF_DASHBOARD_INTERVAL_S": "3600"})
        with connect(base.replace("http://", "ws://") + "/ws", open_timeout=5) as ws:
            hello = json.loads(ws.recv(timeout=10))
            assert hello["type"] == "hello"
            # The first collection (in hello, or pushed when it finishes) is the last one for an hour: only the
            # store's news can bring another snapshot.
            first = hello["snapshot"] or _next_snapshot(ws, time.monotonic() + 20)
            collected = {first["ts"]}
            claim = board.claim_next(sw, agent)
            assert claim.claimed
            sent = time.monotonic()
            live = _next_snapshot(ws, sent + 1.0, collected)
            assert live["live"] and live["tasks"]["claimed"] == 1 and live["tasks"]["ready"] == 1
            assert time.monotonic() - sent < 1.0
            board.report(sw, "t0", agent, True, "done", claim=claim.claim)
            sent = time.monotonic()
            live = _next_snapshot(ws, sent + 1.0)
            assert live["tasks"]["succeeded"] == 1 and live["tasks"]["claimed"] == 0
            assert time.monotonic() - sent < 1.0
    finally:
        replica.close()


@pytest.mark.anyio
async def test_board_news_pushes_a_live_snapshot_with_tasks_read_again(settings) -> None:
    """In one process (the dashboard mounted into a server, either engine): news under any key wakes the
    listener, and the pushed snapshot carries tasks and claims read again, nothing else re-measured or stored."""
    from ansf_mcp.dashboard.app import Dashboard
    from ansf_mcp.dashboard.config import DashboardConfig
    from ansf_mcp.runtime import Runtime

    store = open_store(settings.store_spec)
    try:
        runtime = Runtime(settings=settings, store=store)
        dash = Dashboard(runtime, DashboardConfig(interval_s=3600))
        sent: list[dict] = []

        async def broadcast(message: dict) -> None:
            sent.append(message)

        dash.hub.broadcast = broadcast  # type: ignore[method-assign]
        first = await dash.board_changed()  # nothing collected yet: a full collection
        assert first is not None and not first.live
        board = Board(store)
        sw = board.spawn("live", agents("a"), "mesh").swarm_id
        board.coordinate(sw, [TaskSpec(id="t0", description="first")], "round-robin")
        seen = store.any_news_version()
        board.claim_next(sw, board.get_task(sw, "t0").task.assignee)
        assert store.wait_any_news(seen, 5.0) > seen  # the claim's news, heard in this process at once
        live = await dash.board_changed()
        assert live is not None and live.live and live.tasks["claimed"] == 1
        assert set(live.points) == {f"tasks.{state}" for state in live.tasks}
        assert (first.rates.claims_total, live.rates.claims_total) == (0, 1)
        assert dash.collector.latest is not None and dash.collector.latest.tasks["claimed"] == 1
        assert [m["snapshot"]["live"] for m in sent if m["type"] == "snapshot"] == [False, True]
        with store.reading() as conn:  # live snapshots persist nothing: the ring holds the one collection
            stamps = {r[0] for r in conn.execute("SELECT DISTINCT ts FROM metric_points").fetchall()}
        assert stamps == {first.ts}
    finally:
        store.close()


def test_news_from_another_replica_wakes_a_waiter_on_any_key(pg_cluster) -> None:
    url = pg_cluster.new_database()
    here, there = open_store(url), open_store(url)
    try:
        assert here.hears_other_processes and here.listening(10.0)
        seen = here.any_news_version()
        there.notify("messages:sw-1")  # sent by the other store: reaches this one only through NOTIFY
        assert here.wait_any_news(seen, 5.0) == seen + 1
    finally:
        here.close()
        there.close()


def test_a_slow_live_reread_widens_the_gap_so_reads_stay_a_tenth_of_a_core() -> None:
    from ansf_mcp.dashboard.app import LIVE_GAP_S, live_gap

    assert live_gap(0.001) == LIVE_GAP_S  # a small board: pushed as often as before
    assert live_gap(0.05) == pytest.approx(0.45)  # 50 ms reads: 10 % of the time spent reading
    assert live_gap(1.0) == pytest.approx(9.0)


@pytest.mark.anyio
async def test_the_listener_waits_by_how_long_the_last_live_reread_took(settings, monkeypatch) -> None:
    import asyncio

    from ansf_mcp.dashboard import app as dashboard_app
    from ansf_mcp.dashboard.app import Dashboard
    from ansf_mcp.dashboard.config import DashboardConfig
    from ansf_mcp.runtime import Runtime

    store = open_store(settings.store_spec)
    try:
        dash = Dashboard(Runtime(settings=settings, store=store), DashboardConfig(interval_s=3600))
        reads: list[float] = []

        await dash.collect_once()  # then news brings a live re-read, not a first collection
        board_now = dash.collector.board_now

        def slow_board_now(*args, **kwargs):
            time.sleep(0.3)  # a board whose re-read is slow
            return board_now(*args, **kwargs)

        def gap(read_s: float) -> float:
            reads.append(read_s)
            return 0.0

        monkeypatch.setattr(dash.collector, "board_now", slow_board_now)
        monkeypatch.setattr(dashboard_app, "live_gap", gap)
        listener = asyncio.create_task(dash._listen())
        await asyncio.sleep(0.2)
        board = Board(store)
        sw = board.spawn("news", agents("a"), "mesh").swarm_id
        board.coordinate(sw, [TaskSpec(id="t0", description="first")], "round-robin")
        board.claim_next(sw, board.get_task(sw, "t0").task.assignee)
        for _ in range(50):
            if reads:
                break
            await asyncio.sleep(0.1)
        listener.cancel()
        assert reads and reads[0] >= 0.3
    finally:
        store.close()
