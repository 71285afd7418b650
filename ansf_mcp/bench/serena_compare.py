"""Side by side with Serena, in one run, on the same repositories (each server on its own scratch copy).

    python -m ansf_mcp.bench.serena_compare REPO [REPO...] --serena /path/to/serena [--serena-home DIR]
        [--rename REPO:NAME_PATH:FILE:NEW_NAME --test-cmd "..."] [--json FILE]

Per repository and server: start to first answer, the first heavy reference query on a fresh server (the first
request, reported apart), cold (each later query's first call) and warm (repeats) p50/p95 with n for every tool
both have, reference completeness against the tokenizer truth (`semantic_truth`), peak RSS of the server and its language servers (VmHWM per process,
summed), and the cache on disk. With --rename: a rename through each server on its own copy, the project's
tests run afterwards (--test-cmd, in the copy), time per edit. Serena needs its own environment (it pins
another mcp); see docs/SEMANTIC.md for the set-up used.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import anyio
import psutil
from mcp import Client, StdioServerParameters

from ansf_mcp.bench.semantic_truth import completeness, name_counts, name_lines
from ansf_mcp.semantic.cache import dir_bytes
from ansf_mcp.system.measure import peak_rss, tree_rss
from ansf_mcp.system.stats import latency_summary, quantiles_text

WARM_REPS = 5


class Side:
    """One server under test: how to start it and how to phrase each shared tool for it."""

    name = ""

    def params(self, project: Path) -> StdioServerParameters:
        raise NotImplementedError

    def cache_dir(self, project: Path) -> Path:
        raise NotImplementedError

    def call(self, tool: str, **a: Any) -> tuple[str, dict[str, Any]]:
        raise NotImplementedError

    def ref_lines(self, result: Any) -> set[tuple[str, int]]:
        raise NotImplementedError


class Ours(Side):
    name = "ours"

    def __init__(self, data_dir: Path, after_index: bool = False, index: bool = True):
        self.data_dir = data_dir
        self.after_index = after_index
        self.index = index or after_index

    def params(self, project: Path) -> StdioServerParameters:
        # The index at start, as the shared server every stdio client reaches runs it (a standalone server
        # leaves it off unless ANSF_SEMANTIC_INDEX=1); --no-index measures without it.
        return StdioServerParameters(command=sys.executable, args=["-m", "ansf_mcp", "serve", "--standalone", "--project",
                                                                   str(project), "--data-dir", str(self.data_dir)],
                                     env={**os.environ, "ANSF_LOG_LEVEL": "WARNING",
                                          "ANSF_SEMANTIC_INDEX": "1" if self.index else "0"})

    def cache_dir(self, project: Path) -> Path:
        return self.data_dir / "semantic-cache"

    def call(self, tool: str, **a: Any) -> tuple[str, dict[str, Any]]:
        if tool == "overview":
            return "symbols_overview", {"relative_path": a["relative_path"]}
        if tool == "find_symbol":
            return "find_symbol", {"name_path": a["name_path"]}
        if tool == "references":
            return "find_references", {"name_path": a["name_path"], "relative_path": a["relative_path"]}
        if tool == "search":
            return "search_for_pattern", {"pattern": a["pattern"]}
        if tool == "diagnostics":
            return "get_diagnostics", {"relative_path": a["relative_path"]}
        if tool == "rename":
            return "rename_symbol", {"name_path": a["name_path"], "relative_path": a["relative_path"],
                                     "new_name": a["new_name"]}
        raise KeyError(tool)


class Serena(Side):
    name = "serena"

    def __init__(self, exe: str, home: Path):
        self.exe, self.home = exe, home

    def params(self, project: Path) -> StdioServerParameters:
        return StdioServerParameters(command=self.exe, args=[
            "start-mcp-server", "--project", str(project), "--context", "agent", "--agent-interface", "tools",
            "--enable-web-dashboard", "False", "--open-web-dashboard", "False", "--log-level", "ERROR"],
            env={**os.environ, "SERENA_HOME": str(self.home)})

    def cache_dir(self, project: Path) -> Path:
        return project / ".serena"

    def call(self, tool: str, **a: Any) -> tuple[str, dict[str, Any]]:
        big = {"max_answer_chars": 10_000_000}
        if tool == "overview":
            return "get_symbols_overview", {"relative_path": a["relative_path"], **big}
        if tool == "find_symbol":
            return "find_symbol", {"name_path_pattern": a["name_path"], **big}
        if tool == "references":
            return "find_referencing_symbols", {"name_path": a["name_path"], "relative_path": a["relative_path"],
                                                **big}
        if tool == "search":
            return "search_for_pattern", {"substring_pattern": a["pattern"], **big}
        if tool == "diagnostics":
            return "get_diagnostics_for_file", {"relative_path": a["relative_path"], **big}
        if tool == "rename":
            return "rename_symbol", {"name_path": a["name_path"], "relative_path": a["relative_path"],
                                     "new_name": a["new_name"]}
        raise KeyError(tool)


def our_ref_lines(pages: list[dict[str, Any]]) -> set[tuple[str, int]]:
    return {(f["relative_path"], r["line"]) for p in pages for f in p["files"] for r in f["references"]}


def serena_ref_lines(text: str) -> set[tuple[str, int]]:
    """Serena answers JSON text {file: {kind: [{..., content_around_reference: '... >  N: code'}]}}; its line
    numbers there are 0-based (checked by hand: '>   4:' marks a file's fifth line)."""
    out: set[tuple[str, int]] = set()
    try:
        data = json.loads(text)
    except ValueError:
        return out
    for rel, kinds in data.items():
        for items in (kinds or {}).values():
            for item in items:
                for m in re.finditer(r">\s*(\d+):", item.get("content_around_reference") or ""):
                    out.add((rel, int(m.group(1)) + 1))
                if "reference_line" in item:
                    out.add((rel, int(item["reference_line"]) + 1))
    return out


def peak_rss_mib(pid: int) -> dict[str, float]:
    """Peak resident set (VmHWM) of the server process and of its children (the language servers), MiB."""
    out = {"server": 0.0, "children": 0.0}
    try:
        procs = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    except psutil.Error:
        return out
    for p in procs:
        peak = peak_rss(p.pid)
        if peak is not None:
            out["server" if p.pid == pid else "children"] += peak / 2**20
    out = {k: round(v, 1) for k, v in out.items()}
    out["total"] = round(out["server"] + out["children"], 1)
    return out


class TreePeak:
    """Peak of the summed RSS of a process tree, sampled (children come and go; VmHWM of the dead is lost)."""

    def __init__(self, pid: int):
        self.pid, self.peak, self._stop = pid, 0, threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.peak = max(self.peak, tree_rss(self.pid))
            except psutil.Error:
                pass
            self._stop.wait(0.2)

    def stop(self) -> float:
        self._stop.set()
        self._t.join(2)
        return round(self.peak / 2**20, 1)


def server_pid(marker: str) -> int:
    for child in psutil.Process().children(recursive=True):
        try:
            if marker in " ".join(child.cmdline()):
                return child.pid
        except psutil.Error:
            continue
    raise RuntimeError(f"server with {marker!r} in its command line not found")


def pick_targets(root: Path, count: int = 3) -> list[dict[str, Any]]:
    """Heavily used class names defined once in the project (so the tokenizer truth is fair)."""
    counts = name_counts(root)
    defs: dict[str, list[tuple[str, int]]] = {}
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        if any(part.startswith(".") or part in ("build", "dist", "docs") for part in Path(rel).parts):
            continue
        for i, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines()):
            m = re.match(r"class (\w+)\b", line)
            if m:
                defs.setdefault(m.group(1), []).append((rel, i + 1))
    ranked = sorted((n for n, d in defs.items() if len(d) == 1 and len(n) > 3), key=lambda n: -counts[n])
    chosen = ranked[:count - 1] + ranked[len(ranked) // 4: len(ranked) // 4 + 1]
    return [{"name": n, "relative_path": defs[n][0][0], "line": defs[n][0][1]} for n in chosen]


async def _timed(client: Client, side: Side, tool: str, **a: Any) -> tuple[float, Any]:
    name, args = side.call(tool, **a)
    t0 = time.perf_counter()
    r = await client.call_tool(name, args)
    dt = time.perf_counter() - t0
    if r.is_error:
        text = " ".join(getattr(c, "text", "") for c in r.content)
        raise RuntimeError(f"{side.name} {name} failed: {text[:300]}")
    return dt, (r.structured_content if side.name == "ours" else " ".join(getattr(c, "text", "")
                                                                         for c in r.content))


async def _all_our_pages(client: Client, side: Side, **a: Any) -> tuple[float, list[dict[str, Any]]]:
    dt, page = await _timed(client, side, "references", **a)
    pages = [page]
    while page.get("next_cursor"):
        name, args = side.call("references", **a)
        t0 = time.perf_counter()
        r = await client.call_tool(name, {**args, "cursor": page["next_cursor"]})
        dt += time.perf_counter() - t0
        page = r.structured_content
        pages.append(page)
    return dt, pages


async def measure(side: Side, root: Path, targets: list[dict[str, Any]], files: list[str],
                  patterns: list[str], say) -> dict[str, Any]:
    out: dict[str, Any] = {"server": side.name}
    samples: dict[str, dict[str, list[float]]] = {}

    def add(tool: str, kind: str, dt: float) -> None:
        samples.setdefault(tool, {"cold": [], "warm": []})[kind].append(dt)

    t0 = time.perf_counter()
    async with Client(side.params(root), mode="legacy") as client:
        client.session.validate_tool_result = _no_validation  # type: ignore[method-assign]
        out["start_s"] = round(time.perf_counter() - t0, 2)
        marker = str(side.data_dir) if isinstance(side, Ours) else str(side.home)
        pid = server_pid(marker) if isinstance(side, Ours) else server_pid("start-mcp-server")
        sampler = TreePeak(pid)
        heavy = targets[0]
        if isinstance(side, Ours) and side.after_index:
            say(f"{side.name}: waiting for the background index")
            out["index_s"] = await _wait_for_index(client)
        say(f"{side.name}: first heavy query ({heavy['name']})")
        t1 = time.perf_counter()
        first = await _query_refs(client, side, heavy)
        out["first_heavy_query_s"] = round(time.perf_counter() - t1, 2)
        out["first_heavy_query_since_start_s"] = round(time.perf_counter() - t0, 2)
        # Not a cold sample: a fresh server's first query also pays for starting its language server (and, for
        # Serena, for what it reads at start), which the other cold queries do not; mixed into their percentile it
        # was the whole "cold" tail. It is reported apart, as the first request.
        out["completeness"] = {}
        refs = {heavy["name"]: first}
        for t in targets[1:]:
            t1 = time.perf_counter()
            refs[t["name"]] = await _query_refs(client, side, t)
            add("references", "cold", time.perf_counter() - t1)
        for t in targets:
            truth = name_lines(root, t["name"])
            out["completeness"][t["name"]] = completeness(refs[t["name"]], truth, (t["relative_path"], t["line"]))
        say(f"{side.name}: cold and warm calls")
        calls: list[tuple[str, dict[str, Any]]] = [("overview", {"relative_path": f}) for f in files]
        calls += [("find_symbol", {"name_path": t["name"]}) for t in targets]
        calls += [("search", {"pattern": p}) for p in patterns]
        calls += [("diagnostics", {"relative_path": f}) for f in files[:3]]
        for tool, a in calls:
            dt, _ = await _timed(client, side, tool, **a)
            add(tool, "cold", dt)
        for _ in range(WARM_REPS):
            for tool, a in calls:
                dt, _ = await _timed(client, side, tool, **a)
                add(tool, "warm", dt)
            for t in targets:
                t1 = time.perf_counter()
                await _query_refs(client, side, t)
                add("references", "warm", time.perf_counter() - t1)
        out["peak_rss_mib_sampled"] = sampler.stop()
        out["peak_rss_mib_vmhwm"] = peak_rss_mib(pid)
    out["latency_ms"] = {tool: {kind: _ms(v) for kind, v in kinds.items() if v}
                         for tool, kinds in samples.items()}
    cache = side.cache_dir(root)
    out["cache_bytes"] = dir_bytes(cache) if cache.exists() else 0
    out["cache_inside_repository"] = cache.is_relative_to(root)
    return out


async def _wait_for_index(client: Client, limit_s: float = 600) -> float | None:
    """Seconds the background index took (system_status reports it), or None when it did not finish."""
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < limit_s:
        r = await client.call_tool("system_status", {})
        index = (((r.structured_content or {}).get("components") or {}).get("semantic") or {}).get("index") or {}
        if index.get("state") in ("done", "stopped"):
            return index.get("seconds")
        await anyio.sleep(0.5)
    return None


async def _query_refs(client: Client, side: Side, t: dict[str, Any]) -> set[tuple[str, int]]:
    if isinstance(side, Ours):
        _dt, pages = await _all_our_pages(client, side, name_path=t["name"], relative_path=t["relative_path"])
        return our_ref_lines(pages)
    _dt, text = await _timed(client, side, "references", name_path=t["name"], relative_path=t["relative_path"])
    return serena_ref_lines(text)


async def _no_validation(name: str, result: Any) -> None:
    return None


def _ms(samples_s: list[float]) -> dict[str, Any]:
    """The latency summary in ms, rounded to 0.1 ms."""
    return {k: round(v, 1) if isinstance(v, float) else v for k, v in latency_summary(samples_s).items()}


async def rename_run(side: Side, root: Path, name_path: str, rel: str, new_name: str, test_cmd: str | None,
                     say) -> dict[str, Any]:
    before = name_lines(root, name_path.split("/")[-1])
    async with Client(side.params(root), mode="legacy") as client:
        client.session.validate_tool_result = _no_validation  # type: ignore[method-assign]
        await _timed(client, side, "overview", relative_path=rel)  # the server is up and has seen the file
        say(f"{side.name}: rename {name_path} -> {new_name}")
        dt, result = await _timed(client, side, "rename", name_path=name_path, relative_path=rel, new_name=new_name)
    after_old = name_lines(root, name_path.split("/")[-1])
    after_new = name_lines(root, new_name)
    edits = result.get("total_edits") if isinstance(result, dict) else None
    out = {"server": side.name, "seconds": round(dt, 2), "edits_reported": edits,
           "lines_with_old_name_before": len(before), "lines_with_old_name_after": len(after_old),
           "lines_with_new_name_after": len(after_new)}
    n = edits or len(after_new)
    out["ms_per_edit"] = round(dt * 1000 / n, 2) if n else None
    if test_cmd:
        proc = subprocess.run(test_cmd, shell=True, cwd=root, capture_output=True, text=True, timeout=1200)
        tail = proc.stdout.strip().splitlines()[-1:] if proc.stdout.strip() else []
        out["tests"] = {"returncode": proc.returncode, "summary": tail[0] if tail else proc.stderr[-300:]}
    return out


def scratch_copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns(".git", ".serena", "__pycache__", ".venv"))
    return dst


