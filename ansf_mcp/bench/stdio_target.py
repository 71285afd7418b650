"""The server under benchmark: the real `ansf serve` stdio server plus a trivial `echo` tool as the baseline.

Run as `python -m ansf_mcp.bench.stdio_target --data-dir DIR`; the echo tool exists only here, never in the
product's tool list.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ansf_mcp.server.app import build_server
from ansf_mcp.settings import Settings


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data-dir", type=Path, required=True)
    args = parser.parse_args()
    server, app = build_server(Settings.load(data_dir=args.data_dir))

    async def echo(text: str) -> str:
        """Return the text unchanged (benchmark baseline)."""
        return text

    server.add_tool(echo)
    try:
        server.run("stdio")
    finally:
        app.shutdown()


if __name__ == "__main__":
    main()
