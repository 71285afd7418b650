"""The benchmark suites come from one registry: the runner, `ansf bench --help` and the `benchmark` tool read it."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client

from ansf_mcp.bench import runner, suites
from ansf_mcp.bench.context import SuiteContext
from ansf_mcp.server.app import build_server
from ansf_mcp.settings import Settings
from tests.conftest import ansf_command, subprocess_env


def fake_run(ctx: SuiteContext) -> dict[str, Any]:
    ctx.progress(0.5, "halfway")
    return {"answer": 42}


def fake_markdown(result: dict[str, Any]) -> str:
    return f"the answer is {result['answer']}"


def test_a_suite_is_one_record(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    record = suites.Suite("fake", "a fake", "this test's own runner", f"{__name__}:fake_run",
                          f"{__name__}:fake_markdown")
    monkeypatch.setattr(suites, "BY_NAME", {**suites.BY_NAME, "fake": record})
    monkeypatch.setattr(suites, "ALL_ORDER", ("fake",))
    monkeypatch.setattr(runner, "SUITE_NAMES", (*suites.NAMES, "fake"))
    seen: list[str] = []
    ctx = SuiteContext(quick=True, project=tmp_path, data_dir=tmp_path, report=lambda f, m: seen.append(m))
    report = runner.run_suite("all", ctx)
    assert report.results["fake"]["answer"] == 42
    assert report.results["fake"]["source"] == "this test's own runner"
    assert "## fake" in report.markdown and "the answer is 42" in report.markdown
    assert seen[0] == "fake: halfway"


def failing_run(ctx: SuiteContext) -> dict[str, Any]:
    async def agent() -> None:
        raise ConnectionResetError("the replica went away")

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(agent)

    anyio.run(main)
    return {}


def test_a_failed_suite_names_what_failed_inside_a_task_group(monkeypatch: pytest.MonkeyPatch,
                                                              tmp_path: Path) -> None:
    record = suites.Suite("failing", "fails", "this test's own runner", f"{__name__}:failing_run",
                          f"{__name__}:fake_markdown")
    monkeypatch.setattr(suites, "BY_NAME", {**suites.BY_NAME, "failing": record})
    monkeypatch.setattr(runner, "SUITE_NAMES", (*suites.NAMES, "failing"))
    ctx = SuiteContext(quick=True, project=tmp_path, data_dir=tmp_path, report=lambda f, m: None)
    error = runner.run_suite("failing", ctx).results["failing"]["error"]
    # Not "ExceptionGroup: unhandled errors in a TaskGroup (1 sub-exception)": the error itself, and where.
    assert error.startswith("ConnectionResetError: the replica went away (at test_suites.py:"), error


def test_all_runs_the_suites_marked_for_it_and_the_rest_only_when_named() -> None:
    assert suites.ALL_ORDER == ("mcp", "coordination", "replay", "semantic", "memory", "phases")
    assert {s.name for s in suites.SUITES if not s.in_all} == {"chaos", "scale"}
    assert runner.SUITE_NAMES == (*(s.name for s in suites.SUITES), "all")
    for s in suites.SUITES:  # every record names functions that exist
        assert callable(s.run_fn()) and callable(s.markdown_fn())


@pytest.mark.anyio
async def test_the_tool_describes_every_suite(tmp_path: Path) -> None:
    server, _ = build_server(Settings(data_dir=tmp_path / "data", warm_model=False))
    async with Client(server) as client:
        tool = next(t for t in (await client.list_tools()).tools if t.name == "benchmark")
    assert tool.input_schema["properties"]["suite"]["enum"] == list(suites.NAMES)
    for s in suites.SUITES:  # chaos and scale were missing from the hand-copied description
        assert s.brief in tool.description
        assert s.name in tool.input_schema["properties"]["suite"]["description"]
    assert len(tool.description) < 300


def test_the_cli_help_lists_every_suite(tmp_path: Path) -> None:
    out = subprocess.run([*ansf_command(), "bench", "--help"], env=subprocess_env(tmp_path / "data"),
                         capture_output=True, text=True, timeout=60, check=True)
    help_text = " ".join(out.stdout.split())
    assert suites.names_text() in help_text
