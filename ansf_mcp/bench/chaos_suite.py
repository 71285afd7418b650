"""Chaos: what a crash, a second server or hostile input does to the board, measured against invariants.

- `kill_soak`: a workload through real stdio servers that are SIGKILLed at random points (inside write
  transactions too) and restarted; afterwards nothing acknowledged is lost, nothing succeeded twice, no task was
  handed out twice.
- `shared_directory`: several stdio servers on one data directory claim the same work concurrently; no task is
  claimed twice.
- `fuzz`: calls generated from the tools' own input schemas (hypothesis, a test dependency); no crash, no
  partial write, no traceback.

`ansf bench --suite chaos` runs long versions; the test suite runs bounded ones of the same code.
"""

from __future__ import annotations

import json
import os
import random
import select
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from ansf_mcp.bench.context import SuiteContext
from ansf_mcp.bench.pgcluster import find_bindir, postgres, server_line
from ansf_mcp.system.stats import latency_summary, quantiles_text

HANDSHAKE = [
    {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "chaos", "version": "1"}}},
    {"jsonrpc": "2.0", "method": "notifications/initialized"},
]


class ServerGone(Exception):
    """The server died (we killed it) before answering."""


def _command() -> list[str]:
    script = shutil.which("ansf", path=str(Path(sys.executable).parent))
    # --standalone: the process SIGKILLed must be the server itself, not a relay to a shared one
    return [script, "serve", "--standalone"] if script else [sys.executable, "-m", "ansf_mcp", "serve", "--standalone"]