async def compare(repos: list[Path], serena_exe: str | None, serena_home: Path, work: Path,
                  rename: list[str], test_cmd: str | None, say, after_index: bool = False,
                  index: bool = True) -> dict[str, Any]:
    report: dict[str, Any] = {"repositories": {}, "renames": []}
    for repo in repos:
        repo = repo.resolve()
        targets = pick_targets(repo)
        files = [t["relative_path"] for t in targets]
        files += [f for f in sorted(p.relative_to(repo).as_posix() for p in repo.glob("*/**/*.py"))
                  if "test" not in f and f not in files][:2]
        patterns = [rf"\b{targets[0]['name']}\(", r"def __init__\(", r"TODO|FIXME"]
        entry: dict[str, Any] = {"targets": targets, "files": files, "python_files": len(list(repo.rglob("*.py")))}
        sides: list[Side] = [Ours(work / f"{repo.name}-data", after_index, index)]
        if serena_exe:
            sides.append(Serena(serena_exe, serena_home))
        for side in sides:
            copy = scratch_copy(repo, work / f"{repo.name}-{side.name}")
            say(f"{repo.name}: {side.name}")
            try:
                entry[side.name] = await measure(side, copy, targets, files, patterns, say)
            except Exception as exc:  # report what failed, keep the other side's figures
                entry[side.name] = {"error": f"{type(exc).__name__}: {exc}"}
        report["repositories"][repo.name] = entry
    for spec in rename:
        repo_s, name_path, rel, new_name = spec.split(":")
        repo = Path(repo_s).resolve()
        sides = [Ours(work / f"rename-{repo.name}-data")]
        if serena_exe:
            sides.append(Serena(serena_exe, serena_home))
        for side in sides:
            copy = scratch_copy(repo, work / f"rename-{repo.name}-{side.name}")
            try:
                r = await rename_run(side, copy, name_path, rel, new_name, test_cmd, say)
            except Exception as exc:
                r = {"server": side.name, "error": f"{type(exc).__name__}: {exc}"}
            report["renames"].append({"repository": repo.name, "name_path": name_path, **r})
    return report


