"""What the recalibrated live record costs `swarm_status` (Board.view): a swarm with 600 outcomes scored for each of
four estimators (so each keeps its newest 512 pairs) and 64 tasks on the board, read with the raw-sums reader the
record replaced ("before"), and with the record as it is now, first read after an outcome (the board's memo empty:
pairs read and recalibrated) and read again (the memo's); interleaved in the same run, the three rotating which
goes first each round (A B C, B C A, C A B: ansf_mcp.bench.interleave); prints one JSON line.

    .venv/bin/python scripts/bench_live_record.py --reads 300
    .venv/bin/python scripts/bench_live_record.py --reads 300 --store postgresql://...   # a database of your own

SIMULATED outcomes (a fixed seed); everything is written to a temporary data directory unless --store is given.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path

from ansf_mcp.bench.interleave import rotation_order
from ansf_mcp.board import scores
from ansf_mcp.board.board import Board
from ansf_mcp.board.models import AgentSpec, TaskSpec
from ansf_mcp.coordinator.scoring import Tally
from ansf_mcp.store.base import Connection
from ansf_mcp.store.db import Store, open_store
from ansf_mcp.system.stats import latency_summary

ESTIMATORS = ("neural", "similarity", "history", "p_success")


def raw_tallies(conn: Connection, swarm_id: str, memo: object = None) -> dict[str, Tally]:
    """The reader before the ring: raw sums alone."""
    return {
        r["estimator"]: Tally(n=r["n"], log_loss_sum=r["log_loss_sum"], brier_sum=r["brier_sum"])
        for r in conn.execute(
            "SELECT estimator, n, log_loss_sum, brier_sum FROM estimator_scores WHERE swarm_id = ?", (swarm_id,)
        )
    }


def seed(store: Store, outcomes: int) -> str:
    board = Board(store)
    sw = board.spawn("bench", [AgentSpec(role=r) for r in ("backend", "frontend", "qa", "docs")], "mesh").swarm_id
    board.coordinate(sw, [TaskSpec(description=f"Task number {i} of the bench") for i in range(64)], "round-robin")
    rng = random.Random(16)
    with store.transaction() as conn:
        for i in range(outcomes):
            q = rng.uniform(0.05, 0.95)
            success = rng.random() < q
            conn.executemany(
                "INSERT INTO predictions (swarm_id, task_id, agent_id, estimator, p) VALUES (?, ?, ?, ?, ?)",
                [(sw, f"done-{i}", "agent-0", name, min(max(q + rng.gauss(0, 0.1 * k), 0.0), 1.0))
                 for k, name in enumerate(ESTIMATORS)])
            rows = store.batch(conn, [(scores.PREDICTIONS_SQL, (sw, f"done-{i}", "agent-0"))])[0]
            store.batch(conn, scores.outcome_statements(sw, f"done-{i}", "agent-0", success, rows))
    return sw


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reads", type=int, default=300)
    ap.add_argument("--outcomes", type=int, default=600)
    ap.add_argument("--store", help="a PostgreSQL URL (default: SQLite in a temporary directory)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(args.store or Path(tmp) / "db.sqlite3")
        try:
            sw = seed(store, args.outcomes)
            board = Board(store)
            kept = scores.tallies
            times: dict[str, list[float]] = {"before": [], "after_first_read": [], "after_again": []}
            # Numpy and the first plans, off the clock; it also fills the memo, so "after_again" finds it filled
            # even in a round where it goes first (the raw reader never touches it).
            board.view(sw)
            first = dict.fromkeys(times, 0)
            for r in range(args.reads):
                order = rotation_order(list(times), r)
                first[order[0]] += 1
                for which in order:
                    scores.tallies = raw_tallies if which == "before" else kept  # type: ignore[assignment]
                    if which == "after_first_read":  # as after an outcome: the memo has nothing for this swarm
                        board.records = scores.Records()
                    started = time.perf_counter()
                    view = board.view(sw)
                    times[which].append(time.perf_counter() - started)
            scores.tallies = kept  # type: ignore[assignment]
            with store.reading() as conn:
                pairs = conn.execute("SELECT COUNT(*) FROM estimator_outcomes").fetchone()[0]
            out = {
                "engine": store.engine, "outcomes_per_estimator": args.outcomes, "kept_pairs": pairs,
                "tasks": len(view.tasks), "reads_each": args.reads, "first_in_round": first,
                # The suites' summary of each: n beside the figures, a tail withheld below its sample count.
                "read": {k: latency_summary(v) for k, v in times.items()},
                "auto_uses": view.auto_uses,
            }
            print(json.dumps(out))
        finally:
            store.close()


if __name__ == "__main__":
    main()
