"""The dashboard listens instead of polling on PostgreSQL: a claim or an outcome written by another replica (this
test process, with a store of its own) reaches the page's WebSocket within a second, while collection runs once an
hour."""

from __future__ import annotations

import json
import time

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
