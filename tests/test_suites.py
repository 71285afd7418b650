"""The benchmark suites come from one registry: the runner, `ansf bench --help` and the `benchmark` tool read it."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client

from ansf_mcp.bench import runner, suites
from ansf_mcp.bench.context import SuiteContext
from ansf_mcp.server.app import build_server
from ansf_mcp.settings import Settings
from tests.bench_helpers import assert_store_server_named, store_role_url
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
    # where the report goes by default (it once said "data dir", where nothing is written)
    assert "(default: a new bench/<UTC time> folder in the data directory)" in help_text


RAN: list[str] = []


def marking_run(ctx: SuiteContext) -> dict[str, Any]:
    RAN.append(ctx.data_dir.name)
    return {"answer": 42}


@pytest.fixture
def fake_suite(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """A suite named `fake` that only notes that it ran: `ansf bench --suite fake` through the real CLI."""
    record = suites.Suite("fake", "a fake", "this test's own runner", f"{__name__}:marking_run",
                          f"{__name__}:fake_markdown")
    monkeypatch.setattr(suites, "BY_NAME", {**suites.BY_NAME, "fake": record})
    monkeypatch.setattr(runner, "SUITE_NAMES", (*suites.NAMES, "fake"))
    RAN.clear()
    return RAN


def stored_runs(data_dir: Path) -> int:
    from ansf_mcp.store.db import open_store

    store = open_store(data_dir / "ansf.sqlite3")
    try:
        with store.reading() as conn:
            return int(conn.execute("SELECT COUNT(*) FROM benchmark_runs").fetchone()[0])
    finally:
        store.close()


def test_bench_checks_its_outputs_and_store_before_running(fake_suite: list[str], tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    """A run takes minutes: an unwritable --out or --json, or a store that cannot be opened, is refused before it in
    one line (exit 2), not found after it with a traceback and the report lost (QA F3)."""
    from ansf_mcp.cli import main

    data = tmp_path / "data"
    for extra, said in (
        (["--out", "/proc/nope"], "cannot write the report to /proc/nope"),
        (["--json", str(tmp_path / "missing" / "r.json")], "cannot write the JSON report"),
        (["--json", str(tmp_path)], "cannot write the JSON report"),
        # A folder os.access calls writable for root: the run went ahead, was stored, and its JSON then failed.
        (["--json", "/proc/nope.json"], "cannot write the JSON report"),
        (["--store", "postgresql://u:secret@127.0.0.1:1/db"], "cannot open the PostgreSQL store"),
    ):
        assert main(["bench", "--suite", "fake", "--data-dir", str(data), *extra]) == 2, extra
        err = capsys.readouterr().err
        assert err.startswith(f"ansf bench: {said}") and len(err.strip().splitlines()) == 1, err
        assert "secret" not in err and fake_suite == [], extra
    assert stored_runs(data) == 0
    # As asked, it runs: the results printed, stored, and written where --out and --json say.
    assert main(["bench", "--suite", "fake", "--data-dir", str(data), "--out", str(tmp_path / "o"),
                 "--json", str(tmp_path / "r.json")]) == 0
    out = capsys.readouterr().out
    assert fake_suite == ["data"] and "the answer is 42" in out and "run 1 stored" in out
    assert (tmp_path / "o" / "report.md").exists() and (tmp_path / "r.json").exists() and stored_runs(data) == 1


def test_bench_names_the_invalid_setting_in_one_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """QA F2 and F6: no pydantic traceback; the variable the user set, with its value."""
    from ansf_mcp.cli import main

    monkeypatch.setenv("ANSF_PHASE_CRITICAL_AT", "abc")
    assert main(["bench", "--suite", "mcp", "--quick", "--data-dir", str(tmp_path / "data")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ansf bench: invalid setting: ANSF_PHASE_CRITICAL_AT='abc': ") and err.count("\n") == 1


def test_a_bad_replay_repository_is_refused_in_one_line_and_nothing_stored(tmp_path: Path) -> None:
    """QA F4: a missing path, a folder that is no git repository, one with no commit, too little history: one line,
    exit 2, no traceback, no failed run stored."""
    from tests.git_history import GitHistory

    short = tmp_path / "short"
    subprocess.run(["git", "init", "-q", "--bare", str(short)], check=True)
    history = GitHistory({"ada": ("Ada Lovelace", "ada@example.org")}, {"ada": "src"})
    for n in range(3):
        history.commit("ada", f"add the parser module part {n}")
    history.write(short)
    empty = tmp_path / "empty"
    subprocess.run(["git", "init", "-q", str(empty)], check=True)
    data = tmp_path / "data"
    refused_in_one_line(data, "replay", "--repo", [(tmp_path / "nonexistent", "is not a readable git repository"),
                                                   (tmp_path, "is not a readable git repository"),
                                                   (empty, "has no commits yet; replay needs its history"),
                                                   (short, "has 3 usable commits; replay needs at least 116")])


def refused_in_one_line(data: Path, suite: str, flag: str, cases: list[tuple[Path, str]]) -> None:
    """`ansf bench --suite SUITE FLAG PATH` refuses each path with its sentence (exit 2, one line) and stores nothing."""
    for path, said in cases:
        out = subprocess.run([*ansf_command(), "bench", "--suite", suite, "--quick", flag, str(path)],
                             env=subprocess_env(data), capture_output=True, text=True, timeout=120)
        assert out.returncode == 2 and out.stdout == "", (path, out.stderr)
        assert out.stderr.startswith(f"ansf bench: {path} {said}") and out.stderr.count("\n") == 1, out.stderr
    assert stored_runs(data) == 0


def test_a_semantic_project_without_python_is_refused_in_one_line_and_nothing_stored(tmp_path: Path) -> None:
    """A missing --project, or one without a Python file, failed mid-run and was stored as a failed run (exit 1)."""
    empty = tmp_path / "empty"
    empty.mkdir()
    refused_in_one_line(tmp_path / "data", "semantic", "--project",
                        [(tmp_path / "nonexistent", "is not a directory"),
                         (empty, "holds no Python file for the semantic suite to measure")])


def refused_input(ctx: SuiteContext) -> dict[str, Any]:
    from ansf_mcp.bench.context import SuiteInputError

    raise SuiteInputError("/nowhere is not a readable git repository")


def test_in_all_an_unusable_input_fails_its_section_without_a_traceback(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    record = suites.Suite("refusing", "refuses", "this test's own runner", f"{__name__}:refused_input",
                          f"{__name__}:fake_markdown")
    monkeypatch.setattr(suites, "BY_NAME", {**suites.BY_NAME, "refusing": record})
    monkeypatch.setattr(suites, "ALL_ORDER", ("refusing",))
    ctx = SuiteContext(quick=True, project=tmp_path, data_dir=tmp_path, report=lambda f, m: None)
    result = runner.run_suite("all", ctx).results["refusing"]
    assert result["error"] == "/nowhere is not a readable git repository"
    [logged] = [r for r in caplog.records if r.name == runner.log.name]
    assert logged.exc_info is None and "not a readable git repository" in logged.getMessage()


def interrupted_run(ctx: SuiteContext) -> dict[str, Any]:
    raise KeyboardInterrupt


def test_ctrl_c_mid_run_says_so_in_one_line_and_leaves_nothing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    """Ctrl-C during a suite printed a traceback from wherever the suite was, and left the report folder behind
    empty: one line, exit 130, nothing stored, no folder."""
    from ansf_mcp.cli import main

    record = suites.Suite("fake", "a fake", "this test's own runner", f"{__name__}:interrupted_run",
                          f"{__name__}:fake_markdown")
    monkeypatch.setattr(suites, "BY_NAME", {**suites.BY_NAME, "fake": record})
    monkeypatch.setattr(runner, "SUITE_NAMES", (*suites.NAMES, "fake"))
    data, out = tmp_path / "data", tmp_path / "o"
    try:
        code = main(["bench", "--suite", "fake", "--data-dir", str(data), "--out", str(out)])
    except KeyboardInterrupt:
        pytest.fail("Ctrl-C escaped `ansf bench` as a traceback")
    err = capsys.readouterr().err
    assert code == 130 and err == "ansf bench: interrupted; nothing stored or written\n", err
    assert not out.exists() and stored_runs(data) == 0


def test_simulated_value_ratios_say_simulated_in_the_phases_table_and_the_charts(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The phases table headed its simulated column plain 'value ratio' (only a lower-case footnote said so), and
    both value-ratio charts said '(simulated)' in passing: a figure lifted from either read as a real one."""
    from ansf_mcp.bench import charts, phases_suite
    from ansf_mcp.system.report import BenchmarkReport

    row = {"phase": "2 enhanced", "strategy": ["neural"], "first_decision_ms": 900.0, "decisions_per_s": 50.0,
           "quality": {"value_ratio": 0.8, "ci95": 0.02, "episodes": 40},
           "coordinate_16x64": {"p50_ms": 17.0, "p99_ms": 19.0}, "agents_holding_work": 8, "agents": 16, "swarms": 1,
           "server_rss_mib": 350.0, "torch_imported": True}
    table = phases_suite.markdown({"matrix": {"enhanced": row}})
    header = table.splitlines()[0]
    assert "SIMULATED value ratio" in header, header
    titles: list[str] = []
    monkeypatch.setattr(charts, "_bars", lambda path, title, *a, **k: titles.append(title) or path)
    coordination = {"quality": {"student": {"heldout": {"mean": 0.8, "ci95": 0.02, "n": 40}}}}
    report = BenchmarkReport(suite="all", version="0", commit=None, machine=runner.machine(), started_at=0.0,
                             duration_s=1.0, quick=True, results={"phases": {"matrix": {"enhanced": row}},
                                                                  "coordination": coordination},
                             value_ratios=[], markdown="")
    charts.draw_charts(report, tmp_path)
    quality = [t for t in titles if "value ratio" in t]
    assert len(quality) == 2 and all(t.startswith("SIMULATED ") for t in quality), titles


