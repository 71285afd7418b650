"""Semantic benchmark: cold/warm latency per tool through the MCP server in-process, jedi-language-server
direct beside ours, server start time and RSS, cache bytes on disk, hit ratio on a replayed query log.

Query set: up to `max_files` Python files of the project (seeded sample); per file a `symbols_overview`, and for
up to 2 of its top-level functions/classes a `find_symbol`, a `find_references` and a `goto_definition` on the
name. The replayed log draws `replay_len` queries from that set with Zipf(1.2) popularity (agents revisit hot
files) in seeded random order, and replays them against a fresh cache. jedi-language-server direct answers the
same queries (those ours answered without an error) in the same passes, query by query, which side goes first
alternating (bench/interleave.py), so both meet the same moments of a shared machine's load.

Run: ansf bench --suite semantic --project PROJECT (or python -m ansf_mcp.bench.semantic_suite PROJECT [--json FILE])
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio

from ansf_mcp.bench.interleave import round_order
from ansf_mcp.semantic.languages.python import EXTENSIONS as PY_EXT
from ansf_mcp.semantic.languages.python import spec as python_spec
from ansf_mcp.semantic.lsp import LanguageServer, LspLoop
from ansf_mcp.semantic.paths import walk_files
from ansf_mcp.system.stats import latency_summary, quantile_text, quantiles_text

# The LSP request each tool stands on, for timing jedi-language-server directly on the same queries.
DIRECT_METHOD = {"symbols_overview": "textDocument/documentSymbol", "find_symbol": "textDocument/documentSymbol",
                 "find_references": "textDocument/references", "goto_definition": "textDocument/definition"}


def _summary(xs: list[float]) -> dict | None:
    return latency_summary(xs) if xs else None


def run_semantic_bench(project: Path, data_dir: Path, progress: Callable[[float, str], None] | None = None,
                       *, max_files: int = 25, warm_reps: int = 5, replay_len: int = 400, seed: int = 7) -> dict:
    from ansf_mcp.semantic.host import SemanticHost
    from ansf_mcp.semantic.service import SemanticService
    from ansf_mcp.tools.registry import Toolbox, tool_server
    from ansf_mcp.tools.semantic_tools import add_tools

    project = Path(project).resolve()
    data_dir = Path(data_dir).resolve()
    say = progress or (lambda _f, _m: None)
    rnd = random.Random(seed)
    files = sorted(p for p in walk_files(project, project, PY_EXT))
    files = [p for p in files if p.stat().st_size < 300_000]
    sample = sorted(rnd.sample(files, min(max_files, len(files))))
    rels = [p.relative_to(project).as_posix() for p in sample]
    if not rels:
        raise ValueError(f"no Python files under {project}")
    bench_dir = Path(tempfile.mkdtemp(prefix="semantic-bench-", dir=data_dir if data_dir.exists() else None))

    def make(cache_name: str):
        server = tool_server("semantic-bench")
        host = SemanticHost(project, data_dir, cache_dir=bench_dir / cache_name)
        add_tools(Toolbox(server), host)
        return server, host.service()

    result: dict[str, Any] = {"project": str(project), "files_in_project": len(files), "files_sampled": len(rels)}
    # jedi-language-server direct: same init options, same requests, no MCP, no cache, no post-processing; and a
    # service of our own that finds find_references' positions, outside any timing (not part of the request).
    loop = LspLoop()
    direct = LanguageServer(python_spec(project), project, loop)
    locator = SemanticService(project, data_dir, cache_dir=bench_dir / "locate-cache")

    async def main() -> None:
        from mcp import Client

        server, svc = make("cache")
        tools: dict[str, dict[str, list[float]]] = {}
        direct_lat: dict[str, dict[str, list[float]]] = {}
        queries: list[tuple[str, dict]] = []
        turns = 0

        def direct_params(tool: str, args: dict) -> tuple[Path, dict]:
            if tool == "find_references":
                _p, _r, _l, loc = locator._locate(args["name_path"], args["relative_path"])
                return project / args["relative_path"], {
                    "position": {"line": loc.node["sel"][0], "character": loc.node["sel"][1]},
                    "context": {"includeDeclaration": False}}
            if tool == "goto_definition":
                return project / args["relative_path"], {"position": {"line": args["line"] - 1,
                                                                      "character": args["column"] - 1}}
            return project / args["relative_path"], {}

        def timed_direct(tool: str, path: Path, extra: dict) -> float:
            t0 = time.perf_counter()
            direct.request(DIRECT_METHOD[tool], path, lambda u: {"textDocument": {"uri": u}, **extra})
            return time.perf_counter() - t0

        async def both(c: Any, tool: str, args: dict, phase: str) -> Any:
            """One query timed on both sides, which goes first alternating query by query (round_order), so a
            load change on this shared machine meets both alike; ours's answer. A query ours answered with an
            error is kept by neither: both cold columns are the same queries."""
            nonlocal turns
            path, extra = await anyio.to_thread.run_sync(direct_params, tool, args)  # untimed
            took: dict[str, float] = {}
            answers = []
            for side in round_order(("ours", "direct"), turns):
                if side == "ours":
                    t0 = time.perf_counter()
                    answers.append(await c.call_tool(tool, args))
                    took[side] = time.perf_counter() - t0
                else:
                    took[side] = await anyio.to_thread.run_sync(timed_direct, tool, path, extra)
            turns += 1
            answer = answers[0]
            if not answer.is_error:
                tools.setdefault(tool, {"cold": [], "warm": []})[phase].append(took["ours"])
                direct_lat.setdefault(tool, {"cold": [], "warm": []})[phase].append(took["direct"])
            return answer

        async with Client(server) as c:
            # The first request of each (language server start) apart, in neither cold column.
            t0 = time.perf_counter()
            await c.call_tool("symbols_overview", {"relative_path": rels[0]})
            first_call = time.perf_counter() - t0
            srv = svc.server("python")
            result["server"] = {"name": "jedi-language-server", "version": srv.spec.version,
                                "start_seconds": srv.start_seconds, "first_call_seconds": round(first_call, 3)}
            result["direct_jedi"] = {"start_plus_first_call_seconds": round(await anyio.to_thread.run_sync(
                timed_direct, "symbols_overview", project / rels[0], {}), 3)}
            svc.cache.clear()
            say(0.05, "cold pass, jedi direct interleaved")
            for i, rel in enumerate(rels):
                r = await both(c, "symbols_overview", {"relative_path": rel}, "cold")
                if not r.is_error:
                    queries.append(("symbols_overview", {"relative_path": rel}))
                syms = [] if r.is_error else next(iter(r.structured_content["files"].values()), [])
                picks = [s for s in syms if s["kind"] in ("function", "class")][:2]
                for s in picks:
                    for tool, args in (
                        ("find_symbol", {"name_path": s["name_path"], "relative_path": rel}),
                        ("find_references", {"name_path": s["name_path"], "relative_path": rel}),
                        ("goto_definition", {"relative_path": rel, "line": s["line"], "column": s["column"]}),
                    ):
                        if not (await both(c, tool, args, "cold")).is_error:
                            queries.append((tool, args))
                say(0.05 + 0.4 * (i + 1) / len(rels), f"cold {i + 1}/{len(rels)}")
            say(0.5, "warm passes, jedi direct interleaved")
            for _ in range(warm_reps):
                for tool, args in queries:
                    await both(c, tool, args, "warm")
            result["server"]["rss_mb"] = round((srv.rss_bytes() or 0) / 2**20, 1)
            result["tools"] = {t: {"cold": _summary(v["cold"]), "warm": _summary(v["warm"])} for t, v in tools.items()}
            result["direct_jedi"].update({
                "start_seconds": direct.start_seconds, "rss_mb": round((direct.rss_bytes() or 0) / 2**20, 1),
                "tools": {t: {"method": DIRECT_METHOD[t], "cold": _summary(v["cold"]), "warm": _summary(v["warm"])}
                          for t, v in direct_lat.items()}})
            result["cache_after_passes"] = {k: svc.cache.stats()[k] for k in ("entries", "bytes_on_disk", "hits",
                                                                             "misses")}
        svc.shutdown()

        # Replayed mixed log against a fresh cache.
        say(0.65, "replaying the query log")
        server2, svc2 = make("replay-cache")
        weights = [1 / (k + 1) ** 1.2 for k in range(len(queries))]
        order = list(range(len(queries)))
        rnd.shuffle(order)
        log = [queries[order[rnd.choices(range(len(queries)), weights)[0]]] for _ in range(replay_len)]
        lat: list[float] = []
        async with Client(server2) as c:
            for tool, args in log:
                t0 = time.perf_counter()
                await c.call_tool(tool, args)
                lat.append(time.perf_counter() - t0)
        st = svc2.cache.stats()
        result["replay"] = {"queries": replay_len, "distinct": len({json.dumps(q, sort_keys=True) for q in log}),
                            "hit_ratio": st["hit_ratio"], "hits": st["hits"], "misses": st["misses"],
                            "latency": _summary(lat), "bytes_on_disk": st["bytes_on_disk"],
                            "how": "seeded Zipf(1.2) draw over the benchmark's own query set, fresh cache"}
        svc2.shutdown()
        result["queries"] = len(queries)

    try:
        anyio.run(main)
    finally:
        locator.shutdown()
        direct.stop()
        loop.stop()
        shutil.rmtree(bench_dir, ignore_errors=True)
    say(1.0, "done")
    return result


def format_table(r: dict) -> str:
    # The hit ratio counts answer-cache lookups, which are not the queries (some tools make none, find_references
    # several, docs/SEMANTIC.md): its counts go beside it, or '100 queries (24 distinct): hit ratio 81 %' reads as
    # more hits than a fresh cache can give.
    lines = [f"Project: `{r['project']}` ({r['files_in_project']} Python files, {r['files_sampled']} sampled, "
             f"{r['queries']} queries)", "",
             "Ours: through MCP in-process, with our answer cache. jedi-language-server direct: the same queries as "
             "bare LSP requests, no MCP, no cache, interleaved with ours query by query (which side goes first "
             "alternates). Both sides alike: the first request (language server start) apart, cold = each query's first request (the "
             "queries ours answered), warm = the repeats after it. p50 / p99 ms with the sample count n.", "",
             "| tool | ours cold | jedi direct cold | ours warm | jedi direct warm |", "|---|---|---|---|---|"]
    direct = r["direct_jedi"].get("tools") or {}
    for t, v in r["tools"].items():
        d = direct.get(t) or {}
        lines.append(f"| {t} | {quantiles_text(v['cold'], (50, 99), 3)} | {quantiles_text(d.get('cold'), (50, 99), 3)} "
                     f"| {quantiles_text(v['warm'], (50, 99), 3)} | {quantiles_text(d.get('warm'), (50, 99), 3)} |")
    for m, v in (r["direct_jedi"].get("requests") or {}).items():  # a report stored before cold and warm were apart
        lines.append(f"| jedi direct {m}, cold and warm mixed | | {quantiles_text(v, (50, 99), 3)} | | |")
    first = r["server"].get("first_call_seconds")
    lines += ["", f"First request (language server start + first call, n=1): ours {first} s, jedi direct "
              f"{r['direct_jedi'].get('start_plus_first_call_seconds')} s."]
    s, rp = r["server"], r["replay"]
    lines += ["", f"Server start {s['start_seconds']:.2f} s, RSS {s['rss_mb']} MiB; cache on disk after passes "
              f"{r['cache_after_passes']['bytes_on_disk'] / 1e6:.2f} MB; replay of {rp['queries']} queries "
              f"({rp['distinct']} distinct): answer-cache hit ratio {rp['hit_ratio']:.1%} ({rp['hits']} hits of "
              f"{rp['hits'] + rp['misses']} cache lookups), p50 ms {quantile_text(rp['latency'], 50, 3)}, "
              f"cache {rp['bytes_on_disk'] / 1e6:.2f} MB."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("project", type=Path)
    ap.add_argument("--data-dir", type=Path, default=None)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--max-files", type=int, default=25)
    a = ap.parse_args(argv)
    data = a.data_dir or Path(tempfile.mkdtemp(prefix="semantic-bench-data-"))
    data.mkdir(parents=True, exist_ok=True)
    r = run_semantic_bench(a.project, data, lambda f, m: print(f"[{f:4.0%}] {m}", file=sys.stderr),
                           max_files=a.max_files)
    if a.json:
        a.json.write_text(json.dumps(r, indent=2))
    print(format_table(r), file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