class StdioServer:
    """`ansf serve` over raw JSON lines: the same bytes any MCP client sends."""

    def __init__(self, data_dir: Path, cwd: Path, store: str | None = None):
        env = {**os.environ, "ANSF_DATA_DIR": str(data_dir)}
        env.pop("ANSF_TOKEN", None)
        env.pop("ANSF_STORE", None)
        if store:
            env["ANSF_STORE"] = store
        self.proc = subprocess.Popen(_command(), env=env, cwd=cwd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, bufsize=0)
        self._next = 1
        for message in HANDSHAKE:
            self._send(message)
        self._read(0, timeout=60)

    def _send(self, message: dict[str, Any]) -> None:
        try:
            self.proc.stdin.write((json.dumps(message) + "\n").encode())
        except (BrokenPipeError, OSError) as exc:
            raise ServerGone() from exc

    def _read(self, rid: int, timeout: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([self.proc.stdout], [], [], max(0.0, left))
            if not ready:
                raise TimeoutError(f"no answer to request {rid} within {timeout} s")
            line = self.proc.stdout.readline()
            if not line:
                raise ServerGone()
            message = json.loads(line)
            if message.get("id") == rid:
                return message

    def send_call(self, tool: str, arguments: dict[str, Any]) -> int:
        rid = self._next
        self._next += 1
        self._send({"jsonrpc": "2.0", "id": rid, "method": "tools/call",
                    "params": {"name": tool, "arguments": arguments}})
        return rid

    def answer(self, rid: int) -> dict[str, Any]:
        message = self._read(rid)
        if "error" in message:
            return {"is_error": True, "text": message["error"].get("message", "")}
        result = message["result"]
        text = " ".join(c.get("text", "") for c in result.get("content", []))
        return {"is_error": bool(result.get("isError")), "text": text, "data": result.get("structuredContent")}

    def call(self, tool: str, **arguments: Any) -> dict[str, Any]:
        return self.answer(self.send_call(tool, arguments))

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()


def _store_rows(data_dir: Path, sql: str, args: tuple = (), store: str | None = None) -> list[tuple]:
    """Rows straight from the board's database (SQLite in `data_dir`, or the PostgreSQL `store` URL), read
    apart from any server; `sql` with `?` parameters."""
    if store:
        import psycopg

        from ansf_mcp.store.postgres import pg_sql

        with psycopg.connect("postgresql://" + store.split("://", 1)[1], connect_timeout=30) as pg:
            return [tuple(r) for r in pg.execute(pg_sql(sql), args).fetchall()]  # type: ignore[arg-type]
    conn = sqlite3.connect(str(data_dir / "ansf.sqlite3"), timeout=30)
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


# -- SIGKILL soak ----------------------------------------------------------------------------------------------------


def kill_soak(data_dir: Path, *, tasks: int = 1000, kills: int = 72, agents: int = 4, batch: int = 50,
              seed: int = 0, progress=lambda f, m: None, store: str | None = None) -> dict[str, Any]:
    """Run `tasks` through claim and success reports while killing the server `kills` times at random points
    (on SQLite in `data_dir`, or on the PostgreSQL `store`)."""
    rng = random.Random(seed)
    cwd = data_dir.parent
    server = StdioServer(data_dir, cwd, store)
    agent_ids = [f"a{i}" for i in range(agents)]
    sw = server.call("spawn_swarm", name="soak", agents=[{"role": "worker", "id": a, "capacity": 2}
                                                         for a in agent_ids])["data"]["swarm_id"]
    planned = [f"t{i}" for i in range(tasks)]
    batches = [planned[i:i + batch] for i in range(0, tasks, batch)]
    # A workload takes about len(batches) + 2 * tasks calls (a claim and a report per task): kill inside it.
    kill_at = sorted(rng.sample(range(1, max(kills + 1, int(1.8 * tasks))), kills))
    step = 0
    killed = 0
    restarts_s: list[float] = []
    claims_acked: dict[str, list[str]] = {}
    successes_acked: set[str] = set()
    held: dict[str, set[str]] = {a: set() for a in agent_ids}

    def maybe_kill(rid: int) -> bool:
        """Kill at planned steps, right after the request went out (so inside its transaction, or before)."""
        nonlocal step, killed, server
        step += 1
        if killed < kills and kill_at and step >= kill_at[0]:
            kill_at.pop(0)
            time.sleep(rng.choice((0.0, 0.0005, 0.002, 0.005)))
            server.kill()
            killed += 1
            t0 = time.monotonic()
            server = StdioServer(data_dir, cwd, store)
            restarts_s.append(time.monotonic() - t0)
            resync()
            progress(killed / max(1, kills), f"kill {killed}/{kills}")
            return True
        return False

    def board() -> dict[str, dict[str, Any]]:
        """The store itself (a tool's answer may be shrunk): what a restarted agent would look up."""
        rows = _store_rows(data_dir, "SELECT id, status, lease_owner FROM tasks WHERE swarm_id = ?", (sw,), store)
        return {tid: {"state": status, "lease_owner": owner} for tid, status, owner in rows}

    def resync() -> None:
        """After a restart an agent learns what it holds from the board (a claim may have committed unanswered)."""
        tasks_now = board()
        for a in agent_ids:
            held[a] = {tid for tid, t in tasks_now.items() if t["state"] == "claimed" and t["lease_owner"] == a}

    for chunk in batches:
        while True:
            present = set(board())
            if set(chunk) <= present:
                break
            assert not (set(chunk) & present), "a coordinate batch was half-written"
            rid = server.send_call("coordinate", {"swarm_id": sw, "tasks": [
                {"id": t, "description": f"work item {t}"} for t in chunk]})
            if maybe_kill(rid):
                continue
            answer = server.answer(rid)
            assert not answer["is_error"], answer["text"]
    done = False
    while not done:
        for a in agent_ids:
            if held[a]:
                tid = sorted(held[a])[0]
                rid = server.send_call("report_outcome", {"swarm_id": sw, "task_id": tid, "agent_id": a,
                                                          "success": True, "summary": "ok", "duration_s": 1.0})
                if maybe_kill(rid):
                    continue
                answer = server.answer(rid)
                if not answer["is_error"]:
                    successes_acked.add(tid)
                held[a].discard(tid)
            else:
                rid = server.send_call("next_task", {"swarm_id": sw, "agent_id": a, "lease_seconds": 3600})
                if maybe_kill(rid):
                    continue
                answer = server.answer(rid)
                if answer["data"] and answer["data"]["claimed"]:
                    tid = answer["data"]["task"]["id"]
                    claims_acked.setdefault(tid, []).append(a)
                    held[a].add(tid)
        states = board()
        done = all(t["state"] == "succeeded" for t in states.values()) and len(states) == tasks
    server.close()
    final = dict(_store_rows(data_dir, "SELECT id, status FROM tasks WHERE swarm_id = ?", (sw,), store))
    twice = _store_rows(data_dir, "SELECT task_id, COUNT(*) FROM outcomes WHERE swarm_id = ? AND success = 1 "
                                  "GROUP BY task_id HAVING COUNT(*) > 1", (sw,), store)
    return {
        "tasks": tasks,
        "kills": killed,
        "lost": sorted(t for t in successes_acked if final.get(t) != "succeeded"),
        "succeeded_twice": [row[0] for row in twice],
        "double_claims": sorted(t for t, who in claims_acked.items() if len(who) > 1),
        "missing": sorted(set(planned) - set(final)),
        # A server's start after each kill, summarised as every latency is: its n beside the figures.
        "restart": latency_summary(restarts_s) if restarts_s else None,
    }


# -- several servers, one data directory ----------------------------------------------------------------------------


def shared_directory(data_dir: Path, *, servers: int = 2, tasks: int = 400, agents_per_server: int = 4,
                     store: str | None = None) -> dict[str, Any]:
    """`servers` stdio servers on one data directory (or one PostgreSQL `store`); each drives its own agents over
    the same unassigned work."""
    cwd = data_dir.parent
    procs = [StdioServer(data_dir, cwd, store) for _ in range(servers)]
    agent_ids = [[f"s{s}a{i}" for i in range(agents_per_server)] for s in range(servers)]
    flat = [a for group in agent_ids for a in group]
    # Capacity 1 each: the first len(flat) tasks get an assignee, the rest stay unassigned, so everyone competes.
    sw = procs[0].call("spawn_swarm", name="shared", agents=[{"role": "worker", "id": a} for a in flat]
                       )["data"]["swarm_id"]
    for i in range(0, tasks, 500):
        answer = procs[0].call("coordinate", swarm_id=sw, tasks=[
            {"id": f"t{j}", "description": f"shared work {j}"} for j in range(i, min(tasks, i + 500))])
        assert not answer["is_error"], answer["text"]
    claims: list[tuple[str, str]] = []
    errors: list[str] = []
    lock = threading.Lock()

    def drive(server: StdioServer, agents: list[str]) -> None:
        idle = 0
        try:
            while idle < 3:
                progressed = False
                for a in agents:
                    answer = server.call("next_task", swarm_id=sw, agent_id=a, lease_seconds=3600)
                    if answer["is_error"]:
                        errors.append(answer["text"])
                        continue
                    if answer["data"]["claimed"]:
                        tid = answer["data"]["task"]["id"]
                        with lock:
                            claims.append((tid, a))
                        server.call("report_outcome", swarm_id=sw, task_id=tid, agent_id=a, success=True)
                        progressed = True
                idle = 0 if progressed else idle + 1
        except Exception as exc:  # surfaced in the result, not lost in a thread
            errors.append(repr(exc))

    threads = [threading.Thread(target=drive, args=(p, g)) for p, g in zip(procs, agent_ids, strict=True)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - started
    for p in procs:
        p.close()
    seen: dict[str, int] = {}
    for tid, _ in claims:
        seen[tid] = seen.get(tid, 0) + 1
    statuses = dict(_store_rows(data_dir, "SELECT status, COUNT(*) FROM tasks WHERE swarm_id = ? GROUP BY status",
                                (sw,), store))
    return {
        "servers": servers,
        "tasks": tasks,
        "claims": len(claims),
        "duplicates": sorted(t for t, n in seen.items() if n > 1),
        "claims_per_server": [sum(1 for _, a in claims if a in g) for g in agent_ids],
        "states": statuses,
        "errors": errors[:5],
        "claims_per_s": round(len(claims) / elapsed, 1) if elapsed else None,
    }


# -- the suite -------------------------------------------------------------------------------------------------------


def run(ctx: SuiteContext) -> dict[str, Any]:
    import tempfile
    from contextlib import nullcontext

    results: dict[str, Any] = {}
    store = getattr(ctx, "store", None) or ""
    # PostgreSQL: the --store server, else a throw-away cluster when PostgreSQL is installed, else SQLite only.
    has_pg = store.startswith(("postgresql://", "postgres://")) or find_bindir() is not None
    if not has_pg:
        results["postgresql"] = {"skipped": "PostgreSQL is not installed and --store names no server"}
    with tempfile.TemporaryDirectory(prefix="ansf-chaos-") as tmp, (postgres(ctx) if has_pg else nullcontext()) as fresh:
        root = Path(tmp)
        if fresh is not None:
            # As in the scale suite: figures from two runs compare only on the same server.
            results["postgresql"] = fresh.server
        for e, engine in enumerate(("sqlite", "postgresql") if has_pg else ("sqlite",)):
            suffix = "" if engine == "sqlite" else "_postgresql"
            soak_dir = root / f"soak{suffix}" / "data"
            soak_dir.mkdir(parents=True)
            ctx.progress(0.45 * e, f"SIGKILL soak ({engine})")
            results[f"kill_soak{suffix}"] = kill_soak(
                soak_dir, tasks=200 if ctx.quick else 1000, kills=12 if ctx.quick else 72,
                progress=ctx.scaled(0.45 * e, 0.45 * e + 0.3), store=fresh() if suffix else None)
            for n in (2, 4):
                d = root / f"shared{n}{suffix}" / "data"
                d.mkdir(parents=True)
                ctx.progress(0.45 * e + 0.3 + 0.05 * n / 2, f"{n} servers on one board ({engine})")
                results[f"shared_directory_{n}{suffix}"] = shared_directory(
                    d, servers=n, tasks=300 if ctx.quick else 3300, store=fresh() if suffix else None)
        ctx.progress(0.9, "schema fuzzing")
        try:
            from ansf_mcp.bench.fuzz import fuzz_tools
        except ImportError as exc:
            results["fuzz"] = {"skipped": f"needs the test extra (hypothesis): {exc}"}
        else:
            for engine in ("sqlite", "postgresql") if has_pg else ("sqlite",):
                suffix = "" if engine == "sqlite" else "_postgresql"
                fdir = root / f"fuzz{suffix}"
                fdir.mkdir()
                results[f"fuzz{suffix}"] = fuzz_tools(fdir, examples_per_tool=30 if ctx.quick else 300,
                                                      store=fresh() if suffix else None)
    ctx.progress(1.0, "done")
    return results


def markdown(result: dict[str, Any]) -> str:
    lines = []
    if "postgresql" in result or any(k.endswith("_postgresql") for k in result):
        lines += [server_line(result.get("postgresql")), ""]
    lines += ["| check | tried | held |", "| --- | --- | --- |"]
    for key, soak in result.items():
        if key.startswith("kill_soak"):
            engine = "PostgreSQL" if key.endswith("postgresql") else "SQLite"
            lines.append(
                f"| SIGKILL soak ({engine}) | {soak.get('kills')} kills over {soak.get('tasks')} tasks | lost "
                f"{len(soak.get('lost', []))}, succeeded twice {len(soak.get('succeeded_twice', []))}, double claims "
                f"{len(soak.get('double_claims', []))}, missing {len(soak.get('missing', []))}; restart (ms) p50 / p95 "
                f"{quantiles_text(soak.get('restart'))} |")
    for key, value in result.items():
        if key.startswith("shared_directory"):
            where = "one PostgreSQL board" if key.endswith("postgresql") else "one data directory"
            lines.append(f"| {value['servers']} servers, {where} | {value['claims']} claims | "
                         f"duplicates {len(value['duplicates'])}, errors {len(value['errors'])} |")
    for key, engine in (("fuzz", "SQLite"), ("fuzz_postgresql", "PostgreSQL")):
        fz = result.get(key, {})
        if "calls" in fz:
            lines.append(f"| schema fuzzing ({engine}) | {fz['calls']} calls | crashes {len(fz['crashes'])}, "
                         f"partial writes {len(fz['partial_writes'])}, tracebacks {len(fz['tracebacks'])} |")
    return "\n".join(lines) + "\n"
