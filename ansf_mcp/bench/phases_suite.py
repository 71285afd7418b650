"""Suite `phases`: the phase matrix rebuilt from measurements.

For each phase a real stdio server runs under a prepared cgroup folder (ANSF_CGROUP_ROOT) whose numbers put
it in that phase; the suite checks the server agrees, then measures what the phase delivers. Quality is the
value ratio (COORDINATION.md) of the strategy the server chose in that phase, on SIMULATED held-out episodes.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
from mcp import Client

from ansf_mcp.bench.context import SuiteContext
from ansf_mcp.bench.procs import server_params, server_process
from ansf_mcp.system.measure import process_rss
from ansf_mcp.system.report import ValueRatio, ratio
from ansf_mcp.system.stats import latency_summary, quantiles_text

GiB = 1 << 30
# Memory fraction written into each phase's cgroup folder (defaults: critical ≥ 0.99, enhanced ≥ 0.80).
FRACTIONS = {"critical": 0.995, "enhanced": 0.85, "optimal": 0.30}


def _cgroup(root: Path, fraction: float) -> Path:
    root.mkdir(parents=True)
    limit = 8 * GiB
    (root / "memory.max").write_text(f"{limit}\n")
    (root / "memory.current").write_text(f"{int(limit * fraction)}\n")
    (root / "memory.stat").write_text("inactive_file 0\n")
    return root


async def _ok(client: Client, tool: str, args: dict[str, Any]) -> Any:
    result = await client.call_tool(tool, args)
    if result.is_error:
        raise RuntimeError(f"{tool}: {result.content[0].text}")
    return result.structured_content


async def _agents_served(client: Client, phase: str) -> dict[str, Any]:
    """How many agents can hold work at once: every agent asks for a task, we count the claims."""
    if phase == "optimal":
        swarms = (await _ok(client, "spawn_preset", {"preset": "six-swarms"}))["swarms"]
    else:
        swarms = [await _ok(client, "spawn_swarm", {"name": "p", "agents": [{"role": "dev"}] * 16})]
    offered = served = 0
    for sw in swarms:
        n = len(sw["agents"])
        await _ok(client, "coordinate", {"swarm_id": sw["swarm_id"], "strategy": "round-robin",
                                         "tasks": [{"description": f"work item {i}"} for i in range(n)]})
        for agent in sw["agents"]:
            offered += 1
            claim = await _ok(client, "next_task", {"swarm_id": sw["swarm_id"], "agent_id": agent["id"]})
            served += bool(claim["claimed"])
    return {"swarms": len(swarms), "agents": offered, "agents_holding_work": served}


async def _measure(phase: str, tmp: Path, n_coord: int, progress: Callable[[float, str], None]) -> dict[str, Any]:
    cg = _cgroup(tmp / f"cg-{phase}", FRACTIONS[phase])
    data_dir = tmp / f"data-{phase}"
    async with Client(server_params(data_dir, {"ANSF_CGROUP_ROOT": str(cg)}), mode="legacy") as client:
        status = await _ok(client, "system_status", {})
        if not status["phase"]["phase"].endswith(phase):
            raise RuntimeError(f"server reports {status['phase']['phase']!r} under the {phase} cgroup")
        progress(0.1, f"{phase}: agents served")
        served = await _agents_served(client, phase)
        progress(0.4, f"{phase}: coordinate latency")
        sw = await _ok(client, "spawn_swarm", {"name": "lat", "agents": [{"role": "dev"}] * 16})
        # The first decision of a process loads the model (when the phase allows one): timed on its own.
        t0 = time.perf_counter()
        await _ok(client, "coordinate", {"swarm_id": sw["swarm_id"],
                                         "tasks": [{"description": f"warm-up {j}"} for j in range(64)]})
        first_ms = round((time.perf_counter() - t0) * 1000, 1)
        latencies, strategies = [], set()
        started = time.perf_counter()
        for i in range(n_coord):
            tasks = [{"description": f"Round {i} task {j}: update the {('api', 'ui', 'docs', 'ci')[j % 4]}"}
                     for j in range(64)]
            t0 = time.perf_counter()
            result = await _ok(client, "coordinate", {"swarm_id": sw["swarm_id"], "tasks": tasks})
            latencies.append(time.perf_counter() - t0)
            progress(0.4 + 0.5 * (i + 1) / n_coord, f"{phase}: coordinate {i + 1}/{n_coord}")
            strategies.add(result["strategy"])
        wall = time.perf_counter() - started
        rss = process_rss(server_process(data_dir))
        final = await _ok(client, "system_status", {})
    return {
        "phase": status["phase"]["phase"],
        "reason": status["phase"]["reason"],
        "strategy": sorted(strategies),
        "coordinate_16x64": latency_summary(latencies),
        "decisions_per_s": round(n_coord / wall, 2),
        "first_decision_ms": first_ms,
        **served,
        "server_rss_mib": round(rss / 2**20, 1),
        "torch_imported": final["models"]["torch_imported"],
    }


def _quality(strategy: str, episodes: int) -> dict[str, Any]:
    try:
        from ansf_mcp.lab import evaluate, simulator
    except ImportError:
        return {"value_ratio": None, "why": "the simulator is not in this build"}
    from ansf_mcp.coordinator.strategies import coordinate

    sims = simulator.generate("heldout", episodes, 20_261, n_agents=8, n_tasks=16)
    ratios = [evaluate.value_ratio(s.episode, s.p_true, coordinate(s.episode, strategy)) for s in sims]
    mean, half = evaluate.mean_ci(ratios)
    return {"value_ratio": round(mean, 4), "ci95": round(half, 4), "episodes": episodes,
            "data": "simulated held-out episodes, 8 agents x 16 tasks"}


def run(ctx: SuiteContext) -> dict[str, Any]:
    n_coord = 5 if ctx.quick else 30
    episodes = 40 if ctx.quick else 300
    rows: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="ansf-phases-") as tmp:
        for k, phase in enumerate(FRACTIONS):
            ctx.progress(k / 3, f"phase {phase}")
            row = anyio.run(_measure, phase, Path(tmp), n_coord, ctx.scaled(k / 3, (k + 0.9) / 3))
            row["quality"] = _quality(row["strategy"][0], episodes)
            rows[phase] = row
    ctx.progress(1.0, "done")
    return {"matrix": rows, "cgroup_fractions": FRACTIONS}


def value_ratios(result: dict[str, Any]) -> list[ValueRatio]:
    """Per phase: the value ratio of the strategy that phase used (a phase without the simulator has none)."""
    found = []
    for row in (result.get("matrix") or {}).values():
        quality = row.get("quality") or {}
        label = f"{row.get('phase')} ({', '.join(row.get('strategy') or [])})"
        found.append(ratio(label, quality.get("value_ratio"), quality.get("ci95")))
    return [r for r in found if r is not None]


def markdown(r: dict[str, Any]) -> str:
    lines = [
        "| phase | strategy | SIMULATED value ratio ± 95 % CI | first decision ms | coordinate p50 / p99 ms | decisions/s | agents holding work | server RSS MiB | torch |",
        "| --- | --- | --- | ---: | --- | ---: | --- | ---: | --- |",
    ]
    for row in r["matrix"].values():
        q = row["quality"]
        quality = f"{q['value_ratio']:.3f} ± {q['ci95']:.3f} (n={q['episodes']})" if q["value_ratio"] is not None else q["why"]
        lat = row["coordinate_16x64"]
        lines.append(
            f"| {row['phase']} | {', '.join(row['strategy'])} | {quality} | {row['first_decision_ms']} | "
            f"{quantiles_text(lat, (50, 99))} | "
            f"{row['decisions_per_s']} | {row['agents_holding_work']} of {row['agents']} in {row['swarms']} swarm(s) | "
            f"{row['server_rss_mib']} | {'loaded' if row['torch_imported'] else 'not imported'} |"
        )
    lines.append("")
    lines.append("Phases forced through prepared cgroup v2 folders. The value ratio is measured on SIMULATED held-out "
                 "episodes; the rest is REAL, measured on the servers.")
    return "\n".join(lines)
