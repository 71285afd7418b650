"""Edit safety probe: real stdio server processes racing each other, an "editor" and SIGKILL.

`python -m ansf_mcp.bench.edit_safety --runs 50 --kills 20 --out report.json` (bounded: every scenario stops at
its run count or at `--max-seconds`, whichever comes first). Scenarios, each on a fresh copy of a project:

- renames: two servers on one data directory rename two symbols of one file at once (renames_one_server: two
  calls at once on one server);
- replaces: two servers replace the bodies of two functions of one file at once;
- editor: one server renames while an "editor" appends a line to a file the rename touches (one write, in place);
- kills: one server renames a symbol used in `--kill-files` files and is SIGKILLed at a random moment; the next
  start must leave every file all old or all new, with no temporary file in the project.

Counted per scenario: runs, acknowledged edits, refused edits, corrupted files (do not parse), acknowledged edits
lost, editor saves lost. The project is generated here (never one of the reserved repositories).
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import json
import os
import random
import re
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
from mcp import Client, StdioServerParameters

from ansf_mcp.bench.procs import server_process

USERS = 6


def params(data_dir: Path, project: Path) -> StdioServerParameters:
    return StdioServerParameters(command=sys.executable, args=["-m", "ansf_mcp", "serve", "--standalone", "--data-dir", str(data_dir),
                                                               "--project", str(project)],
                                 env={"ANSF_WARMUP": "0", "ANSF_SEMANTIC_INDEX": "0"}, cwd=str(project))


def make_project(root: Path, users: int = USERS) -> Path:
    """src/geo/units.py defines `scale`, `SCALE`, `grow` and `shrink`; `users` modules call them."""
    pkg = root / "src" / "geo"
    pkg.mkdir(parents=True)
    (root / "pyproject.toml").write_text('[project]\nname = "geo"\nversion = "0"\n')
    (pkg / "__init__.py").write_text("")
    (pkg / "units.py").write_text('"""Units."""\n\nSCALE = 2\n\n\ndef scale(value):\n    return value * SCALE\n\n\n'
                                  "def grow(value):\n    return value + 1\n\n\ndef shrink(value):\n"
                                  "    return value - 1\n")
    for i in range(users):
        (pkg / f"user{i}.py").write_text(f"from geo.units import SCALE, scale\n\n\ndef use{i}(v):\n"
                                         f"    return scale(v) + SCALE * {i}\n")
    return root


def names_in(path: Path) -> set[str] | None:
    """Every name a module binds or uses, or None when it does not parse (corrupted)."""
    try:
        tree = ast.parse(path.read_bytes())
    except SyntaxError:
        return None
    out: set[str] = set()
    for node in ast.walk(tree):
        for attr in ("id", "name", "attr"):
            value = getattr(node, attr, None)
            if isinstance(value, str):
                out.add(value)
    return out


class Tally:
    def __init__(self) -> None:
        self.runs = self.acknowledged = self.refused = self.corrupted = self.edits_lost = self.saves_lost = 0
        self.errors: list[str] = []
        self.seconds: list[float] = []

    def answer(self, ok: bool, text: str) -> None:
        if ok:
            self.acknowledged += 1
        elif re.search(r"changed on disk|another edit|saved by another program", text):
            self.refused += 1
        else:
            self.errors.append(text[:300])

    def report(self) -> dict[str, Any]:
        secs = sorted(self.seconds)
        return {"runs": self.runs, "acknowledged": self.acknowledged, "refused": self.refused,
                "corrupted_files": self.corrupted, "acknowledged_edits_lost": self.edits_lost,
                "editor_saves_lost": self.saves_lost, "other_errors": self.errors[:5],
                "other_error_count": len(self.errors),
                "run_seconds_median": round(secs[len(secs) // 2], 2) if secs else None}


async def _call(client: Client, tool: str, args: dict[str, Any]) -> tuple[bool, str]:
    r = await client.call_tool(tool, args)
    text = r.content[0].text if r.content else ""
    return not r.is_error, text


async def _replanned(*clients: Client) -> int:
    """How many edits the servers planned again because another writer got in first (evidence of a race)."""
    total = 0
    for client in {id(c): c for c in clients}.values():
        r = await client.call_tool("system_status", {})
        semantic = ((r.structured_content or {}).get("components") or {}).get("semantic") or {}
        total += (semantic.get("edit_conflicts") or {}).get("replanned", 0)
    return total


def _check_files(project: Path, tally: Tally) -> dict[str, set[str]]:
    seen: dict[str, set[str]] = {}
    for path in sorted(project.rglob("*.py")):
        names = names_in(path)
        if names is None:
            tally.corrupted += 1
            names = set()
        seen[path.relative_to(project).as_posix()] = names
    return seen


async def renames(work: Path, runs: int, deadline: float, servers: int = 2) -> dict[str, Any]:
    """Two servers on one data directory (or one server, two calls at once): `scale` and `SCALE` renamed at
    once, run after run."""
    tally = Tally()
    project = make_project(work / f"renames-{servers}")
    data = work / f"renames-{servers}-data"
    names = {"scale": "scale", "SCALE": "SCALE"}
    async with Client(params(data, project), mode="legacy") as one, \
            contextlib.AsyncExitStack() as stack:
        two = one if servers == 1 else await stack.enter_async_context(Client(params(data, project), mode="legacy"))
        for run in range(runs):
            if time.monotonic() > deadline:
                break
            t0 = time.monotonic()
            results: dict[str, tuple[bool, str]] = {}

            async def rename(client: Client, key: str, run: int = run, results: dict = results) -> None:
                new = f"{key}_{run}"
                results[key] = await _call(client, "rename_symbol", {
                    "name_path": names[key], "relative_path": "src/geo/units.py", "new_name": new})

            async with anyio.create_task_group() as tg:
                tg.start_soon(rename, one, "scale")
                tg.start_soon(rename, two, "SCALE")
            tally.runs += 1
            tally.seconds.append(time.monotonic() - t0)
            old = dict(names)
            for key, (ok, text) in results.items():
                tally.answer(ok, text)
                if ok:
                    names[key] = f"{key}_{run}"
            seen = _check_files(project, tally)
            for key in names:
                units = seen.get("src/geo/units.py", set())
                if names[key] != old[key] and (names[key] not in units or
                                               any(old[key] in s for s in seen.values())):
                    tally.edits_lost += 1
                    tally.errors.append(f"run {run}: {old[key]} -> {names[key]} acknowledged ({results[key][1][:300]})"
                                        f" but still named in " + ", ".join(
                                            f for f, s in seen.items() if old[key] in s))
        replanned = await _replanned(one, two)
    return {**tally.report(), "replanned": replanned}


async def replaces(work: Path, runs: int, deadline: float) -> dict[str, Any]:
    """Two servers replace `grow` and `shrink` (two functions of one file) at once."""
    tally = Tally()
    project = make_project(work / "replaces")
    data = work / "replaces-data"
    units = project / "src/geo/units.py"
    async with Client(params(data, project), mode="legacy") as one, \
            Client(params(data, project), mode="legacy") as two:
        for run in range(runs):
            if time.monotonic() > deadline:
                break
            t0 = time.monotonic()
            results: dict[str, tuple[bool, str]] = {}

            async def replace(client: Client, fn: str, run: int = run, results: dict = results) -> None:
                sign = "+" if fn == "grow" else "-"
                results[fn] = await _call(client, "replace_symbol_body", {
                    "name_path": fn, "relative_path": "src/geo/units.py",
                    "body": f"def {fn}(value):\n    return value {sign} {run}\n"})

            async with anyio.create_task_group() as tg:
                tg.start_soon(replace, one, "grow")
                tg.start_soon(replace, two, "shrink")
            tally.runs += 1
            tally.seconds.append(time.monotonic() - t0)
            _check_files(project, tally)
            text = units.read_text()
            for fn, (ok, msg) in results.items():
                tally.answer(ok, msg)
                sign = "+" if fn == "grow" else "-"
                if ok and f"return value {sign} {run}\n" not in text:
                    tally.edits_lost += 1
        replanned = await _replanned(one, two)
    return {**tally.report(), "replanned": replanned}


async def editor(work: Path, runs: int, deadline: float) -> dict[str, Any]:
    """A rename runs while an editor appends a line to a file it touches (one in-place write)."""
    tally = Tally()
    project = make_project(work / "editor")
    data = work / "editor-data"
    rnd = random.Random(11)
    name = "scale"
    async with Client(params(data, project), mode="legacy") as client:
        for run in range(runs):
            if time.monotonic() > deadline:
                break
            target = project / "src/geo" / f"user{rnd.randrange(USERS)}.py"
            marker = f"# editor save {run}\n"
            t0 = time.monotonic()
            result: dict[str, tuple[bool, str]] = {}

            async def rename(run: int = run, result: dict = result, name: str = name) -> None:
                result["r"] = await _call(client, "rename_symbol", {
                    "name_path": name, "relative_path": "src/geo/units.py", "new_name": f"scale_{run}"})

            async def save(target: Path = target, marker: str = marker) -> None:
                await anyio.sleep(rnd.uniform(0.0, 0.25))  # a moment somewhere in the rename
                with open(target, "a") as fh:
                    fh.write(marker)

            async with anyio.create_task_group() as tg:
                tg.start_soon(rename)
                tg.start_soon(save)
            tally.runs += 1
            tally.seconds.append(time.monotonic() - t0)
            ok, text = result["r"]
            tally.answer(ok, text)
            seen = _check_files(project, tally)
            if marker not in target.read_text():
                tally.saves_lost += 1
            if ok:
                if any(name in s for s in seen.values()) or f"scale_{run}" not in seen["src/geo/units.py"]:
                    tally.edits_lost += 1
                name = f"scale_{run}"
        replanned = await _replanned(client)
    return {**tally.report(), "replanned": replanned}


async def kills(work: Path, runs: int, files: int, deadline: float) -> dict[str, Any]:
    """SIGKILL at a random moment of a rename over `files` files, then a restart: all old or all new."""
    tally = Tally()
    rnd = random.Random(7)
    template = make_project(work / "kills-template", users=files)
    mixed = temp_left = interrupted = 0
    duration = None
    outcomes = {"all_old": 0, "all_new": 0}
    for run in range(runs + 1):  # run 0 measures how long a whole rename takes
        if time.monotonic() > deadline:
            break
        project = work / f"kills-{run}"
        shutil.copytree(template, project)
        data = work / f"kills-data-{run}"
        t0 = time.monotonic()
        try:
            async with Client(params(data, project), mode="legacy") as client:
                await _call(client, "symbols_overview", {"relative_path": "src/geo/units.py"})  # jedi started
                t1 = time.monotonic()
                if run == 0:
                    ok, text = await _call(client, "rename_symbol", {
                        "name_path": "scale", "relative_path": "src/geo/units.py", "new_name": "rescaled"})
                    duration = time.monotonic() - t1
                    if not ok:
                        raise RuntimeError(f"the measuring rename failed: {text}")
                else:
                    proc = server_process(data)

                    async def rename(client: Client = client) -> None:
                        await _call(client, "rename_symbol", {
                            "name_path": "scale", "relative_path": "src/geo/units.py", "new_name": "rescaled"})

                    async with anyio.create_task_group() as tg:
                        tg.start_soon(rename)
                        await anyio.sleep(rnd.uniform(0.0, 1.1) * (duration or 1.0))
                        proc.send_signal(signal.SIGKILL)
                        proc.wait(10)
                        tg.cancel_scope.cancel()
        except Exception:  # the killed server's client fails on its way out
            if run == 0:
                raise
        if run == 0:
            continue
        tally.runs += 1
        journals = sorted(p.name for p in (data / "edits").glob("*")) if (data / "edits").exists() else []
        if any(j.endswith(".lock") for j in journals):  # killed inside a commit: the journal has work to undo
            interrupted += 1
        async with Client(params(data, project), mode="legacy") as client:  # the next start recovers
            await client.call_tool("system_status", {})
        tally.seconds.append(time.monotonic() - t0)
        new = sum("rescaled" in (names_in(p) or set()) for p in project.rglob("*.py"))
        old = sum("scale" in (names_in(p) or set()) for p in project.rglob("*.py"))
        _check_files(project, tally)
        if new and old:
            mixed += 1
            tally.errors.append(f"run {run}: {new} files new and {old} old after the restart; journal before it: "
                                f"{journals[:6]}")
        else:
            outcomes["all_new" if new else "all_old"] += 1
        if [p for p in project.rglob("*") if p.suffix == ".tmp" or ".ansf-" in p.name]:
            temp_left += 1
        shutil.rmtree(project, ignore_errors=True)
        shutil.rmtree(data, ignore_errors=True)
    return {**tally.report(), "files": files + 1, "mixed_old_and_new": mixed, "runs_with_temp_files": temp_left,
            "killed_inside_a_commit": interrupted,
            **outcomes, "full_rename_seconds": round(duration, 2) if duration else None}


async def renames_one_server(work: Path, runs: int, deadline: float) -> dict[str, Any]:
    return await renames(work, runs, deadline, servers=1)


SCENARIOS: dict[str, Callable[..., Awaitable[dict[str, Any]]]] = {
    "renames": renames, "renames_one_server": renames_one_server, "replaces": replaces, "editor": editor}


async def probe(work: Path, runs: int, kill_runs: int, kill_files: int, max_seconds: float,
                only: list[str] | None = None) -> dict[str, Any]:
    deadline = time.monotonic() + max_seconds
    out: dict[str, Any] = {"runs": runs, "kill_runs": kill_runs}
    for name, scenario in SCENARIOS.items():
        if only is None or name in only:
            out[name] = await scenario(work, runs, deadline)
    if (only is None or "kills" in only) and kill_runs:
        out["kills"] = await kills(work, kill_runs, kill_files, deadline)
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m ansf_mcp.bench.edit_safety", description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=50, help="runs per race scenario")
    ap.add_argument("--kills", type=int, default=20, help="SIGKILL runs")
    ap.add_argument("--kill-files", type=int, default=300, help="files the killed rename touches")
    ap.add_argument("--max-seconds", type=float, default=1200, help="stop every scenario after this")
    ap.add_argument("--only", nargs="*", help="renames, renames_one_server, replaces, editor, kills")
    ap.add_argument("--out", type=Path, help="write the report (JSON) here too")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="ansf-edit-safety-") as tmp:
        report = anyio.run(probe, Path(tmp), args.runs, args.kills, args.kill_files, args.max_seconds, args.only)
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    os.environ.setdefault("ANSF_WARMUP", "0")
    main()
