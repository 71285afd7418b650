"""Scale: several HTTP replicas on one PostgreSQL board, beside one SQLite server, in the same run.

- `throughput`: claims+outcomes per second (next_task then report_outcome, 8 concurrent agents whose requests
  land on any replica) with 1, 2 and 3 PostgreSQL replicas and with one SQLite server, taking turns in ROUNDS
  rounds on replicas kept running; ratios to SQLite over all rounds and per round (median, range, n).
- `chaos`: 3 replicas, agents working through the board while replicas are SIGKILLed and restarted; afterwards:
  no claim acknowledged to two agents, no task lost (every task succeeded or failed), none succeeded twice,
  attempts never above the limit, every acknowledged outcome stored.
- `takeover`: an agent claims and dies; how long until another agent holds the task (lease + at most 1 s).
- `round_trips`: requests sent to PostgreSQL per claim and per outcome, counted by the driver's cursor
  (store/postgres.py's CountingCursor) on a board in this process.
- `stdio`: one server over stdio per engine, one agent claiming and reporting, the engines interleaved in rounds
  (which goes first alternates) so both see the same machine load; claims+outcomes per second and PostgreSQL's
  ratio to SQLite, over all rounds and per round.
- `delayed`: replicas "on other hosts": a delaying TCP relay (bench/delay_relay.py, loopback only) between the
  replicas and the database adds 1 ms or 5 ms of round trip (simulated network, real everything else); 1, 2 and
  3 replicas with none, 1 ms and 5 ms, beside one SQLite server, DELAYED_AGENTS agents. Each replica keeps
  DELAYED_WORKERS writes in flight, so one replica is bound by its round trips rather than by the machine's two
  cores (with 8 workers one replica already needs more CPU than that: the phase measured the CPU, not the
  network); each row says how busy the machine's CPUs were. The ten configurations take turns in ROUNDS rounds
  like the throughput rows; ratios to one replica (and to SQLite) per round.

Every throughput row also says where the CPU went, per claim+outcome: the replicas, PostgreSQL (our own
cluster only), the delay relay and the load generator (this process: raw JSON-RPC through httpcore, the same
tool calls over the same transport as any client), the cores they used together and whether the machine was
CPU-bound; on a 2-core host that limit is what a row with more replicas runs into. The CPU, the machine's ticks
and the rate cover one window: from a round's start until an agent first sees the board done, not the agents'
polling tail after it.

PostgreSQL: the `--store` URL's server when one is given (a scratch database per phase, so the role needs
CREATEDB), else a throw-away cluster of our own (ansf_mcp.bench.pgcluster; needs Debian's postgresql). The report
names it (`postgresql`: version, which of the two, host, port and database; never the URL's user or password).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

from ansf_mcp.bench.context import SuiteContext
from ansf_mcp.bench.interleave import round_order
from ansf_mcp.bench.pgcluster import postgres, server_line
from ansf_mcp.ports import free_port
from ansf_mcp.system.stats import ratio_summary, ratio_text

AGENTS = 8
# The delayed phase: each replica has DELAYED_WORKERS writes in flight (a claim is 2 round trips, an outcome 3:
# at 5 ms one replica tops out near DELAYED_WORKERS / 25 ms), and twice as many agents as three replicas have
# workers, so no replica waits for an agent. One write in flight leaves the most CPU to spare on a 2-core machine
# that also runs the database, the relay and the agents (measured at 5 ms: machine 75 % busy with one replica,
# 100 % with three; with 2 in flight every row was CPU-bound), so the phase shows the network, not the CPU.
DELAYED_WORKERS = 1
DELAYED_AGENTS = 6
# Tasks per delayed row even in a quick run: with 200, the 5 ms rows last 2-4 s and "3 replicas vs one" read
# 1.70-2.21 in back-to-back runs on this machine; with 1 000, 2.02-2.19.
DELAYED_MIN_TASKS = 600
# Claims+outcomes each stdio server does before the timed rounds (both engines alike).
STDIO_WARMUP_PAIRS = 20
DELAYS_S = (0.001, 0.005)
MAX_ATTEMPTS = 6
CHAOS_LEASE_S = 3.0
# Rounds of the throughput and delayed tables, each configuration's tasks split over them: even so (A B, B A,
# A B, B A) every configuration goes first and last as often, and each row has a ratio for every round.
ROUNDS = 4


class Replica:
    """One `ansf serve --transport http --store ...` process on a fixed port (restartable on the same one);
    `workers`: its board's write workers (ANSF_STORE_WORKERS), the writes it has in flight at once."""

    def __init__(self, store: str, data_dir: Path, cwd: Path, lease_s: float = 300.0, workers: int | None = None):
        self.store, self.data_dir, self.cwd, self.lease_s, self.workers = store, data_dir, cwd, lease_s, workers
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        import httpx

        env = {**os.environ, "ANSF_DATA_DIR": str(self.data_dir), "ANSF_STORE": self.store, "ANSF_WARMUP": "0",
               "ANSF_SEMANTIC_INDEX": "0", "ANSF_MAX_ATTEMPTS": str(MAX_ATTEMPTS),
               "ANSF_DEFAULT_LEASE_S": str(self.lease_s)}
        env.pop("ANSF_TOKEN", None)
        if self.workers is not None:
            env["ANSF_STORE_WORKERS"] = str(self.workers)
        self.proc = subprocess.Popen([sys.executable, "-m", "ansf_mcp", "serve", "--transport", "http",
                                      "--port", str(self.port)], env=env, cwd=self.cwd,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"replica on port {self.port} exited with {self.proc.returncode}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return
            time.sleep(0.1)
        raise RuntimeError(f"replica on port {self.port} did not become healthy in 60 s")

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()


class Connection:
    """One agent's MCP session with one replica, as raw JSON-RPC over Streamable HTTP (the bytes any client
    sends); a replica that died and came back has forgotten the session: the next call begins a new one.

    Sent through httpcore, the HTTP/1.1 layer under httpx: the same requests on the same keep-alive connections,
    for about half of httpx's CPU per request (its client models cost more than the transport). The load
    generator shares the machine's cores with the replicas it measures; what it spends is reported beside them."""

    HEADERS: ClassVar[list[tuple[bytes, bytes]]] = [(b"Accept", b"application/json, text/event-stream"),
                                                    (b"Content-Type", b"application/json")]

    def __init__(self, http: Any, url: str):
        self.http, self.url = http, f"{url}/mcp".encode()
        self.session: bytes | None = None
        self._next = 1

    async def _post(self, message: dict[str, Any]) -> dict[str, Any] | None:
        headers = list(self.HEADERS)
        if self.session:
            headers += [(b"Mcp-Session-Id", self.session), (b"MCP-Protocol-Version", b"2025-06-18")]
        r = await self.http.request(b"POST", self.url, headers=headers, content=json.dumps(message).encode(),
                                    extensions={"timeout": {"connect": 30, "read": 30, "write": 30, "pool": 30}})
        if r.status >= 400:
            self.session = None
            raise ConnectionError(f"HTTP {r.status}")
        got = {name.lower(): value for name, value in r.headers}
        self.session = got.get(b"mcp-session-id", self.session)
        if "id" not in message:
            return None
        if got.get(b"content-type", b"").startswith(b"application/json"):
            return json.loads(r.content)  # type: ignore[no-any-return]
        for line in r.content.decode().splitlines():  # an SSE stream: the answer is one of its data lines
            if line.startswith("data:"):
                data = json.loads(line[5:])
                if data.get("id") == message["id"]:
                    return data  # type: ignore[no-any-return]
        raise ConnectionError("no answer in the stream")

    async def call(self, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
        if self.session is None:
            await self._post({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
                "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "scale", "version": "1"}}})
            await self._post({"jsonrpc": "2.0", "method": "notifications/initialized"})
        self._next += 1
        answer = await self._post({"jsonrpc": "2.0", "id": self._next, "method": "tools/call",
                                   "params": {"name": tool, "arguments": arguments}})
        assert answer is not None
        if "error" in answer:
            raise ToolRefused(answer["error"].get("message", ""))
        result = answer["result"]
        if result.get("isError"):
            raise ToolRefused(" ".join(c.get("text", "") for c in result.get("content", [])))
        return result["structuredContent"]


class ToolRefused(Exception):
    """The tool answered with an error (not a transport failure)."""


class Agents:
    """AGENTS asyncio agents; each request goes to a random live replica; a request that fails because the
    replica died is sent again to another one (the board's rules make that safe: claims are fenced, a repeated
    report gets the first answer)."""

    def __init__(self, replicas: list[Replica], swarm: str, seed: int = 0, agents: int = AGENTS,
                 sessions: dict[int, list[Connection]] | None = None, on_done: Callable[[], None] | None = None):
        self.replicas, self.swarm, self.agents = replicas, swarm, agents
        self.seed = seed
        # Kept across runs on the same replicas (a configuration's rounds), so that only its first round pays
        # for opening every agent's session with every replica, as one long run did.
        self.sessions = sessions
        # Called once, in the event loop, when an agent first sees the board done: the end of the work, before
        # the other agents' polling tail (up to 0.1 s of sleeps and calls that do no work).
        self.on_done, self._done_seen = on_done, False
        self.claims: list[tuple[str, int, str]] = []  # acknowledged (task, claim number, agent)
        self.outcomes: list[tuple[str, int]] = []  # acknowledged (task, claim number)
        self.retries = 0
        self.store_retries = 0

    async def run(self) -> None:
        import anyio
        import httpcore

        async with httpcore.AsyncConnectionPool(max_connections=64) as http:
            async with anyio.create_task_group() as tg:
                for i in range(self.agents):
                    tg.start_soon(self._agent, http, i)

    async def _agent(self, http: Any, i: int) -> None:
        import anyio
        import httpcore

        rng = random.Random(self.seed * 100 + i)
        me = f"agent-{i}"
        if self.sessions is None:
            conns = [Connection(http, r.url) for r in self.replicas]
        else:
            conns = self.sessions.setdefault(i, [Connection(http, r.url) for r in self.replicas])
            for conn in conns:
                conn.http = http  # each run has its own connection pool; the MCP sessions outlive it

        async def call(tool: str, **args: Any) -> dict[str, Any]:
            for _ in range(600):
                conn = rng.choice(conns)
                try:
                    return await conn.call(tool, args)
                except (httpcore.NetworkError, httpcore.TimeoutException, httpcore.ProtocolError, ConnectionError,
                        json.JSONDecodeError):
                    conn.session = None
                    self.retries += 1
                    await anyio.sleep(0.05)
                except ToolRefused as exc:
                    if "store" not in str(exc):
                        raise
                    # The database was restarting: nothing was written, or a repeat gets the first answer.
                    self.store_retries += 1
                    await anyio.sleep(0.05)
            raise RuntimeError(f"{me}: no replica answered {tool}")

        while True:
            got = await call("next_task", swarm_id=self.swarm, agent_id=me)
            if not got["claimed"]:
                # Done when nothing is left to do; else claims in flight (or leases lost with a killed replica,
                # waiting to expire) may still put work back.
                counts = (await call("swarm_status", swarm_id=self.swarm, limit=1))["swarm"]["tasks_by_state"]
                if counts["ready"] + counts["claimed"] + counts["blocked"] == 0:
                    if not self._done_seen:
                        self._done_seen = True
                        if self.on_done:
                            self.on_done()
                    return
                await anyio.sleep(0.1)
                continue
            task, claim = got["task"]["id"], got["claim"]
            self.claims.append((task, claim, me))
            try:
                await call("report_outcome", swarm_id=self.swarm, task_id=task, agent_id=me,
                           success=rng.random() > 0.1, summary="done", claim=claim)
                self.outcomes.append((task, claim))
            except ToolRefused:
                pass  # the lease ran out while the answer was lost with a killed replica: refused, as it must be


def _setup(replica: Replica, tasks: int, agents: int = AGENTS) -> str:
    """A swarm of `agents` agents and `tasks` tasks, through the first replica."""
    return _swarms(replica, tasks, agents, 1)[0]


def _swarms(replica: Replica, tasks: int, agents: int, count: int) -> list[str]:
    """`count` swarms of `agents` agents and `tasks` tasks each, through one session with the replica."""
    import anyio
    from mcp import Client

    async def go() -> list[str]:
        swarms = []
        async with Client(f"{replica.url}/mcp") as c:
            for _ in range(count):
                r = await c.call_tool("spawn_swarm", {"name": "scale", "agents": [{"role": f"w{i}"} for i in
                                                                                  range(agents)]})
                sw = r.structured_content["swarm_id"]
                for start in range(0, tasks, 1000):
                    batch = [{"description": f"task {k}"} for k in range(start, min(tasks, start + 1000))]
                    r = await c.call_tool("coordinate", {"swarm_id": sw, "tasks": batch, "strategy": "round-robin"})
                    assert not r.is_error, r.content[0].text
                swarms.append(sw)
        return swarms

    return anyio.run(go)


def _cpu_ticks() -> tuple[int, int] | None:
    """(all, idle) CPU ticks of the whole machine so far (Linux), to say whether a run was CPU-bound."""
    try:
        with open("/proc/stat") as f:
            ticks = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    return sum(ticks), ticks[3] + ticks[4]


# A run whose machine was at least this busy was limited by the CPU (every core), not by what it measures.
CPU_BOUND_BUSY = 0.9


def _cpu_s(pid: int | None) -> float | None:
    """CPU seconds (user + system, every thread) the process has used so far; None when it cannot be read."""
    import psutil

    if pid is None:
        return None
    try:
        return sum(psutil.Process(pid).cpu_times()[:2])
    except psutil.Error:
        return None


def _parts_cpu(replicas: list[Replica], backend: Callable[[], float | None] | None,
               relay_pid: int | None) -> dict[str, float | None]:
    """CPU seconds so far of each part of a run: the replicas, the database, the delay relay, and this process
    (the load generator: the agents' raw JSON-RPC requests)."""
    import resource

    own = resource.getrusage(resource.RUSAGE_SELF)
    replica_s = [_cpu_s(r.proc.pid if r.proc else None) for r in replicas]
    return {"replicas": None if None in replica_s else sum(s for s in replica_s if s is not None),
            "backend": backend() if backend else None, "relay": _cpu_s(relay_pid),
            "load_generator": own.ru_utime + own.ru_stime}


class Setup:
    """One configuration of a throughput table (engine, replicas, writes in flight, relay), its replicas started
    once and kept for every round: a round then costs one swarm's set-up, not the replicas' start, and the rounds
    of all configurations can take turns. `turn` measures one round; `row` sums the rounds."""

    def __init__(self, label: str, store: str, replicas_n: int, tmp: Path, n_agents: int = AGENTS,
                 workers: int | None = None, backend: Callable[[], float | None] | None = None,
                 relay_pid: int | None = None):
        self.label, self.n_agents, self.workers = label, n_agents, workers
        self.backend, self.relay_pid = backend, relay_pid
        self.replicas = [Replica(store, tmp / f"data-{label}", tmp, workers=workers) for _ in range(replicas_n)]
        self.turns: list[dict[str, Any]] = []
        self.sessions: dict[int, list[Connection]] = {}
        self.prepared: dict[int, list[str]] = {}  # swarms set up ahead of the rounds, by their task count

    def __enter__(self) -> Setup:
        try:
            for r in self.replicas:
                r.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        for r in self.replicas:
            r.stop()

    def prepare(self, tasks: int, count: int) -> None:
        """The swarms of `count` rounds of `tasks` tasks, made before the rounds so that the rounds are only
        the measured work: setting one up per turn cost as much as a short round of work."""
        self.prepared.setdefault(tasks, []).extend(_swarms(self.replicas[0], tasks, self.n_agents, count))

    def turn(self, tasks: int, seed: int = 0) -> float:
        """One round: a swarm of `tasks` tasks worked through; its claims+outcomes per second."""
        import anyio

        ready = self.prepared.get(tasks)
        sw = ready.pop(0) if ready else _setup(self.replicas[0], tasks, self.n_agents)
        end: list[tuple[float, tuple[int, int] | None, dict[str, float | None]]] = []

        def work_done() -> None:
            end.append((time.perf_counter(), _cpu_ticks(), _parts_cpu(self.replicas, self.backend, self.relay_pid)))

        agents = Agents(self.replicas, sw, seed=seed, agents=self.n_agents, sessions=self.sessions,
                        on_done=work_done)
        before, cpu_before = _cpu_ticks(), _parts_cpu(self.replicas, self.backend, self.relay_pid)
        t0 = time.perf_counter()
        anyio.run(agents.run)
        # The time, the machine's ticks and every part's CPU all stop when an agent first sees the board done:
        # after that the others only poll (0.1 s apart) until they see it too, a wait that would count as a large
        # share of a short round, in its seconds or (had they gone on to the end) in its CPU per claim+outcome.
        assert end, "the agents stopped before any of them saw the board done"
        stop, after, cpu_after = end[0]
        elapsed = stop - t0
        self.turns.append({
            "pairs": len(agents.outcomes), "seconds": elapsed,
            "ticks": (after[0] - before[0], after[1] - before[1]) if before and after else None,
            "cpu": {part: (cpu_after[part] - cpu_before[part])  # type: ignore[operator]
                    if cpu_before[part] is not None and cpu_after[part] is not None else None for part in cpu_before},
            "duplicate_claims": len(agents.claims) - len({(t, n) for t, n, _ in agents.claims})})
        return len(agents.outcomes) / elapsed

    def row(self) -> dict[str, Any]:
        """The rounds together: rates over all of them, and where the CPU went per claim+outcome."""
        pairs = sum(t["pairs"] for t in self.turns)
        elapsed = sum(t["seconds"] for t in self.turns)
        ticks = [t["ticks"] for t in self.turns]
        every, idle = (sum(t[0] for t in ticks), sum(t[1] for t in ticks)) if None not in ticks else (0, 0)
        busy = round(1 - idle / every, 2) if every > 0 else None
        spent = {part: None if any(t["cpu"][part] is None for t in self.turns)
                 else sum(t["cpu"][part] for t in self.turns) for part in self.turns[0]["cpu"]}
        return {"replicas": len(self.replicas), "agents": self.n_agents, "workers": self.workers, "pairs": pairs,
                "rounds": len(self.turns),
                "seconds": round(elapsed, 2), "pairs_per_s": round(pairs / elapsed, 1),
                "machine_cpu_busy": busy,  # every process on the machine, ours or not: near 1.0 means CPU-bound
                "cpu_bound": None if busy is None else busy >= CPU_BOUND_BUSY,
                "cpus": os.cpu_count(),
                # CPU milliseconds per claim+outcome of each part; `cores_used`: all our parts together, in cores.
                "cpu_ms_per_pair": {part: None if s is None or not pairs else round(1000 * s / pairs, 2)
                                    for part, s in spent.items()},
                "cores_used": round(sum(s for s in spent.values() if s is not None) / elapsed, 2),
                "duplicate_claims": sum(t["duplicate_claims"] for t in self.turns)}


def _throughput(store: str, replicas_n: int, tasks: int, tmp: Path, n_agents: int = AGENTS,
                workers: int | None = None, backend: Callable[[], float | None] | None = None,
                relay_pid: int | None = None) -> dict[str, Any]:
    """Claims+outcomes per second of `n_agents` agents on `replicas_n` replicas in one go, and the CPU each part
    spent per claim+outcome (`backend`: the database's CPU seconds so far, when it is ours to see; on SQLite the
    database is inside the replica)."""
    with Setup("one", store, replicas_n, tmp, n_agents, workers, backend, relay_pid) as setup:
        setup.turn(tasks)
    return setup.row()


def _interleaved(setups: list[Setup], tasks: int, rounds: int,
                 progress: Callable[[int], None] | None = None) -> list[dict[str, float]]:
    """`rounds` rounds of one turn per configuration, in order on even rounds and reversed on odd ones (A B, then
    B A: none always first or last), `tasks` split over the rounds; the rate of every turn, by label. On a shared
    machine only configurations measured side by side compare: rows measured one after the other each met other
    load, and their ratio showed it."""
    from concurrent.futures import ThreadPoolExecutor

    per_turn = -(-tasks // rounds)
    # Untimed, all configurations at once: their set-up calls mostly wait on round trips (a relay's delay too).
    with ThreadPoolExecutor(max_workers=len(setups)) as pool:
        for done in [pool.submit(s.prepare, per_turn, rounds) for s in setups]:
            done.result()
    rates: list[dict[str, float]] = []
    for r in range(rounds):
        if progress:
            progress(r)
        rates.append({s.label: s.turn(per_turn, seed=r) for s in round_order(setups, r)})
    return rates


def _per_round(rates: list[dict[str, float]], label: str, reference: str) -> dict[str, Any]:
    """The ratio of `label`'s rate to `reference`'s, round by round."""
    return ratio_summary([r[label] / r[reference] for r in rates])


def _chaos(store: str, tasks: int, kills: int, tmp: Path, restart_db: Any = None) -> dict[str, Any]:
    """3 replicas SIGKILLed `kills` times while agents work; with `restart_db`, PostgreSQL itself is restarted
    once half-way through the kills."""
    import anyio
    import psycopg

    replicas = [Replica(store, tmp / "data", tmp, lease_s=CHAOS_LEASE_S) for _ in range(3)]
    killed = 0
    for r in replicas:
        r.start()
    sw = _setup(replicas[0], tasks)
    agents = Agents(replicas, sw, seed=7)

    down: set[int] = set()
    db_restarts: list[int] = []

    async def restart(k: int) -> None:
        await anyio.sleep(0.2)
        await anyio.to_thread.run_sync(replicas[k].start)
        down.discard(k)

    async def killer(tg: Any) -> None:
        nonlocal killed
        rng = random.Random(11)
        while killed < kills:
            await anyio.sleep(rng.uniform(0.3, 1.0))
            alive = [k for k in range(len(replicas)) if k not in down]
            if len(alive) < 2:
                continue  # one replica always serves
            k = rng.choice(alive)
            down.add(k)
            replicas[k].kill()
            killed += 1
            tg.start_soon(restart, k)
            if restart_db is not None and killed == max(1, kills // 2):
                await anyio.to_thread.run_sync(restart_db)
                db_restarts.append(killed)

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(killer, tg)
            await agents.run()
            tg.cancel_scope.cancel()

    t0 = time.perf_counter()
    try:
        anyio.run(main)
    finally:
        elapsed = time.perf_counter() - t0
        for r in replicas:
            r.stop()
    with psycopg.connect(store) as conn:
        q = lambda sql: conn.execute(sql, {"sw": sw}).fetchall()  # noqa: E731
        states = dict(q("SELECT status, COUNT(*) FROM tasks WHERE swarm_id = %(sw)s GROUP BY status"))
        twice = q("SELECT task_id FROM outcomes WHERE swarm_id = %(sw)s AND success = 1 GROUP BY task_id "
                  "HAVING COUNT(*) > 1")
        max_attempts = q("SELECT COALESCE(MAX(attempts), 0) FROM tasks WHERE swarm_id = %(sw)s")[0][0]
        stored = {(t, n) for t, n in q("SELECT task_id, claim_seq FROM outcomes WHERE swarm_id = %(sw)s")}
        holders = {(t, n): a for t, n, a in q("SELECT task_id, claim_seq, agent_id FROM claims WHERE swarm_id = %(sw)s")}
        claims_total = q("SELECT COUNT(*) FROM claims WHERE swarm_id = %(sw)s")[0][0]
    acked = {(t, n) for t, n, _ in agents.claims}
    return {
        "replicas": 3, "agents": AGENTS, "tasks": tasks, "kills": killed, "seconds": round(elapsed, 1),
        "postgresql_restarts": len(db_restarts), "store_error_retries": agents.store_retries,
        "claims": claims_total, "claims_acknowledged": len(agents.claims), "retried_requests": agents.retries,
        "claimed_by_two": len(agents.claims) - len(acked) + sum(1 for t, n, a in agents.claims
                                                                if holders.get((t, n)) != a),
        "lost": sum(v for k, v in states.items() if k not in ("succeeded", "failed")),
        "succeeded_twice": len(twice),
        "max_attempts_seen": max_attempts, "attempt_limit": MAX_ATTEMPTS,
        "acknowledged_outcomes_missing": len(set(agents.outcomes) - stored),
        "states": states,
    }


def _takeover(store: str, tmp: Path, lease_s: float = 2.0) -> dict[str, Any]:
    """An agent claims the only task and dies; another polls next_task every 0.1 s on another replica."""
    import anyio
    from mcp import Client

    replicas = [Replica(store, tmp / "data", tmp) for _ in range(2)]
    try:
        for r in replicas:
            r.start()
        sw = _setup(replicas[0], 1)

        async def go() -> float:
            async with Client(f"{replicas[0].url}/mcp") as a, Client(f"{replicas[1].url}/mcp") as b:
                first = await a.call_tool("next_task", {"swarm_id": sw, "agent_id": "agent-0",
                                                        "lease_seconds": lease_s})
                claimed_at = time.monotonic()
                assert first.structured_content["claimed"], first.content[0].text
                while True:  # agent-0 is gone: it never renews or reports
                    got = await b.call_tool("next_task", {"swarm_id": sw, "agent_id": "agent-1"})
                    if got.structured_content["claimed"]:
                        return time.monotonic() - claimed_at
                    await anyio.sleep(0.1)

        back_after = anyio.run(go)
    finally:
        for r in replicas:
            r.stop()
    return {"lease_s": lease_s, "back_after_s": round(back_after, 2), "within_lease_plus_1s": back_after <= lease_s + 1}


def _round_trips(url: str, tasks: int = 40) -> dict[str, Any]:
    """Requests sent to PostgreSQL per claim and per outcome, counted by the driver (CountingCursor): one agent
    on a chain (each success makes the next task ready), every other outcome a failure that re-offers the task."""
    from ansf_mcp.board.board import Board
    from ansf_mcp.board.models import AgentSpec, TaskSpec
    from ansf_mcp.store.postgres import PostgresStore

    store = PostgresStore(url)
    try:
        board = Board(store)
        sw = board.spawn("round-trips", [AgentSpec(role="worker")], "mesh").swarm_id
        board.coordinate(sw, [TaskSpec(id=f"t{i}", description=f"step {i}", depends_on=[f"t{i - 1}"] if i else [])
                              for i in range(tasks)], "round-robin")
        agent = board.view(sw).agents[0].id
        claims: list[int] = []
        outcomes: list[int] = []
        for k in range(2 * tasks):
            before = store.trips.value
            got = board.claim_next(sw, agent)
            claims.append(store.trips.value - before)
            if got.task is None:
                break
            before = store.trips.value
            board.report(sw, got.task.id, agent, success=k % 2 == 1, summary="ok")
            outcomes.append(store.trips.value - before)
        return {"claims": len(claims), "outcomes": len(outcomes),
                "per_claim_max": max(claims), "per_claim_mean": round(sum(claims) / len(claims), 2),
                "per_outcome_max": max(outcomes), "per_outcome_mean": round(sum(outcomes) / len(outcomes), 2)}
    finally:
        store.close()


def _stdio(tmp: Path, pg_url: str, rounds: int, pairs: int,
           backend: Callable[[], float | None] | None = None) -> dict[str, Any]:
    """One stdio server per engine, one agent each, STDIO_WARMUP_PAIRS untimed, then `rounds` rounds of `pairs`
    claim+outcome pairs, the engines taking turns within every round (SQLite first, then PostgreSQL first, ...),
    and PostgreSQL's ratio to SQLite in every round; beside the rates, the CPU per claim+outcome
    of each server process and of PostgreSQL (`backend`, when it is ours to see), counted during the engine's own
    turns only."""
    from ansf_mcp.bench.chaos_suite import StdioServer

    def pair(server: StdioServer, swarm: str) -> None:
        got = server.call("next_task", swarm_id=swarm, agent_id="a")["data"]
        assert got["claimed"], got
        answer = server.call("report_outcome", swarm_id=swarm, task_id=got["task"]["id"], agent_id="a",
                             success=True, summary="ok")
        assert not answer["is_error"], answer["text"]

    servers: dict[str, StdioServer] = {}
    swarms: dict[str, str] = {}
    seconds = {"sqlite": 0.0, "postgresql": 0.0}
    done = {"sqlite": 0, "postgresql": 0}
    cpu = {"sqlite": 0.0, "postgresql": 0.0}
    backend_s: float | None = 0.0 if backend is not None else None
    try:
        for engine, store in (("sqlite", None), ("postgresql", pg_url)):
            data = tmp / f"stdio-{engine}"
            data.mkdir(parents=True, exist_ok=True)
            servers[engine] = server = StdioServer(data, tmp, store)
            sw = server.call("spawn_swarm", name="stdio", agents=[{"role": "worker", "id": "a"}])["data"]["swarm_id"]
            total = rounds * pairs + STDIO_WARMUP_PAIRS
            for first in range(0, total, 1000):  # coordinate takes at most 1 000 tasks a call
                answer = server.call("coordinate", swarm_id=sw, strategy="round-robin", tasks=[
                    {"description": f"task {k}"} for k in range(first, min(first + 1000, total))])
                assert not answer["is_error"], answer["text"]
            swarms[engine] = sw
            # Untimed: the first calls create the functions, plan their statements and open pooled connections.
            for _ in range(STDIO_WARMUP_PAIRS):
                pair(server, sw)
        ratios: list[float] = []
        for r in range(rounds):
            turn: dict[str, float] = {}
            for engine in round_order(("sqlite", "postgresql"), r):
                server = servers[engine]
                db = backend if engine == "postgresql" else None
                cpu0, db0 = _cpu_s(server.proc.pid), db() if db else None
                t0 = time.perf_counter()
                for _ in range(pairs):
                    pair(server, swarms[engine])
                    done[engine] += 1
                turn[engine] = time.perf_counter() - t0
                seconds[engine] += turn[engine]
                cpu1, db1 = _cpu_s(server.proc.pid), db() if db else None
                cpu[engine] += (cpu1 or 0.0) - (cpu0 or 0.0)
                if db:
                    backend_s = None if db0 is None or db1 is None or backend_s is None else backend_s + db1 - db0
            ratios.append(turn["sqlite"] / turn["postgresql"])  # the same pairs each: rate ratio, PostgreSQL / SQLite
    finally:
        for server in servers.values():
            server.close()
    rate = {e: round(done[e] / seconds[e], 1) for e in done}
    return {"rounds": rounds, "pairs_per_round": pairs, "sqlite_pairs_per_s": rate["sqlite"],
            "postgresql_pairs_per_s": rate["postgresql"],
            "ratio": round(rate["postgresql"] / rate["sqlite"], 2), "ratio_per_round": ratio_summary(ratios),
            # CPU ms per claim+outcome: each stdio server (SQLite's includes its database), and PostgreSQL's.
            "server_cpu_ms_per_pair": {e: round(1000 * cpu[e] / done[e], 2) for e in done if done[e]},
            "postgresql_backend_cpu_ms_per_pair": None if backend_s is None or not done["postgresql"]
            else round(1000 * backend_s / done["postgresql"], 2)}


def _via(url: str, port: int) -> str:
    """The same database URL through another port on loopback (the delay relay)."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    auth = parts.netloc.rsplit("@", 1)[0] + "@" if "@" in parts.netloc else ""
    return urlunsplit(parts._replace(netloc=f"{auth}127.0.0.1:{port}"))


def _delayed(fresh: Any, tasks: int, tmp: Path, rounds: int,
             progress: Callable[[int], None] | None = None) -> list[dict[str, Any]]:
    """1, 2 and 3 replicas with no added delay and behind 1 ms and 5 ms, each replica with DELAYED_WORKERS
    writes in flight: what the target asks is whether replicas add up when each one waits on the network, and a
    replica limited by its own round trips shows that below the CPU this machine has (with 8 workers one
    replica alone already needs more CPU than two cores give; `machine_cpu_busy` says when a row hit it).
    Every configuration (ten of them, with the SQLite server) is kept running and they take turns in `rounds`
    rounds, so each row's ratio to one replica, and to SQLite, is taken round by round."""
    from urllib.parse import urlsplit

    from ansf_mcp.bench.delay_relay import DelayRelay

    backend = getattr(fresh, "cpu_s", None)
    with contextlib.ExitStack() as stack:
        sqlite = stack.enter_context(Setup("sqlite", str(tmp / "delayed.sqlite3"), 1, tmp, DELAYED_AGENTS,
                                           DELAYED_WORKERS))
        setups: dict[tuple[float, int], Setup] = {}
        for rtt in (0.0, *DELAYS_S):
            for n in (1, 2, 3):
                url = fresh()
                port = urlsplit(url).port
                assert port is not None
                relay = stack.enter_context(DelayRelay(port, rtt)) if rtt else None
                setups[rtt, n] = stack.enter_context(Setup(
                    f"postgresql-{rtt * 1000:g}ms-{n}", _via(url, relay.port) if relay else url, n, tmp,
                    DELAYED_AGENTS, DELAYED_WORKERS, backend=backend,
                    relay_pid=relay.proc.pid if relay and relay.proc else None))
        rates = _interleaved([sqlite, *setups.values()], tasks, rounds, progress)
    base = sqlite.row()
    rows: list[dict[str, Any]] = [{"engine": "sqlite", "rtt_ms": 0.0, **base, "ratio_to_one_replica": None}]
    for (rtt, n), setup in setups.items():
        row, one = setup.row(), setups[rtt, 1]
        rows.append({"engine": "postgresql", "rtt_ms": rtt * 1000, **row,
                     "ratio_to_one_replica": round(row["pairs_per_s"] / one.row()["pairs_per_s"], 2),
                     "ratio_to_one_replica_per_round": _per_round(rates, setup.label, one.label) if n > 1 else None,
                     "ratio_to_sqlite": round(row["pairs_per_s"] / base["pairs_per_s"], 2),
                     "ratio_to_sqlite_per_round": _per_round(rates, setup.label, sqlite.label)})
    return rows


def _throughput_table(fresh: Any, tasks: int, tmp: Path, rounds: int,
                      progress: Callable[[int], None] | None = None) -> list[dict[str, Any]]:
    """One SQLite server and 1, 2 and 3 PostgreSQL replicas, 8 agents, taking turns in `rounds` rounds; each
    PostgreSQL row's ratio to SQLite round by round."""
    backend = getattr(fresh, "cpu_s", None)
    with contextlib.ExitStack() as stack:
        sqlite = stack.enter_context(Setup("sqlite", str(tmp / "scale.sqlite3"), 1, tmp))
        setups = [stack.enter_context(Setup(f"postgresql-{n}", fresh(), n, tmp, backend=backend)) for n in (1, 2, 3)]
        rates = _interleaved([sqlite, *setups], tasks, rounds, progress)
    base = sqlite.row()
    rows: list[dict[str, Any]] = [{"engine": "sqlite", **base, "ratio_to_sqlite": 1.0}]
    for setup in setups:
        row = setup.row()
        rows.append({"engine": "postgresql", **row, "ratio_to_sqlite": round(row["pairs_per_s"] / base["pairs_per_s"], 2),
                     "ratio_to_sqlite_per_round": _per_round(rates, setup.label, sqlite.label)})
    return rows


def run(ctx: SuiteContext) -> dict[str, Any]:
    tasks = 200 if ctx.quick else 1000
    chaos_tasks, kills = (300, 3) if ctx.quick else (10_000, 12)
    out: dict[str, Any] = {"agents": AGENTS, "throughput": []}
    with tempfile.TemporaryDirectory(prefix="ansf-scale-") as tmpdir, postgres(ctx) as fresh:
        tmp = Path(tmpdir)
        # Figures from two runs compare only on the same server (version, and ours or the user's).
        out["postgresql"] = fresh.server
        ctx.progress(0.02, "throughput: one SQLite server and 1, 2 and 3 PostgreSQL replicas, taking turns")
        out["throughput"] = _throughput_table(fresh, tasks, tmp, ROUNDS, lambda r: ctx.progress(
            0.02 + 0.18 * r / ROUNDS, f"throughput: round {r + 1} of {ROUNDS}"))
        ctx.progress(0.2, "round trips per claim and per outcome")
        out["round_trips"] = _round_trips(fresh())
        ctx.progress(0.22, "one stdio server per engine, interleaved")
        # Short turns (10-20 pairs, a few tens of ms): both engines see the same load from whatever else runs.
        out["stdio"] = _stdio(tmp, fresh(), rounds=16 if ctx.quick else 50, pairs=10 if ctx.quick else 20,
                              backend=getattr(fresh, "cpu_s", None))
        ctx.progress(0.25, "1, 2 and 3 replicas with no delay, 1 ms and 5 ms of round trip to the database")
        out["delayed"] = _delayed(fresh, max(tasks, DELAYED_MIN_TASKS), tmp, ROUNDS, lambda r: ctx.progress(
            0.25 + 0.35 * r / ROUNDS, f"delayed: round {r + 1} of {ROUNDS}"))
        ctx.progress(0.6, f"chaos: 3 replicas, {chaos_tasks} tasks, {kills} SIGKILLs")
        out["chaos"] = _chaos(fresh(), chaos_tasks, kills, tmp, getattr(fresh, "restart", None))
        ctx.progress(0.95, "takeover: a dead agent's work back on the board")
        out["takeover"] = _takeover(fresh(), tmp)
    return out


CPU_COLUMNS = ("CPU ms per claim+outcome: replicas / PostgreSQL / relay / load generator | cores used "
               "(machine CPU busy)")


def _cpu_cells(row: dict[str, Any]) -> str:
    """Where a row's CPU went, and whether the machine's cores were the limit."""
    parts = row.get("cpu_ms_per_pair") or {}
    shown = " / ".join("-" if parts.get(k) is None else f"{parts[k]:g}"
                       for k in ("replicas", "backend", "relay", "load_generator"))
    busy = row.get("machine_cpu_busy")
    bound = ", CPU-bound" if row.get("cpu_bound") else ""
    return f"{shown} | {row.get('cores_used', '-')} of {row.get('cpus', '?')} ({busy}{bound})"


def _rounds_note(rows: list[dict[str, Any]], key: str) -> str:
    """How a table's rows were measured: taking turns, or (a report stored before they did) one after another."""
    if any(r.get(key) for r in rows):
        rounds = max(r.get("rounds") or 0 for r in rows)
        return (f"The rows take turns in {rounds} rounds (in order, then "
                "reversed), each row's tasks split over them; a ratio per round is median (range, n rounds).")
    return ("Rows measured one after another (a report stored before they took turns): their ratios also hold the "
            "load change between them.")


def _server_line(result: dict[str, Any]) -> str | None:
    """Which PostgreSQL server the figures are from; None for a result with no PostgreSQL section."""
    pg = result.get("postgresql")
    if not pg and not any(result.get(k) for k in ("throughput", "stdio", "delayed", "chaos", "takeover")):
        return None
    return server_line(pg)


def markdown(result: dict[str, Any]) -> str:
    server = _server_line(result)
    lines = [server, ""] if server else []
    lines += ["| engine | replicas | claims+outcomes | seconds | per second | ratio to one SQLite server "
              f"| per round | {CPU_COLUMNS} |",
              "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in result.get("throughput", []):
        lines.append(f"| {r['engine']} | {r['replicas']} | {r['pairs']} | {r['seconds']} | {r['pairs_per_s']} | "
                     f"{r['ratio_to_sqlite']} | {ratio_text(r.get('ratio_to_sqlite_per_round'))} | {_cpu_cells(r)} |")
    if result.get("throughput"):
        lines += ["", _rounds_note(result["throughput"], "ratio_to_sqlite_per_round")]
    rt = result.get("round_trips")
    if rt:
        lines += ["", f"Round trips to PostgreSQL, counted by the driver over {rt['claims']} claims and "
                  f"{rt['outcomes']} outcomes: per claim at most {rt['per_claim_max']} (mean {rt['per_claim_mean']}), "
                  f"per outcome at most {rt['per_outcome_max']} (mean {rt['per_outcome_mean']})."]
    st = result.get("stdio")
    if st:
        cpu = st.get("server_cpu_ms_per_pair") or {}
        lines += ["", f"One server over stdio, one agent, engines interleaved ({st['rounds']} rounds of "
                  f"{st['pairs_per_round']} claims+outcomes): SQLite {st['sqlite_pairs_per_s']}/s, PostgreSQL "
                  f"{st['postgresql_pairs_per_s']}/s ({st['ratio']}x; "
                  + (f"per round median {ratio_text(st['ratio_per_round'])}" if st.get("ratio_per_round")
                     else "one ratio over all rounds, a report stored before each round had its own")
                  + f"). CPU per claim+outcome: SQLite server "
                  f"{cpu.get('sqlite')} ms; PostgreSQL server {cpu.get('postgresql')} ms plus PostgreSQL itself "
                  f"{st.get('postgresql_backend_cpu_ms_per_pair')} ms."]
    if result.get("delayed"):
        lines += ["", "Replicas behind a simulated network round trip (delaying relay on loopback):", "",
                  "| engine | round trip ms | replicas | writes in flight each | agents | claims+outcomes | per second "
                  f"| vs one replica | per round | {CPU_COLUMNS} |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        for r in result["delayed"]:
            per_round = r.get("ratio_to_one_replica_per_round")
            lines.append(f"| {r['engine']} | {r['rtt_ms']:g} | {r['replicas']} | {r.get('workers') or 8} | "
                         f"{r['agents']} | {r['pairs']} | {r['pairs_per_s']} | {r['ratio_to_one_replica'] or ''} | "
                         f"{ratio_text(per_round) if per_round else ''} | {_cpu_cells(r)} |")
        lines += ["", _rounds_note(result["delayed"], "ratio_to_sqlite_per_round")]
    c = result.get("chaos")
    if c:
        lines += ["", f"Chaos: {c['replicas']} replicas, {c['agents']} agents, {c['tasks']} tasks, {c['claims']} claims "
                  f"({c['claims_acknowledged']} acknowledged), {c['kills']} SIGKILLs and "
                  f"{c.get('postgresql_restarts', 0)} PostgreSQL restart(s) in {c['seconds']} s: "
                  f"claimed by two {c['claimed_by_two']}, lost {c['lost']}, succeeded twice {c['succeeded_twice']}, "
                  f"attempts at most {c['max_attempts_seen']} (limit {c['attempt_limit']}), acknowledged outcomes "
                  f"missing {c['acknowledged_outcomes_missing']}; final states {c['states']}."]
    t = result.get("takeover")
    if t:
        lines += ["", f"Takeover: a killed agent's task was held by another agent {t['back_after_s']} s after the "
                  f"claim (lease {t['lease_s']} s; within lease + 1 s: {t['within_lease_plus_1s']})."]
    return "\n".join(lines)
