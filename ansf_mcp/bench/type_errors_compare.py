"""Type errors found, ours beside Serena, in one run, on a fixture with seeded type errors.

    python -m ansf_mcp.bench.type_errors_compare tests/fixtures/semantic/typeerrors \
        --serena /work/serena/venv/bin/serena --serena-home /work/serena/home [--json FILE]

The truth is in the fixture: every line marked `# seeded: KIND` holds one seeded type error. Each server runs on
its own scratch copy over stdio and is asked for the diagnostics of every Python file; a seeded line counts as
found when the server reports an error or a warning on it, and an error or warning on any other line counts as
an extra. Hints and information are left out on both sides.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio
from mcp import Client

from ansf_mcp.bench.serena_compare import Ours, Serena, Side, scratch_copy

SEED = re.compile(r"#\s*seeded:\s*(.+?)\s*$")
COUNTED = {"error", "warning"}


def seeded(root: Path) -> dict[tuple[str, int], str]:
    """{(relative path, 1-based line): kind} of every `# seeded: KIND` marker under `root`."""
    out = {}
    for p in sorted(root.rglob("*.py")):
        for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
            m = SEED.search(line)
            if m:
                out[(p.relative_to(root).as_posix(), i)] = m.group(1)
    return out


def our_lines(answer: dict[str, Any]) -> set[int]:
    return {d["line"] for d in answer.get("diagnostics", []) if d.get("severity") in COUNTED}


def serena_lines(text: str, rel: str) -> set[int]:
    """Serena answers JSON grouped as {path: {severity: {name_path: [{message, range}]}}}, ranges 0-based."""
    try:
        grouped = json.loads(text)
    except ValueError:
        return set()
    lines: set[int] = set()
    for path, by_severity in (grouped or {}).items():
        if path != rel:
            continue
        for severity, by_symbol in by_severity.items():
            if severity.lower() not in COUNTED:
                continue
            for items in by_symbol.values():
                lines |= {d["range"]["start"]["line"] + 1 for d in items}
    return lines


async def run_side(side: Side, root: Path, files: list[str], say) -> dict[str, Any]:
    found: dict[str, list[int]] = {}
    seconds: list[float] = []
    t0 = time.perf_counter()
    async with Client(side.params(root)) as client:
        start = time.perf_counter() - t0
        for rel in files:
            name, args = side.call("diagnostics", relative_path=rel)
            t1 = time.perf_counter()
            r = await client.call_tool(name, args)
            seconds.append(time.perf_counter() - t1)
            if r.is_error:
                raise RuntimeError(f"{side.name} {name}({rel}) failed: "
                                   + " ".join(getattr(c, "text", "") for c in r.content)[:300])
            if side.name == "ours":
                found[rel] = sorted(our_lines(r.structured_content or {}))
            else:
                found[rel] = sorted(serena_lines(" ".join(getattr(c, "text", "") for c in r.content), rel))
            say(f"{side.name} {rel}: {len(found[rel])} lines with errors or warnings")
    return {"server": side.name, "start_s": round(start, 2), "lines": found,
            "first_call_s": round(seconds[0], 2) if seconds else None,
            "calls_s": [round(s, 2) for s in seconds]}


def score(truth: dict[tuple[str, int], str], side: dict[str, Any]) -> dict[str, Any]:
    reported = {(rel, line) for rel, lines in side["lines"].items() for line in lines}
    found = {k: v for k, v in truth.items() if k in reported}
    return {"found": len(found), "seeded": len(truth), "missed": sorted(v for k, v in truth.items() if k not in found),
            "extra_lines": sorted(f"{rel}:{line}" for rel, line in reported - set(truth))}


async def compare(fixture: Path, serena_exe: str | None, serena_home: Path, work: Path, say) -> dict[str, Any]:
    truth = seeded(fixture)
    files = sorted(p.relative_to(fixture).as_posix() for p in fixture.rglob("*.py"))
    report: dict[str, Any] = {"fixture": str(fixture), "seeded": {f"{k[0]}:{k[1]}": v for k, v in truth.items()},
                              "files": files, "sides": {}}
    sides: list[Side] = [Ours(work / "ours-data")]
    if serena_exe:
        sides.append(Serena(serena_exe, serena_home))
    for side in sides:
        copy = scratch_copy(fixture, work / f"{fixture.name}-{side.name}")
        try:
            result = await run_side(side, copy, files, say)
            report["sides"][side.name] = {**result, **score(truth, result)}
        except Exception as exc:  # report what failed, keep the other side's figures
            report["sides"][side.name] = {"error": f"{type(exc).__name__}: {exc}"}
    return report


def markdown(report: dict[str, Any]) -> str:
    sides = report["sides"]
    names = [n for n in ("ours", "serena") if n in sides]
    head = " | ".join("ours (basedpyright)" if n == "ours" else "Serena 2.1 (pyright)" for n in names)
    lines = [f"| seeded type error | {head} |", "|---" * (len(names) + 1) + "|"]
    for key, kind in report["seeded"].items():
        rel, line = key.rsplit(":", 1)
        cells = []
        for n in names:
            s = sides[n]
            cells.append("error" if "error" in s else ("found" if int(line) in s["lines"].get(rel, []) else "missed"))
        lines.append(f"| {kind} (`{key}`) | {' | '.join(cells)} |")
    total = [f"{sides[n].get('found', 0)}/{sides[n].get('seeded', len(report['seeded']))}" for n in names]
    lines.append(f"| **found** | {' | '.join(total)} |")
    extra = [str(len(sides[n].get("extra_lines", []))) for n in names]
    lines.append(f"| lines flagged that hold no seeded error | {' | '.join(extra)} |")
    first = [str(sides[n].get("first_call_s", "—")) for n in names]
    lines.append(f"| first diagnostics call on a fresh server, s | {' | '.join(first)} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("fixture", type=Path)
    ap.add_argument("--serena", help="the serena executable in its own environment (leave out: ours only)")
    ap.add_argument("--serena-home", type=Path, default=Path(tempfile.gettempdir()) / "serena-home")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="ansf-types-vs-serena-"))

    def say(msg: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)

    report = anyio.run(compare, args.fixture.resolve(), args.serena, args.serena_home, work, say)
    text = json.dumps(report, indent=2, default=str)
    if args.json:
        args.json.write_text(text)
    print(text)
    print(markdown(report), file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
