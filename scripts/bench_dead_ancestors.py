"""coordinate's read on a board where a task waits behind a long open chain: 1 000 new tasks, each depending on one
task of a 1 000-task open chain, with one failed task elsewhere on the board (so the failed-ancestor walk runs and
finds nothing). Prints, per engine, the median of `--runs` timings of `build_episode` (the whole read) and of the
walk alone, in milliseconds. A scratch measurement, not a test: run it before and after a change to the walk.

    .venv/bin/python scripts/bench_dead_ancestors.py --engine sqlite --engine postgresql [--analyze]

A fresh board has no planner statistics (PostgreSQL plans its joins blind until autovacuum analyzes the tables);
`--analyze` times the board as it is once they are gathered.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from ansf_mcp.board import assign, swarms
from ansf_mcp.board.models import AgentSpec, TaskSpec
from ansf_mcp.board.tasks import insert_tasks
from ansf_mcp.store.db import Store, open_store
from ansf_mcp.system.stats import percentile

CHAIN = 1_000


def board(store: Store) -> tuple[str, list[TaskSpec]]:
    """The swarm, and the new tasks coordinate would be given (one behind each task of the chain)."""
    sw = swarms.spawn(store, "bench", [AgentSpec(role="backend", capacity=4)], "mesh")
    chain = [TaskSpec(id=f"c{i}", description=f"step {i}", depends_on=[f"c{i - 1}"] if i else [])
             for i in range(CHAIN)]
    with store.transaction() as conn:
        insert_tasks(conn, sw, [TaskSpec(id="elsewhere", description="unrelated")])
        insert_tasks(conn, sw, chain)
        conn.execute("UPDATE tasks SET status = 'failed' WHERE swarm_id = ? AND id = 'elsewhere'", (sw,))
    return sw, [TaskSpec(id=f"n{i}", description=f"after step {i}", depends_on=[f"c{i}"]) for i in range(CHAIN)]


def measure(store: Store, runs: int, analyze: bool) -> dict[str, float]:
    sw, specs = board(store)
    if analyze:  # the planner's statistics, as PostgreSQL's autovacuum gathers them soon after such a write
        with store.transaction() as conn:
            conn.execute("ANALYZE")
    origins = [f"c{i}" for i in range(CHAIN)]
    whole, walk = [], []
    for _ in range(runs):
        started = time.perf_counter()
        assign.build_episode(store, sw, specs)
        whole.append((time.perf_counter() - started) * 1000)
        with store.reading() as conn:
            started = time.perf_counter()
            found = assign._dead_ancestors(conn, sw, origins)
            walk.append((time.perf_counter() - started) * 1000)
        assert found == {}, found  # the failed task is not behind the chain
    return {"build_episode_ms": round(percentile(whole, 50), 1), "walk_ms": round(percentile(walk, 50), 1),
            "runs": runs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", action="append", choices=("sqlite", "postgresql"))
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--analyze", action="store_true", help="ANALYZE the board before timing")
    args = parser.parse_args()
    out = {}
    for engine in args.engine or ["sqlite"]:
        if engine == "sqlite":
            with tempfile.TemporaryDirectory() as tmp:
                store = open_store(Path(tmp) / "db.sqlite3")
                try:
                    out[engine] = measure(store, args.runs, args.analyze)
                finally:
                    store.close()
        else:
            from ansf_mcp.bench.pgcluster import remove, start_cluster

            cluster = start_cluster()
            try:
                store = open_store(cluster.new_database())
                try:
                    out[engine] = measure(store, args.runs, args.analyze)
                finally:
                    store.close()
            finally:
                remove(cluster)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