def test_a_suite_that_reports_value_ratios_says_simulated_in_its_source_line() -> None:
    """Every report section opens with 'Source: ...'. The coordination and phases lines said 'simulated' in passing,
    and coordination's named two of the four splits it reports."""
    with_ratios = [s for s in suites.SUITES if s.ratios]
    assert with_ratios and all("SIMULATED" in s.source for s in with_ratios), [s.source for s in with_ratios]
    coordination = suites.BY_NAME["coordination"].source
    assert "shifted" in coordination and "family" in coordination and "outcome-driven" in coordination


def test_the_memory_report_shows_its_targets() -> None:
    """The memory suite judged `idle_server_at_most_80_mib` and stored it, but its Markdown never printed it: a
    missed target was visible only in the JSON."""
    from ansf_mcp.bench import memory_suite

    result = {"server": {"idle_rss_mib": 95.0, "torch_imported_when_idle": False, "after_coordinate_auto_rss_mib": 300.0,
                         "coordinate_auto_strategy": "neural", "torch_imported_after_coordinate": True},
              "profiles": "no neural profile is shipped in this build",
              "peak_coordinating_16x64": {"episodes": 20, "peak_rss_mib": 320.0, "strategies": ["neural"]},
              "largest_accepted_input": None, "semantic_cache_on_disk_bytes": None, "semantic_cache_dir": "/c",
              "targets": {"idle_server_at_most_80_mib": False}}
    assert "Targets: idle_server_at_most_80_mib MISSED." in memory_suite.markdown(result)


