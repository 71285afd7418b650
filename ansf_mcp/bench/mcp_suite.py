"""Suite `mcp`: our tools over a real stdio connection, beside a trivial echo tool in the same run.

Calls are interleaved with echo calls so that noise on this shared machine hits both alike; the ratio
tool p50 / echo p50 is the headline, absolute numbers are context.

The SDK's client re-validates every structured result against the tool's output schema with jsonschema, which
for a 64-task swarm_status answer costs far more than the server's work. The main series switch that client-side
check off to measure the server round trip; one series keeps it on, so its cost is reported, not hidden.
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
from ansf_mcp.bench.procs import server_params
from ansf_mcp.bench.stats import latency_summary

Progress = Callable[[float, str], None]


async def _timed(client: Client, tool: str, args: dict[str, Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = await client.call_tool(tool, args)
    elapsed = time.perf_counter() - started
    if result.is_error:
        raise RuntimeError(f"{tool} failed during the benchmark: {result.content[0].text}")
    return elapsed, result.structured_content


async def _run(data_dir: Path, quick: bool, progress: Progress | None) -> dict[str, Any]:
    n_status = 60 if quick else 600
    n_pairs = 40 if quick else 300
    n_coord = 5 if quick else 40
    params = server_params(data_dir, echo=True)
    samples: dict[str, list[float]] = {k: [] for k in ("echo", "swarm_status", "swarm_status_16_tasks", "next_task", "report_outcome",
                                                          "next_task+report_outcome", "coordinate_16x64",
                                                          "swarm_status (SDK client validation on)")}
    async with Client(params, mode="legacy") as client:
        validate = client.session.validate_tool_result

        async def skip_validation(name: str, result: Any) -> None:
            return None

        client.session.validate_tool_result = skip_validation  # type: ignore[method-assign]
        agents = [{"role": r, "capabilities": [r]} for r in ("backend", "frontend", "testing", "devops") * 4]
        _, swarm = await _timed(client, "spawn_swarm", {"name": "bench", "agents": agents})
        sw = swarm["swarm_id"]
        work = [{"description": f"Implement endpoint {i} for the billing service"} for i in range(n_pairs)]
        for start in range(0, n_pairs, 500):
            await _timed(client, "coordinate", {"swarm_id": sw, "tasks": work[start : start + 500],
                                                "strategy": "round-robin"})
        for _ in range(20):  # warm-up, not recorded
            await _timed(client, "echo", {"text": "x"})
            await _timed(client, "swarm_status", {"swarm_id": sw, "max_tasks": 64})
        if progress:
            progress(0.1, "swarm_status")
        for _ in range(n_status):
            samples["echo"].append((await _timed(client, "echo", {"text": "ping"}))[0])
            samples["swarm_status"].append((await _timed(client, "swarm_status", {"swarm_id": sw, "max_tasks": 64}))[0])
            samples["swarm_status_16_tasks"].append(
                (await _timed(client, "swarm_status", {"swarm_id": sw, "max_tasks": 16}))[0]
            )
        client.session.validate_tool_result = validate  # type: ignore[method-assign]
        for _ in range(max(10, n_status // 10)):
            samples["swarm_status (SDK client validation on)"].append(
                (await _timed(client, "swarm_status", {"swarm_id": sw, "max_tasks": 64}))[0]
            )
        client.session.validate_tool_result = skip_validation  # type: ignore[method-assign]
        burst_started = time.perf_counter()
        for _ in range(n_status):
            await _timed(client, "swarm_status", {"swarm_id": sw, "max_tasks": 64})
        status_rate = n_status / (time.perf_counter() - burst_started)
        burst_started = time.perf_counter()
        for _ in range(n_status):
            await _timed(client, "echo", {"text": "ping"})
        echo_rate = n_status / (time.perf_counter() - burst_started)
        if progress:
            progress(0.5, "next_task + report_outcome")
        for i in range(n_pairs):
            agent = f"agent-{i % 16}"
            t_claim, claim = await _timed(client, "next_task", {"swarm_id": sw, "agent_id": agent})
            if not claim["claimed"]:
                raise RuntimeError(f"benchmark expected work for {agent}: {claim['reason']}")
            t_report, _ = await _timed(client, "report_outcome", {"swarm_id": sw, "agent_id": agent,
                                                                  "task_id": claim["task"]["id"], "success": i % 3 != 0})
            samples["next_task"].append(t_claim)
            samples["report_outcome"].append(t_report)
            samples["next_task+report_outcome"].append(t_claim + t_report)
        if progress:
            progress(0.8, "coordinate 16x64")
        for i in range(n_coord):
            batch = [{"description": f"Round {i}: task {j} touching the {('api', 'ui', 'tests', 'deploy')[j % 4]}"}
                     for j in range(64)]
            elapsed, result = await _timed(client, "coordinate", {"swarm_id": sw, "tasks": batch, "strategy": "history"})
            # 16 agents x capacity 1: 16 assigned, 48 left for later claims; anything else is a bug.
            if len(result["assignments"]) != 16:
                raise RuntimeError(f"coordinate assigned {len(result['assignments'])} of 64 tasks to 16 agents")
            samples["coordinate_16x64"].append(elapsed)
    summary = {name: latency_summary(values) for name, values in samples.items()}
    echo_p50 = summary["echo"]["p50_ms"]
    for figures in summary.values():
        figures["ratio_to_echo_p50"] = round(figures["p50_ms"] / echo_p50, 3) if echo_p50 else None
    return {
        "transport": "stdio (legacy initialize handshake, subprocess)",
        "board": f"16 agents, {n_pairs} tasks; swarm_status shows 64 tasks (16 in the *_16_tasks series)",
        "latency": summary,
        "sequential_calls_per_s": {"swarm_status": round(status_rate, 1), "echo": round(echo_rate, 1)},
        "targets": {
            "swarm_status_p50_within_1.5x_echo": summary["swarm_status"]["ratio_to_echo_p50"] <= 1.5,
            "swarm_status_at_least_700_calls_per_s": status_rate >= 700,
        },
    }


def run(ctx: SuiteContext) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="ansf-bench-") as tmp:
        return anyio.run(_run, Path(tmp), ctx.quick, ctx.progress)


def markdown(report: dict[str, Any]) -> str:
    lines = [
        "| call | n | p50 ms | p99 ms | × echo p50 |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for name, f in report["latency"].items():
        lines.append(f"| {name} | {f['n']} | {f['p50_ms']:.3f} | {f['p99_ms']:.3f} | {f['ratio_to_echo_p50']:.2f} |")
    rates = report["sequential_calls_per_s"]
    lines.append("")
    lines.append(f"Board: {report['board']}; transport: {report['transport']}.")
    lines.append(f"Sequential calls/s: swarm_status {rates['swarm_status']}, echo {rates['echo']}.")
    return "\n".join(lines)
