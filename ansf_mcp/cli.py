"""The `ansf` command line: serve, status, coordinate, bench, train."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ansf_mcp import __version__
from ansf_mcp.server.families import TOOL_FAMILIES
from ansf_mcp.server.shared import DEFAULT_IDLE_EXIT_S

if TYPE_CHECKING:
    from ansf_mcp.settings import Settings


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", type=Path, help="where the store lives (env ANSF_DATA_DIR; default XDG data home)")
    p.add_argument("--store", help="a SQLite path, or a postgresql:// URL for several replicas (env ANSF_STORE; "
                   "default: ansf.sqlite3 in the data directory)")


def _families(raw: str) -> tuple[str, ...]:
    chosen = tuple(dict.fromkeys(f.strip() for f in raw.split(",") if f.strip()))
    unknown = [f for f in chosen if f not in TOOL_FAMILIES]
    if unknown or not chosen:
        raise argparse.ArgumentTypeError(f"choose families from {', '.join(TOOL_FAMILIES)}, not {raw!r}")
    return chosen


def _serve_args(serve: argparse.ArgumentParser) -> argparse.ArgumentParser:
    serve.add_argument("--transport", choices=["stdio", "sse", "http"], default="stdio")
    serve.add_argument("--host", help="bind address for sse/http (default 127.0.0.1; others need --token)")
    serve.add_argument("--port", type=int, help="port for sse/http (default 8000)")
    serve.add_argument("--project", type=Path, help="project root for the semantic tools (default: cwd)")
    serve.add_argument("--token", help="token required on HTTP requests (env ANSF_TOKEN)")
    serve.add_argument("--log-level", help="DEBUG, INFO, WARNING (default), ERROR; logs go to stderr")
    serve.add_argument("--dashboard", action="store_true", help="also serve the monitoring dashboard at / (http/sse)")
    serve.add_argument("--standalone", action="store_true",
                       help="stdio: serve in this process instead of relaying to the one shared local server for "
                       "this data directory and project (env ANSF_STANDALONE=1)")
    serve.add_argument("--tools", type=_families, help="tool families to offer, comma-separated: " + ", ".join(TOOL_FAMILIES)
                       + " (default: all)")
    serve.add_argument("--idle-exit-s", type=_seconds,
                       help="stop after this many seconds without a client (http/sse: default never; for stdio, "
                       f"the shared server it starts: default {DEFAULT_IDLE_EXIT_S:g})")
    _common(serve)
    return serve


def _seconds(text: str) -> float:
    """A positive number of seconds (argparse type)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r}: give a number of seconds above 0")
    return value


