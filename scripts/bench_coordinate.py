"""`coordinate(auto)` 16 agents x 64 tasks: latency in-process and over a real stdio server, two source trees side
by side (issue 16's target: p50 <= 35 ms; server RSS after one such decision <= 400 MB). Prints one JSON object.

    .venv/bin/python scripts/bench_coordinate.py --tree main=/tmp/main-src --tree branch=. --runs 4

Each tree is a checkout of this repository (e.g. `git archive <commit> | tar -x -C DIR`); its `ansf_mcp` is imported
instead of the editable install's (this venv's), with this interpreter's libraries. The board is SIMULATED and the same for every tree:
16 agents (4 roles), 6 rounds of 16 tasks claimed and reported (70 % successes, seeded), then batches of 64 new
tasks decided with `auto` on a growing board. In-process runs (a fresh interpreter per run) and stdio servers (one
per tree, calls alternated A B B A ...) are interleaved tree by tree (in-process runs A B, then B A), so the
shared machine's load hits all alike;
the load average is recorded before and after.
Every latency carries its n; a p95 from fewer than 20 decisions (a p99 from fewer than 100) is left null, with why
under `withheld` (ansf_mcp.system.stats, as in `ansf bench`). In-process runs also report the process's CPU time per
decision, which the machine's load changes far less than wall time.

Only figures measured in the same rounds compare on a shared machine, so `ratios` gives every tree after the first
its ratio to the first (above 1: slower), one per round, as `ratio_summary` keeps them (median, min, max, n):
in-process, per interleaved run (that run's p50 over the first tree's p50 in the same run); over stdio, per block of
4 consecutive A/B pairs (each tree first twice; a short tail joins the block before). The same ratios go to stderr
as one line.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio
import psutil
from mcp import Client, StdioServerParameters

from ansf_mcp.bench.interleave import round_order
from ansf_mcp.system.stats import latency_summary, percentile, quantiles_text, ratio_summary, ratio_text

ROLES = ("backend", "frontend", "tests", "devops")
WORDS = {"backend": "api endpoint database query schema migration", "frontend": "ui button page css layout render",
         "tests": "test fixture coverage flaky assertion mock", "devops": "deploy docker ci pipeline helm release"}

# Runs in a fresh interpreter per tree, in the tree (so `ansf_mcp` is found there first), with the editable install's
# finder (ansf_mcp.tools and ansf_mcp.semantic live in folders of their own) pointed at the tree.
PRELUDE = """
import sys
for finder in sys.meta_path:
    mapping = getattr(sys.modules.get(getattr(finder, '__module__', '')), 'MAPPING', None)
    if isinstance(mapping, dict) and 'ansf_mcp' in mapping:
        mapping.update({{'ansf_mcp': {tree!r} + '/ansf_mcp', 'ansf_mcp.tools': {tree!r} + '/tools',
                        'ansf_mcp.semantic': {tree!r} + '/semantic'}})
"""
IN_PROCESS = PRELUDE + """
import json, random, shutil, tempfile, time
from pathlib import Path
import ansf_mcp
assert ansf_mcp.__file__.startswith({tree!r}), ansf_mcp.__file__
from ansf_mcp.board.models import AgentSpec, TaskSpec
from ansf_mcp.runtime import Runtime
from ansf_mcp.settings import Settings
roles, words = {roles!r}, {words!r}
d = Path(tempfile.mkdtemp(prefix='ansf-cbench-'))
rt = Runtime.open(Settings.load(data_dir=d, project_root=d))
rt.warmer.wait(120)
b = rt.board
agents = [AgentSpec(id=f'agent-{{i}}', role=roles[i % 4], capabilities=words[roles[i % 4]].split()[:3])
          for i in range(16)]
sw = b.spawn('p', agents, 'mesh').swarm_id
rng = random.Random(0)
for r in range(6):
    b.coordinate(sw, [TaskSpec(description=f'round {{r}} ' + ' '.join(rng.sample(words[roles[j % 4]].split(), 3)))
                      for j in range(16)], 'round-robin')
    for i in range(16):
        c = b.claim_next(sw, f'agent-{{i}}')
        if c.task is not None:
            b.report(sw, c.task.id, f'agent-{{i}}', success=rng.random() < 0.7)
def batch(i):
    return [TaskSpec(description=f'Round {{i}}: task {{j}} touching the '
                     + ' '.join(rng.sample(words[roles[j % 4]].split(), 3))) for j in range(64)]
for i in range(3):
    b.coordinate(sw, batch(i), 'auto')
lat, cpu = [], []
for i in range(3, 3 + {calls}):
    tasks = batch(i)
    c, t = time.process_time(), time.perf_counter()
    res = b.coordinate(sw, tasks, 'auto')
    lat.append((time.perf_counter() - t) * 1000)
    cpu.append((time.process_time() - c) * 1000)