def markdown(report: dict[str, Any]) -> str:
    """The report as the tables docs/SEMANTIC.md shows (ours beside Serena, per repository)."""
    lines: list[str] = []
    for repo, e in report["repositories"].items():
        ours, ser = e.get("ours", {}), e.get("serena", {})
        lines += [f"#### {repo} ({e['python_files']} Python files)", "",
                  "| | ours | Serena |", "|---|---|---|"]
        for t in e["targets"]:
            cells = []
            for side in (ours, ser):
                c = (side.get("completeness") or {}).get(t["name"])
                cells.append(f"{c['found_lines']}/{c['truth_lines']} ({c['completeness']:.1%})" if c else "—")
            lines.append(f"| references of `{t['name']}` (lines vs tokenizer truth) | {cells[0]} | {cells[1]} |")
        for key, label in (("start_s", "start to first answer, s"),
                           ("first_heavy_query_s", "first request: a heavy reference query on a fresh server, s "
                                                   "(n=1, not in the cold rows)")):
            lines.append(f"| {label} | {ours.get(key, '—')} | {ser.get(key, '—')} |")
        for tool in ("overview", "find_symbol", "references", "search", "diagnostics"):
            for kind in ("cold", "warm"):
                cells = []
                for side in (ours, ser):
                    v = (side.get("latency_ms") or {}).get(tool, {}).get(kind)
                    cells.append(quantiles_text(v))
                lines.append(f"| {tool} {kind} p50 / p95 ms (n) | {cells[0]} | {cells[1]} |")
        rss = [side.get("peak_rss_mib_vmhwm") or {} for side in (ours, ser)]
        lines.append(f"| peak RSS server + language servers, MiB | {rss[0].get('server', '—')} + "
                     f"{rss[0].get('children', '—')} | {rss[1].get('server', '—')} + {rss[1].get('children', '—')} |")
        lines.append(f"| cache on disk | {ours.get('cache_bytes', 0) / 1e6:.2f} MB, outside the repository | "
                     f"{ser.get('cache_bytes', 0) / 1e6:.2f} MB, inside the repository |")
        lines.append("")
    if report.get("load_average"):
        la = report["load_average"]
        lines += [f"Load average (1, 5, 15 min) at the start {la['start']}, at the end {la['end']}.", ""]
    if report.get("renames"):
        lines += ["| rename | server | seconds | edits | ms per edit | old name left | project's tests after |",
                  "|---|---|---|---|---|---|---|"]
        for r in report["renames"]:
            tests = (r.get("tests") or {}).get("summary", "—")
            lines.append(f"| {r['repository']}: `{r['name_path']}` | {r['server']} | {r.get('seconds')} | "
                         f"{r.get('edits_reported') or r.get('lines_with_new_name_after')} | {r.get('ms_per_edit')} | "
                         f"{r.get('lines_with_old_name_after')} lines | {tests} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("repos", nargs="+", type=Path)
    ap.add_argument("--serena", help="the serena executable in its own environment (leave out: ours only)")
    ap.add_argument("--serena-home", type=Path, default=Path(tempfile.gettempdir()) / "serena-home")
    ap.add_argument("--rename", action="append", default=[], help="REPO:NAME_PATH:FILE:NEW_NAME")
    ap.add_argument("--test-cmd", help="run in the renamed copy afterwards, e.g. 'python -m pytest -q -x'")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--no-index", action="store_true",
                    help="ours: no background index (a standalone server's default)")
    ap.add_argument("--after-index", action="store_true",
                    help="ours: wait for the background index before the first heavy query (and report its time)")
    args = ap.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="ansf-vs-serena-"))
    load = [round(x, 2) for x in os.getloadavg()]

    def say(msg: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)

    report = anyio.run(compare, args.repos, args.serena, args.serena_home, work, args.rename, args.test_cmd, say,
                       args.after_index, not args.no_index)
    report["load_average"] = {"start": load, "end": [round(x, 2) for x in os.getloadavg()]}
    report["machine"] = {"cpus": os.cpu_count(), "python": sys.version.split()[0]}
    text = json.dumps(report, indent=2, default=str)
    if args.json:
        args.json.write_text(text)
    print(text)
    print(markdown(report), file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
