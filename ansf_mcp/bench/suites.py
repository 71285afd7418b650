"""The benchmark suites, one record each: read by the runner, `ansf bench --help` and the `benchmark` tool.

Adding a suite is one record here. Runners are named as `module:function` and imported when run: the tool
surface reads this registry in an idle server, which must not carry numpy and friends.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Suite:
    name: str
    brief: str  # a few words for the tool's description (every character costs client context)
    source: str  # what it measures and how, for the report and `ansf bench --help`
    runner: str  # "module:function" taking a SuiteContext, returning the suite's result
    markdown: str  # "module:function" rendering that result as Markdown
    in_all: bool = True  # part of `all`; slow or destructive suites run only when named
    ratios: str | None = None  # "module:function" giving the result's value ratios, for suites that measure them
    # "module:function" taking a SuiteContext and raising SuiteInputError when the suite's input cannot be used:
    # `ansf bench` calls it for a suite named alone, so a bad argument is refused before anything runs.
    check: str | None = None
    # Which store the suite's figures come from, said in every report section: most suites measure servers on a
    # throw-away data directory of their own on purpose (a benchmark must not write thousands of tasks into the
    # board it is asked about, nor be skewed by what that board holds); only `scale` uses the configured store.
    store: str = "none (measures no store)"

    def run_fn(self) -> Callable[..., dict[str, Any]]:
        return _load(self.runner)

    def markdown_fn(self) -> Callable[[dict[str, Any]], str]:
        return _load(self.markdown)

    def check_fn(self) -> Callable[..., None] | None:
        return _load(self.check) if self.check else None

    def value_ratios(self, result: dict[str, Any]) -> list[Any]:
        return list(_load(self.ratios)(result)) if self.ratios and "error" not in result else []


def _load(ref: str) -> Any:
    module, _, name = ref.partition(":")
    return getattr(importlib.import_module(module), name)


_B = "ansf_mcp.bench."
THROWAWAY = "a throw-away data directory of its own, deliberately not the configured store (--store / ANSF_STORE)"
# Suites that run PostgreSQL servers (bench.pgcluster.postgres): scratch databases on the configured server when
# there is one, as the `benchmark` tool and `ansf bench --store` pass it.
SCRATCH_PG = ("PostgreSQL: scratch databases on the configured store's server when --store / ANSF_STORE is a "
              "postgresql:// URL (dropped at the end), else a throw-away cluster; SQLite: a throw-away file")
SUITES: tuple[Suite, ...] = (
    Suite("mcp", "mcp latency",
          "a real stdio server subprocess driven by the SDK client; echo tool in the same run",
          _B + "mcp_suite:run", _B + "mcp_suite:markdown", store=THROWAWAY),
    Suite("coordination", "coordination vs oracle on SIMULATED episodes",
          "ansf_mcp.lab.bench with the shipped checkpoints on SIMULATED episodes (classic held-out and shifted, the "
          "broad family's held-out sources and their outcome-driven variant); latency and RSS REAL",
          _B + "external_suites:run_coordination", _B + "external_suites:markdown_from_result",
          ratios=_B + "external_suites:coordination_ratios"),
    Suite("replay", "replay (top-1 on real git history)",
          "ansf_mcp.lab.replay_eval on the git history of --repo (REAL data: authors as agents, commits as tasks)",
          _B + "replay_suite:run", _B + "replay_suite:markdown", check=_B + "replay_suite:check"),
    Suite("semantic", "semantic tools",
          "ansf_mcp.bench.semantic_suite: the semantic tools in-process over real language servers on --project",
          _B + "external_suites:run_semantic", _B + "external_suites:markdown_from_result",
          check=_B + "external_suites:check_semantic"),
    Suite("memory", "memory",
          "psutil RSS of a real stdio server, VmHWM peaks of fresh interpreters, the cache directory on disk",
          _B + "memory_suite:run", _B + "memory_suite:markdown", store=THROWAWAY),
    Suite("phases", "phase matrix (quality simulated)",
          "stdio servers under prepared cgroup folders, one per phase; quality on SIMULATED held-out episodes",
          _B + "phases_suite:run", _B + "phases_suite:markdown", ratios=_B + "phases_suite:value_ratios",
          store=THROWAWAY),
    Suite("chaos", "chaos (servers killed)",
          "stdio servers SIGKILLed mid-workload, several servers on one data directory, schema fuzzing",
          _B + "chaos_suite:run", _B + "chaos_suite:markdown", in_all=False, store=SCRATCH_PG),
    Suite("scale", "scale (replicas on PostgreSQL)",
          "HTTP replicas on one PostgreSQL database (a throw-away cluster, or --store's server) beside one SQLite "
          "server; replicas SIGKILLed mid-workload",
          _B + "scale_suite:run", _B + "scale_suite:markdown", in_all=False,
          store=SCRATCH_PG),
)
BY_NAME: dict[str, Suite] = {s.name: s for s in SUITES}
ALL = "all"
ALL_ORDER: tuple[str, ...] = tuple(s.name for s in SUITES if s.in_all)
NAMES: tuple[str, ...] = (*BY_NAME, ALL)


def check_input(name: str, ctx: Any) -> None:
    """Raise SuiteInputError when the suite named `name` cannot use what `ctx` gives it (its `check`); a suite
    without a check, or `all`, accepts anything here (in `all`, an unusable input fails that suite's section)."""
    record = BY_NAME.get(name)
    check = record.check_fn() if record is not None else None
    if check is not None:
        check(ctx)


def names_text() -> str:
    """`mcp, coordination, ..., all; or chaos, scale (only when named)`: the CLI's and the tool's list."""
    named_only = [s.name for s in SUITES if not s.in_all]
    text = ", ".join((*ALL_ORDER, ALL))
    return text + (f"; or {', '.join(named_only)} (only when named)" if named_only else "")


def tool_description() -> str:
    """The `benchmark` tool's description, one line, every suite in it."""
    briefs = [s.brief for s in SUITES if s.in_all]
    extra = [s.brief for s in SUITES if not s.in_all]
    return (f"Benchmark in the background: {', '.join(briefs)}, all; or {', '.join(extra)}. Returns a run_id at "
            "once; see benchmark_status.")
