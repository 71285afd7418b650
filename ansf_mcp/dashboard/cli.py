"""`ansf dashboard` arguments and entry point, kept here so the main CLI wires it in three lines."""

from __future__ import annotations

import argparse
from pathlib import Path

from ansf_mcp.dashboard.config import DEFAULT_PORT
from ansf_mcp.ports import port_number


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("dashboard", help=f"live monitoring dashboard (default http://127.0.0.1:{DEFAULT_PORT}/)")
    add_arguments(p)
    return p


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1; others need --token)")
    p.add_argument("--port", type=port_number, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})")
    p.add_argument("--token", help="token required on every request and the WebSocket (env ANSF_TOKEN)")
    p.add_argument("--interval", type=float, help="seconds between collections (env ANSF_DASHBOARD_INTERVAL_S; 30)")
    p.add_argument("--data-dir", type=Path, help="where the store lives (env ANSF_DATA_DIR; default XDG data home)")
    p.add_argument("--store", help="a SQLite path or a postgresql:// URL (env ANSF_STORE)")
    p.add_argument("--log-level", help="DEBUG, INFO, WARNING (default), ERROR; logs go to stderr")


def run(args: argparse.Namespace) -> int:
    import sys

    from pydantic import ValidationError

    from ansf_mcp.dashboard.app import run_dashboard
    from ansf_mcp.dashboard.config import DashboardConfig, invalid_setting
    from ansf_mcp.settings import Settings

    try:
        settings = Settings.load(data_dir=args.data_dir, store=args.store, token=args.token, log_level=args.log_level)
        config = DashboardConfig.load(interval_s=args.interval)
    except ValidationError as exc:
        print(f"ansf dashboard: invalid setting: {invalid_setting(exc)}", file=sys.stderr)
        return 2
    return run_dashboard(settings, host=args.host, port=args.port, config=config)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ansf dashboard", description="ANSF-MCP live monitoring dashboard")
    add_arguments(parser)
    return run(parser.parse_args(argv))
