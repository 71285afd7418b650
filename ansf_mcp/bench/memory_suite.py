"""Suite `memory`: RSS of the idle server, with each neural profile loaded, at peak while coordinating, and the
semantic cache on disk. Every figure is read from a real process (psutil / getrusage) or a real directory."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import anyio
from mcp import Client

from ansf_mcp.bench.context import SuiteContext
from ansf_mcp.bench.procs import python_peak_rss, server_params, server_process
from ansf_mcp.system.measure import process_rss

MiB = 1 << 20


async def _idle_server(data_dir: Path) -> dict[str, Any]:
    async with Client(server_params(data_dir), mode="legacy") as client:
        await client.list_tools()
        status = (await client.call_tool("system_status", {})).structured_content
        proc = server_process(data_dir)
        idle = process_rss(proc)
        sw = (await client.call_tool("spawn_swarm", {"name": "m", "agents": [{"role": "r"}] * 16})).structured_content
        tasks = [{"description": f"Implement feature {i} of the reporting service"} for i in range(64)]
        result = await client.call_tool("coordinate", {"swarm_id": sw["swarm_id"], "tasks": tasks})
        if result.is_error:
            raise RuntimeError(result.content[0].text)
        after = process_rss(proc)
        after_status = (await client.call_tool("system_status", {})).structured_content
    return {
        "idle_rss_mib": round(idle / MiB, 1),
        "torch_imported_when_idle": status["models"]["torch_imported"],
        "after_coordinate_auto_rss_mib": round(after / MiB, 1),
        "coordinate_auto_strategy": result.structured_content["strategy"],
        "torch_imported_after_coordinate": after_status["models"]["torch_imported"],
    }


def _profiles() -> list[str]:
    from ansf_mcp.coordinator.profiles import PROFILES

    return list(PROFILES)


def run(ctx: SuiteContext) -> dict[str, Any]:
    ctx.progress(0.0, "idle server")
    with tempfile.TemporaryDirectory(prefix="ansf-mem-") as tmp:
        server = anyio.run(_idle_server, Path(tmp))
    profiles: dict[str, Any] = {}
    names = _profiles()
    for k, name in enumerate(names):
        ctx.progress(0.2 + 0.5 * k / max(1, len(names)), f"profile {name}")
        profiles[name] = python_peak_rss(
            "import psutil\n"
            "from ansf_mcp.coordinator import neural\n"
            f"est = neural.load({name!r})\n"
            "result = {'rss_after_load_mib': psutil.Process().memory_info().rss / 2**20}\n"
        )
    ctx.progress(0.75, "peak while coordinating")
    episodes = 20 if ctx.quick else 100
    peak = python_peak_rss(
        "from ansf_mcp.lab import simulator\n"
        "from ansf_mcp.coordinator.strategies import coordinate\n"
        f"sims = simulator.generate('heldout', {episodes}, 7, n_agents=16, n_tasks=64)\n"
        "used = {coordinate(s.episode, 'auto').strategy for s in sims}\n"
        "result = {'strategies': sorted(used), 'episodes': len(sims)}\n"
    )
    ctx.progress(0.85, "the largest input the coordinate tool accepts")
    # 480 tasks of 8 000 distinct-word characters fill the 4 MiB request cap; 64 agents (a swarm's limit) each
    # bring the 200 past tasks a decision reads, as long as a task may be. Before the comparisons were bounded,
    # 480 such tasks alone took a server from 132 MB to 3.9 GB.
    largest = python_peak_rss(
        "import time\n"
        "from ansf_mcp.coordinator.episode import Episode\n"
        "from ansf_mcp.coordinator.strategies import coordinate\n"
        "def text(k):\n"
        "    return ' '.join(f'w{k}x{i}' for i in range(1200))[:8000]\n"
        "agents = [{'id': f'a{i}', 'history': [{'task': text(i * 1000 + h), 'success': h % 3 > 0}\n"
        "           for h in range(200)]} for i in range(64)]\n"
        "ep = Episode.model_validate({'agents': agents, 'tasks': [{'id': f't{j}', 'description': text(-j - 1)}\n"
        "                             for j in range(480)]})\n"
        "t0 = time.perf_counter()\n"
        "res = coordinate(ep, 'auto')\n"
        "result = {'seconds': round(time.perf_counter() - t0, 2), 'strategy': res.strategy,\n"
        "          'assigned': len(res.assignments), 'agents': 64, 'tasks': 480, 'history_per_agent': 200}\n",
        timeout=1200,
    )
    semantic = ctx.previous.get("semantic", {})
    if "cache_after_passes" in semantic:
        cache_bytes = semantic["cache_after_passes"]["bytes_on_disk"]
        cache_dir = Path(semantic.get("cache_dir", "the semantic suite's cache"))
    else:
        cache_dir = ctx.data_dir / "semantic-cache"
        cache_bytes = sum(p.stat().st_size for p in cache_dir.rglob("*") if p.is_file()) if cache_dir.exists() else None
    ctx.progress(1.0, "done")
    return {
        "server": server,
        "profiles": profiles or "no neural profile is shipped in this build",
        "peak_coordinating_16x64": peak,
        "largest_accepted_input": largest,
        "semantic_cache_on_disk_bytes": cache_bytes,
        "semantic_cache_dir": str(cache_dir),
        "targets": {"idle_server_at_most_80_mib": server["idle_rss_mib"] <= 80},
    }


def markdown(r: dict[str, Any]) -> str:
    s = r["server"]
    lines = [
        "| what | RSS MiB | notes |",
        "| --- | ---: | --- |",
        f"| idle stdio server (tools listed, no model) | {s['idle_rss_mib']} | torch imported: {s['torch_imported_when_idle']} |",
        f"| server after one 16×64 `coordinate` (auto) | {s['after_coordinate_auto_rss_mib']} | "
        f"strategy {s['coordinate_auto_strategy']}, torch imported: {s['torch_imported_after_coordinate']} |",
    ]
    if isinstance(r["profiles"], dict):
        for name, f in r["profiles"].items():
            lines.append(f"| python + profile `{name}` loaded | {f['rss_after_load_mib']:.1f} | peak {f['peak_rss_mib']:.1f} |")
    else:
        lines.append(f"| neural profiles | — | {r['profiles']} |")
    p = r["peak_coordinating_16x64"]
    lines.append(f"| peak while coordinating {p['episodes']} episodes 16×64 | {p['peak_rss_mib']:.1f} | "
                 f"strategies {', '.join(p['strategies'])} |")
    big = r.get("largest_accepted_input")
    if big:
        lines.append(
            f"| peak coordinating the largest accepted input ({big['agents']} agents × {big['history_per_agent']} "
            f"past tasks, {big['tasks']} tasks, 8 000 characters each) | {big['peak_rss_mib']:.1f} | "
            f"{big['seconds']} s, strategy {big['strategy']} |"
        )
    cache = r["semantic_cache_on_disk_bytes"]
    lines.append(f"| semantic cache on disk | {'—' if cache is None else f'{cache / 2**20:.2f}'} | "
                 f"{r['semantic_cache_dir']}{'' if cache is not None else ' (empty: no semantic query yet)'} |")
    if r.get("targets"):  # judged in the result; a missed one must show in the report, not only in its JSON
        lines += ["", "Targets: " + ", ".join(f"{k} {'met' if v else 'MISSED'}" for k, v in r["targets"].items()) + "."]
    return "\n".join(lines)
