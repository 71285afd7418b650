"""16 agents and a lead over stdio, on shared (relayed) or standalone servers: total RSS, connect time, first
`coordinate` latency and `next_task` percentiles. One run per mode; prints one JSON line per mode.

    .venv/bin/python scripts/bench_relay.py --mode shared --agents 16 --tasks 128
    .venv/bin/python scripts/bench_relay.py --mode standalone --agents 16 --tasks 128
    .venv/bin/python scripts/bench_relay.py --mode shared --work-s 0.5   # agents that work between calls
    .venv/bin/python scripts/bench_relay.py --mode shared --trace        # where the slowest 1 % spent its time
    .venv/bin/python scripts/bench_relay.py --mode shared --clients one  # all 17 MCP clients in this one process

Each agent is an MCP client process of its own (`--clients process`, the default), as with sixteen IDE windows: the
agents' processes start together, connect, wait for the go, run their loops and hand their per-call latencies
back. `--clients one` runs all 17 clients in the benchmark's one process instead (the first version of this
benchmark): cheaper for the machine, but that process's event loop and the SDK client's checks of every answer
then sit in every agent's latency.

Everything runs with the user's defaults (`--env ANSF_X=V` changes one) in a fresh temporary data directory and a
small temporary project; the lead connects first (it creates the store), then the agents all at once; all processes
it starts are stopped at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import anyio
import anyio.abc
import psutil
from anyio.streams.buffered import BufferedByteReceiveStream
from mcp import Client, StdioServerParameters


def cpu_by_part(data_dir: Path, clients: list[int]) -> dict[str, float]:
    """CPU seconds (user + system) so far of the MCP client processes (this one and the agents' processes), the
    relays (or standalone servers) they started, and the shared server with its children."""
    def cpu(p: psutil.Process) -> float:
        try:
            t = p.cpu_times()
            return t.user + t.system
        except psutil.NoSuchProcess:
            return 0.0

    mine, server, relays = client_and_server_side(data_dir, clients)
    return {"client": sum(map(cpu, mine)), "relays": sum(map(cpu, relays)), "server": sum(map(cpu, server))}


def client_and_server_side(data_dir: Path, clients: list[int]) -> tuple[list[psutil.Process], ...]:
    """(client processes, shared server processes, relays or standalone servers) now."""
    me = psutil.Process()
    mine = [me]
    for pid in clients:
        try:
            mine.append(psutil.Process(pid))
        except psutil.NoSuchProcess:
            pass
    server: set[psutil.Process] = set()
    for pid in shared_pids(data_dir):
        try:
            root = psutil.Process(pid)
            server |= {root, *root.children(recursive=True)}
        except psutil.NoSuchProcess:
            pass
    relays = [q for q in me.children(recursive=True) if q not in server and q not in mine]
    return mine, sorted(server, key=lambda q: q.pid), relays


def shared_pids(data_dir: Path) -> list[int]:
    pids = []
    for state in (data_dir / "shared-servers").glob("*.json"):
        pids.append(json.loads(state.read_text())["pid"])
    return pids


async def structured(client: Client, tool: str, **args) -> dict:
    result = await client.call_tool(tool, args)
    if result.is_error:
        raise RuntimeError(f"{tool}: {result.content[0].text}")
    return result.structured_content


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(q / 100 * (len(s) - 1)))]


async def no_validation(name: str, result: object) -> None:
    return None


# The phases of one next_task call, each between two instants of the trace (ansf_mcp/trace.py): (name, (record,
# instant) it starts at, (record, instant) it ends at). Records: client (this process), relay, http (the shared
# server's ASGI app), claim (the board: its worker thread and the store's transaction).
PHASES = [
    ("client_to_relay", ("client", "t0"), ("relay", "read")),
    ("relay_queue", ("relay", "read"), ("relay", "thread")),
    ("relay_to_server", ("relay", "thread"), ("http", "in")),
    ("server_body", ("http", "in"), ("http", "body")),
    ("sdk_in", ("http", "body"), ("claim", "call")),
    ("write_pool_queue", ("claim", "call"), ("claim", "thread")),
    ("write_lock_wait", ("claim", "thread"), ("claim", "lock")),
    ("begin_immediate", ("claim", "lock"), ("claim", "begin")),
    ("sql", ("claim", "begin"), ("claim", "commit0")),
    ("commit", ("claim", "commit0"), ("claim", "commit1")),
    ("thread_after_commit", ("claim", "commit1"), ("claim", "thread_end")),
    ("back_to_loop", ("claim", "thread_end"), ("claim", "back")),
    ("sdk_out", ("claim", "back"), ("http", "data")),
    ("server_to_relay_out", ("http", "data"), ("relay", "written")),
    ("relay_to_client", ("relay", "written"), ("client", "t1")),
]


def tail_breakdown(trace_dir: Path, client: list[dict], share: float = 0.01) -> dict:
    """Where the slowest `share` of next_task calls spent their time, beside the median call: each phase's mean
    (ms) over those calls, and the server's garbage collections that overlapped them."""
    records: dict[str, dict[str, list[dict]]] = {"client": {}, "relay": {}, "http": {}, "claim": {}}
    gcs = []
    for path in trace_dir.glob("trace-*.jsonl"):
        for line in path.read_text().splitlines():
            r = json.loads(line)
            if r["kind"] == "gc":
                gcs.append(r)
            elif r["kind"] == "claim" or r.get("tool") == "next_task":
                records[r["kind"]].setdefault(r["agent"], []).append(r)
    for r in client:
        records["client"].setdefault(r["agent"], []).append(r)
    calls = []
    for agent, mine in records["client"].items():
        ordered = {k: sorted(records[k].get(agent, []), key=lambda r: r.get("read", r.get("in", r.get("call", r.get("t0", 0)))))
                   for k in records}
        n = len(mine)
        if any(len(ordered[k]) != n for k in ordered):
            continue  # a record missing (an error answer): this agent's calls cannot be matched one to one
        for i in range(n):
            parts = {k: ordered[k][i] for k in ordered}
            try:
                phases = {name: (parts[b][bi] - parts[a][ai]) * 1000 for name, (a, ai), (b, bi) in PHASES}
            except KeyError:
                continue
            t0, t1 = parts["http"]["in"], parts["http"]["end"]
            phases["gc_overlap"] = sum((min(t1, g["t1"]) - max(t0, g["t0"])) * 1000 for g in gcs
                                       if g["t0"] < t1 and g["t1"] > t0 and g["pid"] == parts["http"]["pid"])
            calls.append(((parts["client"]["t1"] - parts["client"]["t0"]) * 1000, phases))
    calls.sort(key=lambda c: c[0])
    start = min((r["t0"] for r in client), default=0.0)
    if not calls:
        return {"matched_calls": 0}
    slow = calls[-max(1, round(len(calls) * share)):]
    median = calls[len(calls) // 2]

    def mean(rows: list[tuple[float, dict]], key: str) -> float:
        return round(sum(p[key] for _, p in rows) / len(rows), 2)

    keys = [name for name, _, _ in PHASES] + ["gc_overlap"]
    return {
        "matched_calls": len(calls), "slowest_calls": len(slow),
        "slowest_ms": [round(c[0], 1) for c in slow],
        "slowest_mean_ms": {k: mean(slow, k) for k in keys},
        "median_call_ms": round(median[0], 1),
        "median_call_phases_ms": {k: round(median[1][k], 2) for k in keys},
        "server_gc": {f"gen{g}": sum(1 for r in gcs if r["gen"] == g) for g in (0, 1, 2)},
        "server_gc_max_ms": round(max(((r["t1"] - r["t0"]) * 1000 for r in gcs), default=0.0), 2),
        # Full collections: seconds from the first next_task call (negative: before the agents started), ms.
        "server_gen2_at_s_ms": [(round(r["t0"] - start, 2), round((r["t1"] - r["t0"]) * 1000, 1))
                                for r in sorted(gcs, key=lambda r: r["t0"]) if r["gen"] == 2],
    }


async def agent_loop(c: Client, swarm_id: str, agent_id: str, n_tasks: int, work_s: float, rng: random.Random,
                     trace: bool) -> dict:
    """One agent's loop: claim, (simulated) work, report, until the board has nothing for it. Its next_task
    latencies (s), its trace records and the tasks it reported."""
    out: dict = {"latencies": [], "trace": [], "reported": []}
    for _ in range(n_tasks * 4):  # bounded: more polls than the board can need
        t0 = time.perf_counter()
        m0 = time.monotonic()
        claim = await structured(c, "next_task", swarm_id=swarm_id, agent_id=agent_id)
        out["latencies"].append(time.perf_counter() - t0)
        if trace:
            out["trace"].append({"agent": agent_id, "t0": m0, "t1": time.monotonic()})
        if not claim["claimed"]:
            return out
        if work_s:
            await anyio.sleep(rng.uniform(0, 2 * work_s))  # simulated work between claim and report
        await structured(c, "report_outcome", swarm_id=swarm_id, task_id=claim["task"]["id"],
                         agent_id=agent_id, success=True, summary="done")
        out["reported"].append(claim["task"]["id"])
    return out


async def worker(a: argparse.Namespace) -> None:
    """One agent as a process of its own (`--clients process`): connect through `ansf serve`, say `ready`, read
    the swarm id from stdin (the go), run the loop, print its results as one JSON line."""
    args = ["-m", "ansf_mcp", "serve", "--project", a.project, *(["--standalone"] if a.mode == "standalone" else [])]
    params = StdioServerParameters(command=sys.executable, args=args, env=dict(os.environ), cwd=a.project)
    async with Client(params, mode="legacy") as c:
        if a.no_client_validation:
            c.session.validate_tool_result = no_validation  # type: ignore[method-assign]
        await c.list_tools()
        print("ready", flush=True)
        swarm_id = (await anyio.to_thread.run_sync(sys.stdin.readline)).strip()
        out = await agent_loop(c, swarm_id, a.agent_id, a.tasks, a.work_s, random.Random(a.seed), a.trace)
        print(json.dumps(out), flush=True)
        await anyio.to_thread.run_sync(sys.stdin.readline)  # connected until the benchmark has read memory


async def run(mode: str, n_agents: int, n_tasks: int, settle_s: float, work_s: float,
              extra_env: dict[str, str], validate: bool, trace: bool = False, clients_mode: str = "process") -> dict:
    root = Path(tempfile.mkdtemp(prefix="ansf-relay-bench-"))
    data_dir, project = root / "data", root / "project"
    project.mkdir()
    for i in range(5):  # something for the start-up index to read
        (project / f"mod{i}.py").write_text(f"def f{i}(x):\n    return x + {i}\n\n\nclass C{i}:\n    pass\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSF_")}
    env["ANSF_DATA_DIR"] = str(data_dir)
    env.update(extra_env)
    if trace:
        env["ANSF_TRACE_DIR"] = str(root / "trace")
    args = ["-m", "ansf_mcp", "serve", "--project", str(project)]
    if mode == "standalone":
        args.append("--standalone")
    params = StdioServerParameters(command=sys.executable, args=args, env=env, cwd=str(project))
    in_one = clients_mode == "one"
    n = n_agents + 1
    clients: list[Client] = []
    connected, go, done = anyio.Event(), anyio.Event(), anyio.Event()
    result: dict = {"mode": mode, "clients": clients_mode, "agents": n_agents, "lead": 1, "tasks": n_tasks,
                    "simulated_work_s": work_s, "env": extra_env, "client_validation": validate}
    rng = random.Random(0)
    loops: list[dict] = []
    workers: list[anyio.abc.Process] = []
    swarm: list[str] = []
    ready: list[int] = []

    async def hold() -> None:
        async with Client(params, mode="legacy") as c:
            if not validate:  # the SDK client's jsonschema check of every answer
                c.session.validate_tool_result = no_validation  # type: ignore[method-assign]
            await c.list_tools()  # as clients do on connecting (the SDK client would do it on its first call)
            clients.append(c)
            if in_one and len(clients) == n:  # in process mode the agents' processes say when they are ready
                connected.set()
            await done.wait()

    async def agent_process(i: int) -> None:
        cmd = [sys.executable, __file__, "--worker", "--mode", mode, "--project", str(project),
               "--agent-id", f"agent-{i}", "--tasks", str(n_tasks), "--work-s", str(work_s), "--seed", str(i),
               *([] if validate else ["--no-client-validation"]), *(["--trace"] if trace else [])]
        proc = await anyio.open_process(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=None, env=env,
                                        cwd=str(project))
        workers.append(proc)
        lines = BufferedByteReceiveStream(proc.stdout)  # type: ignore[arg-type]
        said = await lines.receive_until(b"\n", 1 << 10)
        if said != b"ready":
            raise RuntimeError(f"agent-{i} said {said!r} instead of ready")
        ready.append(i)
        if len(ready) == n_agents:
            connected.set()
        await go.wait()
        await proc.stdin.send(f"{swarm[0]}\n".encode())  # type: ignore[union-attr]
        loops.append(json.loads(await lines.receive_until(b"\n", 1 << 26)))
        await done.wait()
        await proc.stdin.aclose()  # type: ignore[union-attr]
        await proc.wait()


    async def agent_in_one(c: Client, i: int) -> None:
        await go.wait()
        loops.append(await agent_loop(c, swarm[0], f"agent-{i}", n_tasks, work_s, rng, trace))

    try:
        async with anyio.create_task_group() as tg:
            t0 = time.perf_counter()
            tg.start_soon(hold)  # the lead first: it makes the fresh store the agents then open
            with anyio.fail_after(600):
                while not clients:
                    await anyio.sleep(0.05)
                for i in range(n_agents):  # all at once
                    tg.start_soon(hold) if in_one else tg.start_soon(agent_process, i)
                await connected.wait()
            result["connect_all_s"] = round(time.perf_counter() - t0, 2)
            lead = clients[0]
            sw = (await structured(lead, "spawn_swarm", name="bench",
                                   agents=[{"role": "backend", "capabilities": ["python"]}] * n_agents))["swarm_id"]
            swarm.append(sw)
            tasks = [{"id": f"t{i}", "description": f"Implement part {i} of the billing API in python",
                      "depends_on": [f"t{i - n_agents}"] if i >= n_agents else []} for i in range(n_tasks)]
            # Whether the start-up warm-up (model load, then a rehearsed decision) was over before the first plan.
            before = (await structured(lead, "system_status"))["components"]
            result["warmup_before_first_coordinate"] = before.get("model_warmup", {}).get("state")
            result["heap_settled_before_first_coordinate"] = before.get("heap", {}).get("settled")
            t1 = time.perf_counter()
            coordinated = await structured(lead, "coordinate", swarm_id=sw, tasks=tasks)
            result["first_coordinate_s"] = round(time.perf_counter() - t1, 3)
            result["coordinate_strategy"] = coordinated.get("strategy")
            client_pids = [p.pid for p in workers]
            result["load_avg_1m_before"] = os.getloadavg()[0]
            cpu0 = cpu_by_part(data_dir, client_pids)
            t2 = time.perf_counter()
            async with anyio.create_task_group() as work:
                if in_one:
                    for i, c in enumerate(clients[1:]):
                        work.start_soon(agent_in_one, c, i)
                go.set()
                while len(loops) < n_agents:  # the agents' results
                    await anyio.sleep(0.05)
            result["work_s"] = round(time.perf_counter() - t2, 2)
            cpu1 = cpu_by_part(data_dir, client_pids)
            latencies = [x for loop in loops for x in loop["latencies"]]
            reported = [x for loop in loops for x in loop["reported"]]
            result["tasks_reported"] = len(reported)
            result["tasks_reported_twice"] = len(reported) - len(set(reported))
            # Where the machine's time went while the agents worked: CPU ms per tool call, by process kind.
            calls = len(latencies) + len(reported)  # next_task and report_outcome calls
            result["cpu_ms_per_call"] = {k: round((cpu1[k] - cpu0[k]) * 1000 / max(1, calls), 2) for k in cpu0}
            result["next_task_calls"] = len(latencies)
            for q in (50, 95, 99):
                result[f"next_task_p{q}_ms"] = round(pct(latencies, q) * 1000, 1)
            result["load_avg_1m"] = os.getloadavg()[0]
            await anyio.sleep(settle_s)  # background warm-up and indexing finish before memory is read
            _, server, relays = client_and_server_side(data_dir, client_pids)
            result["total_rss_mb"] = round(sum(rss(q) for q in [*server, *relays]) / 2**20)
            result["processes"] = len(server) + len(relays)
            if mode == "shared":
                server_rss = sum(rss(q) for q in server)
                result["shared_server_rss_mb"] = round(server_rss / 2**20)
                result["shared_server_processes"] = len(server)
                result["rss_per_relay_mb"] = round(sum(rss(q) for q in relays) / 2**20 / n, 1)
            done.set()
            if trace:
                result["tail"] = tail_breakdown(root / "trace", [r for loop in loops for r in loop["trace"]])
    finally:
        done.set()
        for proc in workers:
            if proc.returncode is None:
                proc.kill()
        for pid in shared_pids(data_dir):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        time.sleep(2)
        shutil.rmtree(root, ignore_errors=True)
    return result


def rss(q: psutil.Process) -> int:
    try:
        return q.memory_info().rss
    except psutil.NoSuchProcess:
        return 0


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--mode", choices=["shared", "standalone"], required=True)
    p.add_argument("--clients", choices=["process", "one"], default="process",
                   help="each agent an MCP client process of its own (as with 16 IDE windows), or all 17 clients "
                   "in this one process")
    p.add_argument("--agents", type=int, default=16)
    p.add_argument("--tasks", type=int, default=128)
    p.add_argument("--settle-s", type=float, default=20.0)
    p.add_argument("--work-s", type=float, default=0.0,
                   help="mean simulated work per task between claim and report (0: agents call back to back)")
    p.add_argument("--env", action="append", default=[], metavar="ANSF_X=V", help="a setting for every server")
    p.add_argument("--no-client-validation", action="store_true",
                   help="skip the SDK client's output-schema check (with --clients one, 17 clients share this one "
                   "process; real agents each pay it in their own)")
    p.add_argument("--trace", action="store_true",
                   help="trace every next_task through relay, server, board and store (ANSF_TRACE_DIR) and say "
                   "where the slowest 1 %% spent its time")
    # One agent's process (--clients process): started by the benchmark, not by hand.
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--project", help=argparse.SUPPRESS)
    p.add_argument("--agent-id", help=argparse.SUPPRESS)
    p.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.worker:
        anyio.run(worker, a)
        return
    print(json.dumps(anyio.run(run, a.mode, a.agents, a.tasks, a.settle_s, a.work_s,
                                dict(e.split("=", 1) for e in a.env),
                                not a.no_client_validation, a.trace, a.clients)), flush=True)


if __name__ == "__main__":
    main()