def test_a_tail_percentile_from_too_few_samples_is_printed_as_the_maximum_with_its_count() -> None:
    """The phases suite printed 'p99' from 30 decisions and the coordination table 'p95' from 5 calls, with no count:
    the slowest call under another name. A percentile needs n >= 100 / (100 - q) samples (p95: 20, p99: 100);
    below that the summary leaves it out, says why, and every table prints 'max … of n=…'."""
    from ansf_mcp.bench import mcp_suite, phases_suite
    from ansf_mcp.system.stats import latency_summary, quantile_text

    ms = [0.001 * (k + 1) for k in range(100)]  # 1 ms .. 100 ms
    few = latency_summary(ms[:19])
    assert few["n"] == 19 and few["p95_ms"] is None and few["p99_ms"] is None and few["max_ms"] == 19.0
    assert few["withheld"] == {"p95": "n=19 < 20", "p99": "n=19 < 100"} and few["p50_ms"] == 10.0
    assert latency_summary(ms[:20])["p95_ms"] is not None and latency_summary(ms[:99])["p99_ms"] is None
    assert "withheld" not in latency_summary(ms) and latency_summary(ms)["p99_ms"] is not None
    assert quantile_text(few, 95) == "max 19.0 of n=19" and quantile_text(few, 50) == "10.0 (n=19)"

    thirty = latency_summary(ms[:30])
    row = {"phase": "2 enhanced", "strategy": ["neural"], "first_decision_ms": 900.0, "decisions_per_s": 50.0,
           "quality": {"value_ratio": 0.8, "ci95": 0.02, "episodes": 40}, "coordinate_16x64": thirty,
           "agents_holding_work": 8, "agents": 16, "swarms": 1, "server_rss_mib": 350.0, "torch_imported": True}
    phases = phases_suite.markdown({"matrix": {"enhanced": row}})
    assert "| 15.5 / max 30.0 of n=30 |" in phases, phases
    latency = {"echo": {**thirty, "ratio_to_echo_p50": 1.0}, "swarm_status": {**latency_summary(ms), "ratio_to_echo_p50": 3.3}}
    mcp = mcp_suite.markdown({"latency": latency, "answer_size": {}, "sequential_calls_per_s": {}, "board": "b",
                              "transport": "t", "targets": {}})
    assert "| echo | 30 | 15.500 | max 30.000 of n=30 | 1.00 |" in mcp, mcp
    assert "| swarm_status | 100 | 50.500 | 99.010 | 3.30 |" in mcp, mcp


