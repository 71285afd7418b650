"""Measure what `tools/list` costs a client (issue 18: a board-only subset within 2 k tokens).

For each tool family, starts `ansf serve --standalone --tools <family>` over stdio with a fresh data directory,
sends the legacy handshake and `tools/list`, and counts the raw JSON-RPC answer line as the client receives it:
names, titles, descriptions, input and output schemas, annotations. Tokens are characters / 4.

    .venv/bin/python scripts/tools_list_size.py [--families board,agent,...] [--per-tool]

Prints one line per family: characters and tokens; with --per-tool, each tool's share too.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

FAMILIES = ("agent", "board", "system", "semantic", "bench", "board,agent,system,semantic,bench")
MESSAGES = [
    {"jsonrpc": "2.0", "id": 1, "method": "initialize",
     "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "size", "version": "1"}}},
    {"jsonrpc": "2.0", "method": "notifications/initialized"},
    {"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
]


def listing(families: str, data_dir: Path) -> str:
    """The raw tools/list answer line of `ansf serve --standalone --tools <families>`."""
    data_dir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "ANSF_DATA_DIR": str(data_dir), "ANSF_WARMUP": "0"}
    proc = subprocess.Popen([sys.executable, "-m", "ansf_mcp", "serve", "--standalone", "--tools", families], env=env, cwd=data_dir,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write("".join(json.dumps(m) + "\n" for m in MESSAGES))
        proc.stdin.flush()
        for _ in range(10):  # the initialize answer, then the listing
            line = proc.stdout.readline()
            if not line:
                break
            if json.loads(line).get("id") == 2:
                return line.rstrip("\n")
        raise RuntimeError(f"no tools/list answer from --tools {families}")
    finally:
        if proc.stdin is not None:
            proc.stdin.close()
        proc.wait(timeout=60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", default=";".join(FAMILIES),
                        help="';'-separated --tools values to measure (default: each family, then all)")
    parser.add_argument("--per-tool", action="store_true", help="also each tool's characters")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for families in args.families.split(";"):
            answer = listing(families, Path(tmp) / families.replace(",", "_"))
            tools = json.loads(answer)["result"]["tools"]
            print(f"--tools {families}: {len(tools)} tools, {len(answer)} characters, "
                  f"{len(answer) / 4 / 1000:.2f} k tokens")
            if args.per_tool:
                for tool in sorted(tools, key=lambda t: -len(json.dumps(t))):
                    print(f"  {tool['name']}: {len(json.dumps(tool, separators=(',', ':')))}")


if __name__ == "__main__":
    main()
