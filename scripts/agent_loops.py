"""Measure agent loops on the board (issue 18 targets): N agents, each through its own stdio server (legacy
handshake, as Claude Desktop or an IDE starts one per agent), all on one SQLite board, work on dependency chains
with failing tasks until next_task says *done* or *blocked*.

The work is simulated: each attempt takes a random 20-100 ms and fails with probability --fail-rate, and the
tasks named "doomed" fail every attempt (their chains end blocked). Bounded: --timeout-s for the whole run.

    .venv/bin/python scripts/agent_loops.py --agents 16 --chains 16 --length 4

Prints one JSON object: how each loop ended, tasks by final state, tasks lost or skipped, the share of empty
(wait) next_task answers, the share of idle polls made while ready work waited, and next_task latencies (n, p50..p99
with a tail withheld below its sample count, as in `ansf bench`).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import anyio
from mcp import Client, StdioServerParameters

from ansf_mcp.system.stats import latency_summary


async def call(client: Client, tool: str, **args) -> dict:
    result = await client.call_tool(tool, args)
    if result.is_error:
        raise RuntimeError(f"{tool}: {result.content[0].text}")
    return result.structured_content


def chain_tasks(chains: int, length: int, doomed: set[str]) -> list[dict]:
    roles = ("backend", "frontend", "tests", "docs")
    return [
        {"id": f"c{c}-{k}", "depends_on": [f"c{c}-{k - 1}"] if k else [],
         "description": f"{roles[(c + k) % 4]}: part {c} step {k}" + (" (doomed)" if f"c{c}-{k}" in doomed else "")}
        for c in range(chains) for k in range(length)
    ]


async def agent_loop(client: Client, sw: str, agent: str, rng: random.Random, args: argparse.Namespace,
                     doomed: set[str], stats: dict) -> None:
    while True:
        started = time.perf_counter()
        got = await call(client, "next_task", swarm_id=sw, agent_id=agent, wait_s=args.wait_s)
        stats["latency_s"].append(time.perf_counter() - started - (got.get("waited_s") or 0))
        stats["calls"] += 1
        if got["status"] == "assigned":
            task = got["task"]["id"]
            await anyio.sleep(rng.uniform(0.02, 0.1))  # simulated work
            ok = task not in doomed and rng.random() >= args.fail_rate
            await call(client, "report_outcome", swarm_id=sw, task_id=task, agent_id=agent, success=ok,
                       summary="done" if ok else "simulated failure", claim=got["claim"])
            stats["attempts"][task] += 1
            continue
        if got["status"] in ("done", "blocked"):
            stats["ends"][agent] = (got["status"], got.get("blocked_by", []))
            return
        stats["empty"] += 1
        ready = (await call(client, "swarm_status", swarm_id=sw, state=["ready"], limit=0))["swarm"]["tasks_matching"]
        if ready:
            stats["idle_with_ready"] += 1


async def main(args: argparse.Namespace) -> dict:
    data_dir = Path(tempfile.mkdtemp(prefix="ansf-loops-"))
    try:
        return await run(args, data_dir)
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


async def run(args: argparse.Namespace, data_dir: Path) -> dict:
    rng = random.Random(args.seed)
    doomed = {f"c{c}-1" for c in range(0, args.chains, max(1, args.chains // args.doomed))} if args.doomed else set()
    env = {**os.environ, "ANSF_DATA_DIR": str(data_dir), "ANSF_WARMUP": "0", "ANSF_SEMANTIC_INDEX": "0",
           "ANSF_TAKEOVER_GRACE_S": "600"}
    env.pop("ANSF_TOKEN", None)
    params = StdioServerParameters(command=sys.executable, args=["-m", "ansf_mcp", "serve"], env=env,
                                   cwd=str(data_dir))
    stats = {"calls": 0, "empty": 0, "idle_with_ready": 0, "latency_s": [], "ends": {}, "attempts": Counter()}
    async with contextlib.AsyncExitStack() as stack:
        t0 = time.perf_counter()
        clients = []
        for _ in range(args.agents):  # one after another: the machine is shared
            clients.append(await stack.enter_async_context(Client(params, mode="legacy")))
        connect_s = time.perf_counter() - t0
        lead = clients[0]
        sw = (await call(lead, "spawn_swarm", name="loops",
                         agents=[{"role": r, "capabilities": [r]}
                                 for r in ("backend", "frontend", "tests", "docs") * (args.agents // 4)]))["swarm_id"]
        t1 = time.perf_counter()
        plan = await call(lead, "coordinate", swarm_id=sw, tasks=chain_tasks(args.chains, args.length, doomed),
                          strategy=args.strategy)
        coordinate_s = time.perf_counter() - t1
        t2 = time.perf_counter()
        with anyio.fail_after(args.timeout_s):
            async with anyio.create_task_group() as tg:
                for i, client in enumerate(clients):
                    tg.start_soon(agent_loop, client, sw, f"agent-{i}", random.Random(rng.random()), args, doomed,
                                  stats)
        run_s = time.perf_counter() - t2
        final = {t["id"]: t for t in (await call(lead, "swarm_status", swarm_id=sw, limit=500))["swarm"]["tasks"]}
    states = Counter(t["state"] for t in final.values())
    failed = {tid for tid, t in final.items() if t["state"] == "failed"}

    def dead_end(tid: str) -> bool:  # blocked, with a failed task upstream
        return any(d in failed or (final[d]["state"] == "blocked" and dead_end(d)) for d in final[tid]["depends_on"])

    lost = [tid for tid, t in final.items()
            if t["state"] in ("ready", "claimed") or (t["state"] == "blocked" and not dead_end(tid))]
    return {
        "agents": args.agents, "tasks": len(final), "doomed": sorted(doomed), "fail_rate": args.fail_rate,
        "wait_s": args.wait_s, "strategy": plan["strategy"],
        "agents_with_work_planned": len({a["agent"] for a in plan["assignments"]}),
        "loops_ended": Counter(status for status, _ in stats["ends"].values()),
        "loops_not_ended": args.agents - len(stats["ends"]),
        "blocked_by": sorted({x for _, by in stats["ends"].values() for x in by}),
        "final_states": dict(states), "lost_or_skipped": lost,
        "next_task_calls": stats["calls"], "empty_answers": stats["empty"],
        "empty_share": round(stats["empty"] / stats["calls"], 4),
        "idle_polls_with_ready_work": stats["idle_with_ready"],
        "idle_with_ready_share_of_calls": round(stats["idle_with_ready"] / stats["calls"], 4),
        "attempts": sum(stats["attempts"].values()),
        # The suites' summary: n beside the figures, and no p99 from fewer than 100 calls (it was the slowest
        # call or two under another name).
        "next_task_latency": latency_summary(stats["latency_s"]),
        "connect_s": round(connect_s, 1), "coordinate_s": round(coordinate_s, 2), "run_s": round(run_s, 1),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=16)
    parser.add_argument("--chains", type=int, default=16)
    parser.add_argument("--length", type=int, default=4)
    parser.add_argument("--doomed", type=int, default=3, help="chains whose second task fails every attempt")
    parser.add_argument("--fail-rate", type=float, default=0.2)
    parser.add_argument("--wait-s", type=float, default=10.0)
    parser.add_argument("--strategy", default="auto")
    parser.add_argument("--seed", type=int, default=18)
    parser.add_argument("--timeout-s", type=float, default=300.0)
    print(json.dumps(anyio.run(main, parser.parse_args()), indent=1))