print(json.dumps({{'ms': lat, 'cpu_ms': cpu, 'strategy': res.strategy}}))
rt.shutdown()
shutil.rmtree(d, ignore_errors=True)
"""
SERVER = PRELUDE + """
import runpy
import ansf_mcp
assert ansf_mcp.__file__.startswith({tree!r}), ansf_mcp.__file__
sys.argv = ['ansf', 'serve', '--standalone', '--data-dir', {data_dir!r}]
runpy.run_module('ansf_mcp', run_name='__main__', alter_sys=True)
"""


def percentiles(ms: list[float]) -> dict[str, Any]:
    """Milliseconds in; the suites' summary out (n, p50..p99 with a tail withheld below its sample count, max,
    mean) plus the minimum, and `text`, "p50 / p95" as the reports print it. The script's own p95 had been the
    slowest call or two under another name whenever a run was given few decisions."""
    out = latency_summary([v / 1000 for v in ms])
    out["min_ms"] = round(min(ms), 4)
    out["text"] = quantiles_text(out, (50, 95), 2)
    return out


def in_process_summary(per_run: list[dict[str, list[float]]]) -> dict[str, Any]:
    """One tree's in-process runs: the summary over all their decisions, each run's p50 with its n (the script's
    own median had no n, and gave a figure from a single decision as readily as from twenty), and the CPU time."""
    runs = [percentiles(r["ms"]) for r in per_run]
    return {
        **percentiles([x for r in per_run for x in r["ms"]]),
        "p50_per_run": [{"n": run["n"], "p50_ms": run["p50_ms"]} for run in runs],
        # Wall time is what a caller waits; the process's CPU time is what the decision costs, which the load
        # of a shared machine changes far less.
        "cpu": percentiles([x for r in per_run for x in r["cpu_ms"]]),
    }


# Pairs of stdio calls per ratio round. One pair's ratio is mostly the jitter of two single round trips on a shared
# machine (a few ms on ~30); the median of 4 pairs damps one slow call, and an even count lets each tree go first
# equally often (the calls alternate A B / B A), while a block of ~0.25 s is still short enough that both trees meet
# the same load.
STDIO_BLOCK = 4


def stdio_blocks(calls: int, size: int = STDIO_BLOCK) -> list[tuple[int, int]]:
    """[start, end) of each ratio round over `calls` alternated calls; a tail shorter than `size` joins the block
    before (a round of one or two pairs would be the noisiest of all), and fewer calls than `size` make one round."""
    starts = list(range(0, calls, size))
    if len(starts) > 1 and calls - starts[-1] < size:
        starts.pop()
    return list(zip(starts, [*starts[1:], calls], strict=True))


def ratios_to_first(in_process_ms: dict[str, list[list[float]]], stdio_ms: dict[str, list[float]]) -> dict[str, Any]:
    """Every tree after the first against the first, one ratio per round: per interleaved in-process run (p50 over
    p50) and per `stdio_blocks` block of stdio calls (median over median)."""
    labels = list(in_process_ms)
    first = labels[0]
    out: dict[str, Any] = {"reference": first, "figure": "p50 ratio to the reference (above 1: slower)",
                           "stdio_pairs_per_round": STDIO_BLOCK, "in_process": {}, "stdio": {}}
    for label in labels[1:]:
        out["in_process"][label] = ratio_summary([percentile(mine, 50) / percentile(ref, 50) for mine, ref
                                                  in zip(in_process_ms[label], in_process_ms[first], strict=True)])
        out["stdio"][label] = ratio_summary([percentile(stdio_ms[label][a:b], 50) / percentile(stdio_ms[first][a:b], 50)
                                             for a, b in stdio_blocks(len(stdio_ms[first]))])
    return out


def ratios_line(ratios: dict[str, Any]) -> str:
    """`ratios` as one line of text."""
    parts = [f"{label}: in-process {ratio_text(ratios['in_process'][label])}, stdio {ratio_text(ratios['stdio'][label])}"
             for label in ratios["in_process"]]
    return f"p50 ratio to {ratios['reference']} per round: " + "; ".join(parts)


def in_process(tree: str, calls: int) -> dict[str, list[float]]:
    code = IN_PROCESS.format(tree=tree, roles=ROLES, words=WORDS, calls=calls)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600, cwd=tree,
                         env={**os.environ, "ANSF_WARMUP": "1"})
    if out.returncode:
        raise RuntimeError(f"in-process run of {tree} failed: {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


async def _call(client: Client, tool: str, args: dict[str, Any]) -> tuple[float, Any]:
    t = time.perf_counter()
    result = await client.call_tool(tool, args)
    elapsed = (time.perf_counter() - t) * 1000
    if result.is_error:
        raise RuntimeError(f"{tool} failed: {result.content[0].text}")
    return elapsed, result.structured_content


async def _board(client: Client, seed: int) -> str:
    import random

    rng = random.Random(seed)
    agents = [{"id": f"agent-{i}", "role": ROLES[i % 4], "capabilities": WORDS[ROLES[i % 4]].split()[:3]}
              for i in range(16)]
    _, swarm = await _call(client, "spawn_swarm", {"name": "bench", "agents": agents})
    sw = swarm["swarm_id"]
    for r in range(6):
        tasks = [{"description": f"round {r} " + " ".join(rng.sample(WORDS[ROLES[j % 4]].split(), 3))}
                 for j in range(16)]
        await _call(client, "coordinate", {"swarm_id": sw, "tasks": tasks, "strategy": "round-robin"})
        for i in range(16):
            _, claim = await _call(client, "next_task", {"swarm_id": sw, "agent_id": f"agent-{i}"})
            if claim["claimed"]:
                await _call(client, "report_outcome", {"swarm_id": sw, "agent_id": f"agent-{i}",
                                                       "task_id": claim["task"]["id"], "success": rng.random() < 0.7})
    return sw


def _batch(i: int) -> list[dict[str, str]]:
    import random

    rng = random.Random(1000 + i)
    return [{"description": f"Round {i}: task {j} touching the " + " ".join(rng.sample(WORDS[ROLES[j % 4]].split(), 3))}
            for j in range(64)]


def _server_pid(data_dir: str) -> psutil.Process:
    for child in psutil.Process().children(recursive=True):
        try:
            if data_dir in " ".join(child.cmdline()):
                return child
        except psutil.Error:
            continue
    raise RuntimeError(f"no server with data directory {data_dir}")


async def over_stdio(trees: dict[str, str], calls: int) -> dict[str, Any]:
    from contextlib import AsyncExitStack

    out: dict[str, Any] = {}
    async with AsyncExitStack() as stack:
        clients, swarms, procs, dirs = {}, {}, {}, {}
        for label, tree in trees.items():
            data_dir = dirs[label] = tempfile.mkdtemp(prefix=f"ansf-cbench-{label}-")
            params = StdioServerParameters(command=sys.executable,
                                           args=["-c", SERVER.format(tree=tree, data_dir=data_dir)], cwd=tree,
                                           env={"ANSF_WARMUP": "1", "PATH": os.environ.get("PATH", "")})
            clients[label] = await stack.enter_async_context(Client(params, mode="legacy"))
            swarms[label] = await _board(clients[label], 0)
            procs[label] = _server_pid(data_dir)
        for label, client in clients.items():
            await _call(client, "coordinate", {"swarm_id": swarms[label], "tasks": _batch(0), "strategy": "auto"})
            out[label] = {"rss_after_first_auto_mib": round(procs[label].memory_info().rss / 2**20, 1), "ms": []}
        for i in range(1, 3):  # warm-up, not recorded
            for label, client in clients.items():
                await _call(client, "coordinate", {"swarm_id": swarms[label], "tasks": _batch(i), "strategy": "auto"})
        for i in range(3, 3 + calls):
            for label in round_order(list(clients), i - 3):  # calls 0-2 were the first decision and the warm-up
                elapsed, res = await _call(clients[label], "coordinate",
                                           {"swarm_id": swarms[label], "tasks": _batch(i), "strategy": "auto"})
                out[label]["ms"].append(elapsed)
                out[label]["strategy"] = res["strategy"]
        for label in clients:
            out[label]["rss_at_end_mib"] = round(procs[label].memory_info().rss / 2**20, 1)
    for label, data_dir in dirs.items():
        # The server's own figure for each measured decision (decide() alone, as the latency alert reads it).
        db = sqlite3.connect(Path(data_dir) / "ansf.sqlite3")
        rows = db.execute("SELECT elapsed_ms FROM decisions WHERE tasks = 64 AND strategy != 'round-robin' "
                          "ORDER BY id").fetchall()
        db.close()
        out[label]["decide_ms"] = percentiles([r[0] for r in rows[-calls:]])
        shutil.rmtree(data_dir, ignore_errors=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tree", action="append", required=True, help="LABEL=DIR, a source tree (twice or more)")
    parser.add_argument("--runs", type=int, default=4, help="in-process runs per tree, interleaved")
    parser.add_argument("--calls", type=int, default=20, help="decisions measured per in-process run")
    parser.add_argument("--stdio-calls", type=int, default=40, help="decisions measured per stdio server")
    args = parser.parse_args()
    trees = {label: str(Path(d).resolve()) for label, d in (t.split("=", 1) for t in args.tree)}
    report: dict[str, Any] = {"load_before": os.getloadavg(), "cpus": os.cpu_count(), "in_process": {}}
    runs: dict[str, list[dict[str, list[float]]]] = {label: [] for label in trees}
    for i in range(args.runs):
        # A B, then B A: the tree that goes first in a run does not always meet the same moment of the load.
        for label, tree in round_order(list(trees.items()), i):
            runs[label].append(in_process(tree, args.calls))
    for label, per_run in runs.items():
        report["in_process"][label] = in_process_summary(per_run)
    stdio = anyio.run(over_stdio, trees, args.stdio_calls)
    stdio_ms = {label: v.pop("ms") for label, v in stdio.items()}
    report["stdio"] = {label: {**percentiles(stdio_ms[label]), **v} for label, v in stdio.items()}
    report["load_after"] = os.getloadavg()
    if len(trees) > 1:
        report["ratios"] = ratios_to_first({label: [r["ms"] for r in per_run] for label, per_run in runs.items()},
                                           stdio_ms)
        print(ratios_line(report["ratios"]), file=sys.stderr)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