def _parser() -> argparse.ArgumentParser:
    # Imported here: a stdio relay (`ansf serve`) parses with `_serve_args` alone and stays light.
    from ansf_mcp.bench import suites
    from ansf_mcp.coordinator.episode import STRATEGIES
    from ansf_mcp.coordinator.profiles import DEFAULT_PROFILE, PROFILES

    parser = argparse.ArgumentParser(prog="ansf", description="ANSF-MCP coordination server")
    parser.add_argument("--version", action="version", version=f"ansf-mcp {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    _serve_args(sub.add_parser("serve", help="run the MCP server (stdio by default)"))

    from ansf_mcp.dashboard.cli import add_parser as add_dashboard

    add_dashboard(sub)

    status = sub.add_parser("status", help="phase, memory, data directory, models")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    _common(status)

    coord = sub.add_parser("coordinate", help="assign the tasks of episodes (JSON or JSON Lines); one result per line")
    coord.add_argument("--input", required=True, help="episode file, or - for stdin")
    coord.add_argument("--strategy", default="auto", choices=STRATEGIES)
    coord.add_argument("--model", choices=list(PROFILES), help=f"neural profile (default: {DEFAULT_PROFILE})")

    prune = sub.add_parser("prune-functions", help="list (or drop, with --yes) the PostgreSQL claim and outcome "
                           "functions earlier versions left behind")
    prune.add_argument("--yes", action="store_true",
                       help="drop them (only once every replica runs this version: an older one would fail)")
    _common(prune)

    bench = sub.add_parser("bench", help="run benchmark suites")
    # Validated by the runner against its registry (importing it here would slow every command by ~1 s).
    bench.add_argument("--suite", default="all", help=suites.names_text())
    bench.add_argument("--out", type=Path, help="folder for report.json, report.md and charts (default: a new "
                       "bench/<UTC time> folder in the data directory)")
    bench.add_argument("--json", type=Path, help="also write the JSON report to this file")
    bench.add_argument("--project", type=Path, help="repository for the semantic suite (default: cwd)")
    bench.add_argument("--repo", type=Path, help="git repository the replay suite replays (default: --project)")
    bench.add_argument("--quick", action="store_true", help="fewer iterations (smoke test)")
    _common(bench)

    # Listed for --help only: _main hands `ansf train ...` to the training parser before this one parses anything.
    sub.add_parser("train", help="train a coordinator profile reproducibly from a seed", add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        code = _main(argv)
        sys.stdout.flush()  # here, not at exit: a reader that went away is handled below
        return code
    except BrokenPipeError:
        # The reader stopped reading (`ansf status | head -3`): nothing is wrong with us. Point stdout at
        # /dev/null so that the interpreter's last flush does not fail again, and exit as Python documents.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1


def _main(argv: list[str] | None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["serve"]:  # the common case, and the one sixteen relays pay for: no coordinator imports
        args = _serve_args(argparse.ArgumentParser(prog="ansf serve")).parse_args(argv[1:])
        args.command = "serve"
        return _serve(args)
    if argv[:1] == ["train"]:
        # Handed over whole: argparse's REMAINDER does not take arguments that start with "--", so the sub-parser
        # below would refuse `ansf train --profile student` before train's own parser saw it.
        return _train(argv[1:])
    args = _parser().parse_args(argv)
    if args.command == "serve":
        return _serve(args)
    if args.command == "status":
        return _status(args)
    if args.command == "prune-functions":
        return _prune_functions(args)
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
    return 2


def _train(argv: list[str]) -> int:
    try:
        from ansf_mcp.lab.train import main as train_main
    except ImportError:
        print("ansf train: the learned coordinator's training code is not in this build", file=sys.stderr)
        return 2
    return train_main(argv)


def _standalone(args: argparse.Namespace) -> bool:
    return args.standalone or os.environ.get("ANSF_STANDALONE", "").lower() in ("1", "true", "yes")


def _waiting_note(shared: bool) -> None:
    if sys.stdin.isatty():
        how = "relaying to the shared local server" if shared else "serving in this process (--standalone)"
        print(f"ansf serve: waiting for an MCP client on stdin (JSON-RPC, one message per line; {how}). "
              "A client such as Claude Code or Cursor starts this command itself (see the README); "
              "Ctrl-D or Ctrl-C stops it.", file=sys.stderr, flush=True)


def _relay(args: argparse.Namespace) -> int:
    from ansf_mcp.server.relay import serve_relay
    from ansf_mcp.server.shared import Key, default_data_dir

    if args.dashboard:
        print("ansf serve: --dashboard needs --transport http or sse (or run `ansf dashboard` beside a stdio "
              "server)", file=sys.stderr)
        return 2
    project = (args.project or Path(os.environ.get("ANSF_PROJECT") or Path.cwd())).expanduser().resolve()
    if not project.is_dir():
        print(f"ansf serve: project root {project} is not a directory", file=sys.stderr)
        return 2
    store = args.store or os.environ.get("ANSF_STORE") or None
    if store and "://" not in store:
        store = str(Path(store).expanduser().resolve())  # the shared server runs elsewhere: no relative paths
    data_dir = args.data_dir.expanduser().resolve() if args.data_dir else default_data_dir()
    key = Key(data_dir=data_dir, project=project, store=store, tools=",".join(args.tools) if args.tools else None)
    _waiting_note(shared=True)
    try:
        return serve_relay(key, idle_exit_s=args.idle_exit_s or DEFAULT_IDLE_EXIT_S, log_level=args.log_level)
    except KeyboardInterrupt:
        return 0


def serve_settings(args: argparse.Namespace) -> Settings:
    """The settings `ansf serve` runs a server with (not a relay): defaults < environment < flags."""
    from ansf_mcp.settings import Settings

    # A stdio server in the client's own process serves one agent: the model and the project index load on first
    # use instead of at start (the shared server warms them once for every agent), unless asked for.
    lazy: dict[str, object] = {}
    if args.transport == "stdio":
        lazy = {field: False for env, field in (("ANSF_WARMUP", "warm_model"), ("ANSF_SEMANTIC_INDEX", "semantic_index"))
                if not os.environ.get(env)}
    return Settings.load(
        **lazy, transport=args.transport, host=args.host, port=args.port, project_root=args.project,
        data_dir=args.data_dir, store=args.store, token=args.token, log_level=args.log_level,
    )


def _serve(args: argparse.Namespace) -> int:
    if args.transport == "stdio" and not _standalone(args):
        return _relay(args)
    from pydantic import ValidationError

    from ansf_mcp.server.run import ConfigError, serve
    from ansf_mcp.store.db import StoreError

    try:
        settings = serve_settings(args)
        if not settings.project_root.is_dir():
            raise ConfigError(f"project root {settings.project_root} is not a directory")
        if settings.transport == "stdio":
            _waiting_note(shared=False)
        serve(settings, dashboard=args.dashboard, tools=args.tools, idle_exit_s=args.idle_exit_s)
    except (ConfigError, StoreError) as exc:
        print(f"ansf serve: {exc}", file=sys.stderr)
        return 2
    except ValidationError as exc:
        from ansf_mcp.settings import invalid_setting

        print(f"ansf serve: invalid setting: {invalid_setting(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0
    return 0


def _settings(args: argparse.Namespace, command: str) -> Settings | None:
    """The settings a store command runs with; None (after saying why on stderr) when one is invalid."""
    from pydantic import ValidationError

    from ansf_mcp.settings import Settings, invalid_setting

    try:
        return Settings.load(data_dir=args.data_dir, store=args.store)
    except ValidationError as exc:
        print(f"ansf {command}: invalid setting: {invalid_setting(exc)}", file=sys.stderr)
        return None


def _prune_functions(args: argparse.Namespace) -> int:
    from ansf_mcp.board import pg_functions
    from ansf_mcp.store.base import StoreError
    from ansf_mcp.store.db import open_store

    settings = _settings(args, "prune-functions")
    if settings is None:
        return 2
    if isinstance(settings.store_spec, Path):
        print("ansf prune-functions: the store is SQLite, which keeps no server-side functions", file=sys.stderr)
        return 2
    try:
        store = open_store(settings.store_spec, **settings.store_options)
        try:
            names = pg_functions.prune(store) if args.yes else pg_functions.stale(store)
        finally:
            store.close()
    except StoreError as exc:
        print(f"ansf prune-functions: {exc}", file=sys.stderr)
        return 1
    for name in names:
        print(name)
    verb = "dropped" if args.yes else "left by earlier versions"
    print(f"{len(names)} function(s) {verb}" + ("" if args.yes or not names else
          "; drop them with --yes once every replica runs this version"), file=sys.stderr)
    return 0


def _status(args: argparse.Namespace) -> int:
    from ansf_mcp.server.status import offline_status

    settings = _settings(args, "status")
    if settings is None:
        return 2
    report = offline_status(settings).model_dump(mode="json", exclude_none=True)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        reconfigure = getattr(sys.stdout, "reconfigure", None)
        if reconfigure is not None:  # a terminal that cannot show "≥" gets "\u2265", not a UnicodeEncodeError
            reconfigure(errors="backslashreplace")
        for key, value in report.items():
            # ensure_ascii=False: a person reads this, and the phase's reason says "≥", not "\u2265"
            shown = json.dumps(value, ensure_ascii=False) if isinstance(value, dict | list) else value
            print(f"{key:>16}: {shown}")
    # a health check or script must notice a store it cannot reach; the report above says why
    return 1 if report.get("store", {}).get("error") else 0
