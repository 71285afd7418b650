"""The `ansf` command line: serve, status, coordinate, bench, train."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ansf_mcp import __version__
from ansf_mcp.bench import suites
from ansf_mcp.coordinator.episode import STRATEGIES
from ansf_mcp.coordinator.profiles import DEFAULT_PROFILE, PROFILES


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", type=Path, help="where the store lives (env ANSF_DATA_DIR; default XDG data home)")
    p.add_argument("--store", help="a SQLite path, or a postgresql:// URL for several replicas (env ANSF_STORE; "
                   "default: ansf.sqlite3 in the data directory)")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ansf", description="ANSF-MCP coordination server")
    parser.add_argument("--version", action="version", version=f"ansf-mcp {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the MCP server (stdio by default)")
    serve.add_argument("--transport", choices=["stdio", "sse", "http"], default="stdio")
    serve.add_argument("--host", help="bind address for sse/http (default 127.0.0.1; others need --token)")
    serve.add_argument("--port", type=int, help="port for sse/http (default 8000)")
    serve.add_argument("--project", type=Path, help="project root for the semantic tools (default: cwd)")
    serve.add_argument("--token", help="token required on HTTP requests (env ANSF_TOKEN)")
    serve.add_argument("--log-level", help="DEBUG, INFO, WARNING (default), ERROR; logs go to stderr")
    serve.add_argument("--dashboard", action="store_true", help="also serve the monitoring dashboard at / (http/sse)")
    _common(serve)

    from ansf_mcp.dashboard.cli import add_parser as add_dashboard

    add_dashboard(sub)

    status = sub.add_parser("status", help="phase, memory, data directory, models")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    _common(status)

    coord = sub.add_parser("coordinate", help="assign the tasks of episodes (JSON or JSON Lines); one result per line")
    coord.add_argument("--input", required=True, help="episode file, or - for stdin")
    coord.add_argument("--strategy", default="auto", choices=STRATEGIES)
    coord.add_argument("--model", choices=list(PROFILES), help=f"neural profile (default: {DEFAULT_PROFILE})")

    bench = sub.add_parser("bench", help="run benchmark suites")
    # Validated by the runner against its registry (importing it here would slow every command by ~1 s).
    bench.add_argument("--suite", default="all", help=suites.names_text())
    bench.add_argument("--out", type=Path, help="folder for report.json, report.md and charts (default: data dir)")
    bench.add_argument("--json", type=Path, help="also write the JSON report to this file")
    bench.add_argument("--project", type=Path, help="repository for the semantic suite (default: cwd)")
    bench.add_argument("--repo", type=Path, help="git repository the replay suite replays (default: --project)")
    bench.add_argument("--quick", action="store_true", help="fewer iterations (smoke test)")
    _common(bench)

    train = sub.add_parser("train", help="train a coordinator profile reproducibly from a seed", add_help=False)
    train.add_argument("rest", nargs=argparse.REMAINDER)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "serve":
        return _serve(args)
    if args.command == "status":
        return _status(args)
    if args.command == "coordinate":
        from ansf_mcp.coordinator.cli import run_coordinate

        return run_coordinate(args.input, args.strategy, args.model)
    if args.command == "bench":
        from ansf_mcp.bench.runner import run_cli

        return run_cli(
            args.suite, json_path=args.json, out_dir=args.out, quick=args.quick, data_dir=args.data_dir, store=args.store,
            project=args.project, repo=args.repo,
        )
    if args.command == "dashboard":
        from ansf_mcp.dashboard.cli import run as run_dashboard

        return run_dashboard(args)
    if args.command == "train":
        try:
            from ansf_mcp.lab.train import main as train_main
        except ImportError:
            print("ansf train: the learned coordinator's training code is not in this build", file=sys.stderr)
            return 2
        return train_main(args.rest)
    return 2


def _serve(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from ansf_mcp.server.run import ConfigError, serve
    from ansf_mcp.settings import Settings
    from ansf_mcp.store.db import StoreError

    try:
        settings = Settings.load(
            transport=args.transport,
            host=args.host,
            port=args.port,
            project_root=args.project,
            data_dir=args.data_dir,
            store=args.store,
            token=args.token,
            log_level=args.log_level,
        )
        if not settings.project_root.is_dir():
            raise ConfigError(f"project root {settings.project_root} is not a directory")
        serve(settings, dashboard=args.dashboard)
    except (ConfigError, StoreError) as exc:
        print(f"ansf serve: {exc}", file=sys.stderr)
        return 2
    except ValidationError as exc:
        print(f"ansf serve: invalid setting: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0
    return 0


def _status(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from ansf_mcp.server.status import offline_status
    from ansf_mcp.settings import Settings

    try:
        settings = Settings.load(data_dir=args.data_dir, store=args.store)
    except ValidationError as exc:
        print(f"ansf status: invalid setting: {exc.errors()[0]['msg']}", file=sys.stderr)
        return 2
    report = offline_status(settings)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for key, value in report.items():
            print(f"{key:>16}: {json.dumps(value) if isinstance(value, dict | list) else value}")
    return 0