def test_things_timed_side_by_side_alternate_which_goes_first_round_by_round() -> None:
    """The suites and scripts/bench_coordinate.py each had their own copy of this alternation; they now share one,
    and its order is what their reports say: A B, B A, A B, B A (the first thing is first on even rounds)."""
    from ansf_mcp.bench.interleave import round_order

    assert [round_order(("A", "B"), r) for r in range(4)] == [["A", "B"], ["B", "A"], ["A", "B"], ["B", "A"]]
    assert round_order(["x", "y", "z"], 1) == ["z", "y", "x"]  # three or more: reversed, none always last


def test_a_rotation_puts_each_of_n_items_first_once_every_n_rounds() -> None:
    """bench_live_record read its three readers A B C every round, so one always went first. A Latin square
    rotation gives each item each position once every n rounds, and for two items is the same A B, B A."""
    from ansf_mcp.bench.interleave import rotation_order, round_order

    three = ["A", "B", "C"]
    assert [rotation_order(three, r) for r in range(4)] == [three, ["B", "C", "A"], ["C", "A", "B"], three]
    for position in range(3):
        assert sorted(rotation_order(three, r)[position] for r in range(3)) == three
    assert all(rotation_order(("A", "B"), r) == round_order(("A", "B"), r) for r in range(6))
    assert rotation_order([], 3) == [] and rotation_order(("x",), 5) == ["x"]


class NoisyClient:
    """A client whose calls cost `cost[tool]` of a fake clock, times a load that doubles halfway through: the
    shared machine getting busier while a benchmark runs."""

    def __init__(self, cost: dict[str, float], calls_before_load: int):
        self.now, self.calls, self.cost, self.calls_before_load = 0.0, 0, cost, calls_before_load
        self.order: list[str] = []

    def clock(self) -> float:
        return self.now

    async def call_tool(self, tool: str, args: dict[str, Any]) -> Any:
        self.calls += 1
        self.order.append(tool)
        self.now += self.cost[tool] * (1 if self.calls <= self.calls_before_load else 2)
        return type("Result", (), {"is_error": False})()


def test_a_calls_per_s_pair_is_measured_in_alternating_turns_with_the_ratio_of_each_round(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """swarm_status calls/s and echo calls/s were each measured in one block, one after the other, and printed side
    by side: a load change between the blocks became their ratio (here: 1.0 for calls that differ by 2x). Now
    they take turns (A B, B A, ...) and the report gives the ratio of every round, median and range."""
    from ansf_mcp.bench import mcp_suite

    client = NoisyClient({"swarm_status": 0.002, "echo": 0.001}, calls_before_load=60)
    monkeypatch.setattr(mcp_suite.time, "perf_counter", client.clock)
    pair = anyio.run(mcp_suite._interleaved_rates, client, ("swarm_status", "swarm_status", {}),
                     ("echo", "echo", {"text": "ping"}), 6, 10)
    assert client.order[:20] == ["swarm_status"] * 10 + ["echo"] * 10
    assert client.order[20:40] == ["echo"] * 10 + ["swarm_status"] * 10  # B A in the second round
    assert pair["ratio_a_to_b"] == {"n": 6, "median": 0.5, "min": 0.5, "max": 0.5}
    assert pair["calls_per_s"]["swarm_status"] < pair["calls_per_s"]["echo"]
    text = mcp_suite.markdown({"latency": {}, "answer_size": {}, "board": "b", "transport": "t", "targets": {},
                               "sequential_calls_per_s": pair["calls_per_s"], "calls_per_s_pairs": [pair]})
    assert (f"swarm_status {pair['calls_per_s']['swarm_status']} beside echo {pair['calls_per_s']['echo']}; "
            "ratio per round median 0.50 (range 0.50–0.50, n=6 rounds)") in text, text


class LoadedSetup:
    """A scale-suite configuration whose turns run on a shared clock: `cost` seconds per task, doubled once the
    machine has done `tasks_before_load` tasks (a load change half-way through the run)."""

    def __init__(self, label: str, cost: float, clock: dict[str, Any]):
        self.label, self.cost, self.clock = label, cost, clock

    def prepare(self, tasks: int, count: int) -> None:
        self.clock["prepared"].append((self.label, tasks, count))

    def turn(self, tasks: int, seed: int = 0) -> float:
        self.clock["order"].append(self.label)
        slow = 2 if self.clock["done"] >= self.clock["tasks_before_load"] else 1
        self.clock["done"] += tasks
        return tasks / (tasks * self.cost * slow)


def test_scale_rows_take_turns_in_rounds_with_the_ratio_of_each_round() -> None:
    """The scale suite measured SQLite, then 1, 2 and 3 PostgreSQL replicas, one after the other: a load change
    between two rows became their ratio (here PostgreSQL twice as fast reads 1.0 once the load doubles under it).
    Now the rows take turns (A B, then B A), each with its share of the tasks, and each ratio is taken per round."""
    from ansf_mcp.bench import scale_suite

    clock: dict[str, Any] = {"order": [], "prepared": [], "done": 0, "tasks_before_load": 400}
    setups = [LoadedSetup("sqlite", 0.002, clock), LoadedSetup("postgresql-1", 0.001, clock)]
    rates = scale_suite._interleaved(setups, 400, 4)  # type: ignore[arg-type]
    assert clock["order"] == ["sqlite", "postgresql-1", "postgresql-1", "sqlite"] * 2
    assert clock["done"] == 800  # the same tasks as two runs of 400, split over the rounds
    assert sorted(clock["prepared"]) == [("postgresql-1", 100, 4), ("sqlite", 100, 4)]  # set up before, untimed
    assert scale_suite._per_round(rates, "postgresql-1", "sqlite") == {"n": 4, "median": 2.0, "min": 2.0,
                                                                       "max": 2.0}
    row = {"replicas": 1, "pairs": 400, "seconds": 1.0, "pairs_per_s": 400.0, "ratio_to_sqlite": 2.0, "rounds": 4,
           "ratio_to_sqlite_per_round": scale_suite._per_round(rates, "postgresql-1", "sqlite")}
    text = scale_suite.markdown({"throughput": [{"engine": "sqlite", **row, "ratio_to_sqlite": 1.0,
                                                 "ratio_to_sqlite_per_round": None},
                                                {"engine": "postgresql", **row}],
                                 "delayed": [{"engine": "postgresql", "rtt_ms": 5.0, "workers": 1, "agents": 6, **row,
                                              "replicas": 3, "ratio_to_one_replica": 2.0,
                                              "ratio_to_one_replica_per_round": row["ratio_to_sqlite_per_round"]}]})
    assert "| postgresql | 1 | 400 | 1.0 | 400.0 | 2.0 | 2.00 (range 2.00–2.00, n=4 rounds) |" in text, text
    assert "| 400.0 | 2.0 | 2.00 (range 2.00–2.00, n=4 rounds) |" in text.split("delaying relay")[1], text
    assert text.count("take turns in 4 rounds") == 2, text
    # A report stored before the rows took turns says so instead of offering its ratios as comparable.
    old = scale_suite.markdown({"throughput": [{"engine": "postgresql", **row, "ratio_to_sqlite_per_round": None}]})
    assert "measured one after another" in old, old


def test_the_scale_stdio_line_gives_the_ratio_of_every_round() -> None:
    from ansf_mcp.bench import scale_suite

    st = {"rounds": 4, "pairs_per_round": 10, "sqlite_pairs_per_s": 300.0, "postgresql_pairs_per_s": 220.0,
          "ratio": 0.73, "server_cpu_ms_per_pair": {}, "postgresql_backend_cpu_ms_per_pair": None,
          "ratio_per_round": {"n": 4, "median": 0.725, "min": 0.7, "max": 0.76}}
    assert "(0.73x; per round median 0.72 (range 0.70–0.76, n=4 rounds))" in scale_suite.markdown({"stdio": st})
    del st["ratio_per_round"]
    assert "one ratio over all rounds" in scale_suite.markdown({"stdio": st})


def _skip_scale_phases(monkeypatch: pytest.MonkeyPatch) -> None:
    """The scale suite's run with every phase a stub: what is left is its PostgreSQL server and the report."""
    from ansf_mcp.bench import scale_suite

    for phase in ("_stdio", "_chaos", "_takeover"):
        monkeypatch.setattr(scale_suite, phase, lambda *a, **k: None)
    for table in ("_throughput_table", "_delayed"):
        monkeypatch.setattr(scale_suite, table, lambda *a, **k: [])
    monkeypatch.setattr(scale_suite, "_round_trips", lambda url: None)


def test_the_scale_report_names_the_users_postgresql_server_without_its_credentials(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, pg_cluster: Any) -> None:
    """The scale report never said which PostgreSQL server its figures came from, so two reports from different
    servers (another version, ours or the user's) read as comparable. It now gives the server's version and
    whether it was the --store URL's server, by host, port and database: never the URL's user or password."""
    from ansf_mcp.bench import scale_suite

    _skip_scale_phases(monkeypatch)
    url = store_role_url(pg_cluster, "scale_report_reader")
    result = scale_suite.run(SuiteContext(quick=True, project=tmp_path, data_dir=tmp_path, store=url))
    assert_store_server_named(result, scale_suite.markdown(result), pg_cluster, "scale_report_reader")


@pytest.mark.slow
def test_the_scale_report_says_when_its_postgresql_server_was_a_throw_away_one(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from ansf_mcp.bench import scale_suite
    from ansf_mcp.bench.pgcluster import find_bindir
    from tests.conftest import need

    need(find_bindir() is not None, "PostgreSQL (initdb, pg_ctl, postgres)")
    _skip_scale_phases(monkeypatch)
    result = scale_suite.run(SuiteContext(quick=True, project=tmp_path, data_dir=tmp_path))
    server = result["postgresql"]
    assert server["source"] == "scratch" and server["host"] == "127.0.0.1" and server["version_num"] >= 100000
    assert (f"(server_version_num {server['version_num']}), a throw-away cluster started for this run "
            f"(127.0.0.1:{server['port']}).") in scale_suite.markdown(result)


def test_a_scale_report_stored_before_it_named_its_server_says_so() -> None:
    from ansf_mcp.bench import scale_suite

    assert scale_suite.markdown({"throughput": []}).startswith("| engine |")  # nothing measured: no server line
    st = {"rounds": 4, "pairs_per_round": 10, "sqlite_pairs_per_s": 300.0, "postgresql_pairs_per_s": 220.0,
          "ratio": 0.73, "server_cpu_ms_per_pair": {}, "postgresql_backend_cpu_ms_per_pair": None}
    assert scale_suite.markdown({"stdio": st}).startswith(
        "PostgreSQL server: not recorded (a report stored before it was).\n")


def test_every_report_section_says_which_store_it_measured(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Most suites measure servers on a throw-away data directory of their own, on purpose, and the report never
    said so: a reader of the benchmark tool's report took the figures for the configured store's."""
    record = suites.Suite("fake", "a fake", "this test's own runner", f"{__name__}:fake_run",
                          f"{__name__}:fake_markdown", store=suites.THROWAWAY)
    monkeypatch.setattr(suites, "BY_NAME", {**suites.BY_NAME, "fake": record})
    monkeypatch.setattr(runner, "SUITE_NAMES", (*suites.NAMES, "fake"))
    report = runner.run_suite("fake", SuiteContext(quick=True, project=tmp_path, data_dir=tmp_path))
    assert f"Store measured: {suites.THROWAWAY}." in report.markdown and report.results["fake"]["store"]
    assert {s.name for s in suites.SUITES if s.store == suites.THROWAWAY} == {"mcp", "memory", "phases"}
    # chaos and scale run their PostgreSQL servers through bench.pgcluster.postgres, on --store's server if any.
    assert suites.BY_NAME["scale"].store == suites.BY_NAME["chaos"].store == suites.SCRATCH_PG
    assert "--store / ANSF_STORE" in suites.SCRATCH_PG


SEEN_STORES: list[str | None] = []


def store_noting_run(ctx: SuiteContext) -> dict[str, Any]:
    SEEN_STORES.append(ctx.store)
    return {"answer": 42}


@pytest.mark.anyio
async def test_the_benchmark_tool_gives_its_suites_the_server_s_store(monkeypatch: pytest.MonkeyPatch,
                                                                     tmp_path: Path) -> None:
    """`ansf bench --store` handed the store to the suites; the benchmark tool did not, so `scale` on a server
    configured with a PostgreSQL store measured a throw-away cluster instead, and said nothing."""
    record = suites.Suite("memory", "memory", "this test's own runner", f"{__name__}:store_noting_run",
                          f"{__name__}:fake_markdown")
    monkeypatch.setattr(suites, "BY_NAME", {**suites.BY_NAME, "memory": record})
    SEEN_STORES.clear()
    other = tmp_path / "elsewhere" / "board.sqlite3"
    settings = Settings.load(data_dir=tmp_path / "data", project_root=tmp_path, store=str(other), warm_model=False)
    server, app = build_server(settings)
    try:
        async with Client(server) as client:
            run = (await client.call_tool("benchmark", {"suite": "memory"})).structured_content
            with anyio.fail_after(60):
                while run["state"] not in ("succeeded", "failed"):
                    await anyio.sleep(0.05)
                    run = (await client.call_tool("benchmark_status", {"run_id": run["run_id"]})).structured_content
    finally:
        app.shutdown()
    assert run["state"] == "succeeded", run.get("error")
    assert SEEN_STORES == [settings.store] and settings.store is not None


def _bench_coordinate() -> Any:
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_coordinate",
                                                  Path(__file__).parent.parent / "scripts" / "bench_coordinate.py")
    assert spec and spec.loader
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    return script


def test_bench_coordinate_prints_its_percentiles_with_n_and_no_p95_from_too_few_decisions() -> None:
    """scripts/bench_coordinate.py computed its own p95: from 10 decisions that was the slowest one under
    another name. It now reports the suites' summary: n beside every figure, the p95 withheld below 20."""
    script = _bench_coordinate()
    few = script.percentiles([10.0 + i for i in range(10)])
    assert few["n"] == 10 and few["p95_ms"] is None and few["withheld"]["p95"] == "n=10 < 20"
    assert few["max_ms"] == 19.0 and few["min_ms"] == 10.0
    assert few["text"] == "14.50 / max 19.00 of n=10"
    enough = script.percentiles([10.0 + i for i in range(40)])
    assert enough["n"] == 40 and enough["p95_ms"] == 47.05 and enough["p99_ms"] is None
    assert enough["text"] == "29.50 / 47.05 (n=40)"


def test_bench_coordinate_gives_each_in_process_runs_p50_with_its_n() -> None:
    """Each run's median came from `statistics.median`, without n: a run of one decision printed a "p50" as
    readily as one of twenty. It is now the stats helper's p50 with its n, None from a single decision."""
    summary = _bench_coordinate().in_process_summary([
        {"ms": [10.0, 12.0, 30.0, 11.0], "cpu_ms": [9.0, 9.0, 9.0, 9.0]}, {"ms": [20.0], "cpu_ms": [8.0]}])
    assert summary["p50_per_run"] == [{"n": 4, "p50_ms": 11.5}, {"n": 1, "p50_ms": None}]
    assert summary["n"] == 5 and summary["p50_ms"] == 12.0 and summary["cpu"]["n"] == 5


@pytest.mark.slow
def test_bench_coordinate_reports_each_trees_ratio_to_the_first_per_round() -> None:
    """The script printed each tree's percentiles side by side, which on a shared machine met different load:
    only the ratio per round of figures measured together compares. The same checkout twice must give a ratio
    (not asserted near 1: that would be a timing bound) with one round per in-process run and per stdio block."""
    import math
    import sys

    root = Path(__file__).parent.parent
    out = subprocess.run([sys.executable, str(root / "scripts" / "bench_coordinate.py"), "--tree", f"a={root}",
                          "--tree", f"b={root}", "--runs", "1", "--calls", "2", "--stdio-calls", "8"],
                         capture_output=True, text=True, timeout=600, cwd=root)
    assert out.returncode == 0, out.stderr[-2000:]
    report = json.loads(out.stdout)
    assert {"in_process", "stdio", "load_before", "load_after"} <= set(report)  # the keys others read, unchanged
    ratios = report["ratios"]
    assert ratios["reference"] == "a" and set(ratios["in_process"]) == set(ratios["stdio"]) == {"b"}
    assert ratios["in_process"]["b"]["n"] == 1  # one interleaved run
    assert ratios["stdio"]["b"]["n"] == 2  # 8 calls: two blocks of 4 pairs
    for summary in (ratios["in_process"]["b"], ratios["stdio"]["b"]):
        assert math.isfinite(summary["median"]) and summary["median"] > 0
        assert summary["min"] <= summary["median"] <= summary["max"]
    assert "p50 ratio to a per round: b: in-process" in out.stderr


def test_a_scale_row_s_cpu_covers_the_same_window_as_its_rate(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A round's rate stopped at the last outcome, but its CPU was read once the agents had stopped, after their
    polling tail (up to 0.1 s of sleeps and calls that do no work): the CPU per claim+outcome and the cores used
    counted a time the rate did not. Both now stop when an agent first sees the board done. Here every part's
    "CPU" is the wall clock, so cores used is 1.0 exactly when the two windows are the same, and a tail of 0.5 s
    after the agents stop would show as more."""
    from ansf_mcp.bench import scale_suite

    monkeypatch.setattr(scale_suite, "_parts_cpu", lambda *a: {"replicas": time.perf_counter(), "backend": None,
                                                               "relay": None, "load_generator": None})
    real_run = scale_suite.Agents.run

    async def run_with_a_tail(self: Any) -> None:
        await real_run(self)
        await anyio.sleep(0.5)

    monkeypatch.setattr(scale_suite.Agents, "run", run_with_a_tail)
    with scale_suite.Setup("sqlite", str(tmp_path / "window.sqlite3"), 1, tmp_path, n_agents=4) as setup:
        setup.turn(40)
    row = setup.row()
    assert row["pairs"] >= 40 and row["seconds"] < 10, row
    assert row["cores_used"] == 1.0, row
