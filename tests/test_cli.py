"""`ansf coordinate` and `ansf status` as a user runs them."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

from tests.conftest import ansf_command, subprocess_env

EPISODE = {
    "id": "ep-1",
    "agents": [
        {"id": "a", "role": "backend", "capacity": 2,
         "history": [{"task": "Fix the payments API timeout", "success": True}]},
        {"id": "b", "role": "frontend", "history": [{"task": "Fix the payments API timeout", "success": False}]},
    ],
    "tasks": [
        {"id": "t1", "description": "Fix the orders API timeout"},
        {"id": "t2", "description": "Style the settings page", "depends_on": ["t1"]},
        {"id": "t3", "description": "Anything", "depends_on": ["nowhere"]},
    ],
}


def coordinate(tmp_path: Path, text: str, *args: str, stdin: bool = False) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "episodes.jsonl"
    path.write_text(text)
    return subprocess.run(
        [*ansf_command(), "coordinate", "--input", "-" if stdin else str(path), *args],
        input=text if stdin else None,
        capture_output=True,
        text=True,
        timeout=120,
        env=subprocess_env(tmp_path / "data"),
    )


def test_single_pretty_printed_episode(tmp_path: Path) -> None:
    out = coordinate(tmp_path, json.dumps(EPISODE, indent=2), "--strategy", "history")
    assert out.returncode == 0, out.stderr
    (line,) = out.stdout.splitlines()
    result = json.loads(line)
    assert result["id"] == "ep-1" and result["strategy"] == "history"
    assert {a["task"]: a["agent"] for a in result["assignments"]}["t1"] == "a"
    assert result["unassigned"] == [{"task": "t3", "reason": "unknown dependency 'nowhere'"}]


def test_json_lines_keep_order_and_report_bad_lines_in_place(tmp_path: Path) -> None:
    second = {**EPISODE, "id": "ep-2"}
    text = "\n".join([json.dumps(EPISODE), "{not json", json.dumps({"id": "ep-bad", "agents": []}), json.dumps(second)])
    out = coordinate(tmp_path, text + "\n", "--strategy", "round-robin")
    assert out.returncode == 1
    lines = [json.loads(x) for x in out.stdout.splitlines()]
    assert [x.get("id") for x in lines] == ["ep-1", None, "ep-bad", "ep-2"]
    assert "error" in lines[1] and lines[1]["line"] == 2 and "error" in lines[2]
    assert all(x["strategy"] == "round-robin" for x in (lines[0], lines[3]))
    assert "2 of 4" in out.stderr


def test_an_invalid_episode_says_where_and_why_in_one_line(tmp_path: Path) -> None:
    """pydantic's own text came through whole: every error's input again and a documentation URL after each."""
    bad = {"id": "x", "agents": [{"id": "a", "capacity": -1}], "tasks": [{"id": "t", "description": "d",
                                                                          "priority": "high"}]}
    out = coordinate(tmp_path, json.dumps(bad) + "\n", "--strategy", "tags")
    assert out.returncode == 1
    (line,) = out.stdout.splitlines()
    assert json.loads(line) == {"id": "x", "line": 1, "error": (
        "agents[0].capacity: Input should be greater than or equal to 1; "
        "tasks[0].priority: Input should be a valid integer, unable to parse string as an integer")}


def test_stdin_and_auto_says_what_it_used(tmp_path: Path) -> None:
    out = coordinate(tmp_path, json.dumps(EPISODE), stdin=True)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["strategy"] in {"neural", "similarity", "history"}
    assert result["reason"] and result["note"] is None, result  # the shipped model loaded; auto says why


def test_cli_runs_the_shipped_checkpoint(tmp_path: Path) -> None:
    from ansf_mcp.coordinator.profiles import DEFAULT_PROFILE

    out = coordinate(tmp_path, json.dumps(EPISODE), "--strategy", "neural")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["strategy"] == "neural" and result["model"] == DEFAULT_PROFILE and result["note"] is None
    assert all(0 < a["p_success"] < 1 for a in result["assignments"])


def test_one_broken_pretty_printed_episode_is_one_error_where_it_broke(tmp_path: Path) -> None:
    """QA F5: one document with a trailing comma gave 9 'invalid episode' lines (one per physical line, its task
    reported as an episode named t1) and '9 of 9'. It is one episode: one error at the real line, '1 of 1'."""
    text = "\n" + json.dumps(EPISODE, indent=2).replace('"capacity": 2,', '"capacity": 2,,', 1) + "\n"
    broken = next(n for n, line in enumerate(text.splitlines(), start=1) if ",," in line)
    assert broken > 2  # a leading blank line counts, as in the file
    out = coordinate(tmp_path, text, "--strategy", "history")
    assert out.returncode == 1
    (line,) = out.stdout.splitlines()
    error = json.loads(line)
    assert error["line"] == broken and f"line {broken} column" in error["error"], error
    assert "1 of 1 episode(s) were invalid" in out.stderr
    # A first line that is broken on its own still reads as JSON Lines: each line stands alone.
    out = coordinate(tmp_path, "\n".join(["{not json", json.dumps(EPISODE)]) + "\n", "--strategy", "round-robin")
    assert [json.loads(x).get("id") for x in out.stdout.splitlines()] == [None, "ep-1"] and "1 of 2" in out.stderr


def test_empty_and_missing_input(tmp_path: Path) -> None:
    assert coordinate(tmp_path, "\n\n").returncode == 2
    missing = subprocess.run([*ansf_command(), "coordinate", "--input", str(tmp_path / "nope.json")],
                             capture_output=True, text=True, timeout=60)
    assert missing.returncode == 2 and "cannot read" in missing.stderr


def test_status_json(tmp_path: Path) -> None:
    out = subprocess.run([*ansf_command(), "status", "--json"], capture_output=True, text=True, timeout=60,
                         env=subprocess_env(tmp_path / "data"))
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["data_dir"] == str((tmp_path / "data").resolve())
    assert report["phase"]["phase"] and report["phase"]["reason"]


def test_status_for_a_person_writes_text_not_json_escapes(tmp_path: Path) -> None:
    out = subprocess.run([*ansf_command(), "status"], capture_output=True, text=True, timeout=60,
                         env={**subprocess_env(tmp_path / "data"), "PYTHONIOENCODING": "utf-8"})
    assert out.returncode == 0, out.stderr
    phase = next(line for line in out.stdout.splitlines() if line.strip().startswith("phase:"))
    assert "critical ≥ 99%" in phase and "\\u" not in phase, phase
    ascii_only = subprocess.run([*ansf_command(), "status"], capture_output=True, text=True, timeout=60,
                                env={**subprocess_env(tmp_path / "data"), "PYTHONIOENCODING": "ascii"})
    assert ascii_only.returncode == 0 and "critical \\u2265 99%" in ascii_only.stdout, ascii_only.stderr[-500:]


def test_status_of_a_store_it_cannot_reach_exits_1(tmp_path: Path) -> None:
    (tmp_path / "not-a-db").write_bytes(b"this is not a SQLite file" * 100)
    out = subprocess.run([*ansf_command(), "status", "--json", "--store", str(tmp_path / "not-a-db")],
                         capture_output=True, text=True, timeout=60, env=subprocess_env(tmp_path / "data"))
    report = json.loads(out.stdout)
    assert out.returncode == 1 and report["store"]["error"], (out.returncode, report)
    assert "exists" not in report["store"]  # not known: nothing was reached


def test_status_into_a_reader_that_went_away_exits_quietly(tmp_path: Path) -> None:
    """`ansf status | head -1`: the reader closes the pipe; no traceback, no 'Exception ignored' at exit."""
    import os

    read_end, write_end = os.pipe()
    os.close(read_end)  # every write now fails with EPIPE, as after `head` has read its line and left
    try:
        out = subprocess.run([*ansf_command(), "status"], stdout=write_end, stderr=subprocess.PIPE, text=True,
                             timeout=60, env=subprocess_env(tmp_path / "data"))
    finally:
        os.close(write_end)
    assert out.returncode == 1 and out.stderr == "", out.stderr


def test_train_takes_its_own_options_as_documented(tmp_path: Path) -> None:
    """`ansf train --profile ...` (docs/MODEL.md) reaches the training parser; the top-level parser once refused
    every option of it ("unrecognized arguments: --profile")."""
    helped = subprocess.run([*ansf_command(), "train", "--help"], capture_output=True, text=True, env=subprocess_env(tmp_path),
                            timeout=120)
    assert helped.returncode == 0 and "--profile" in helped.stdout and "--mirror" in helped.stdout
    refused = subprocess.run([*ansf_command(), "train", "--profile", "huge", "--out", str(tmp_path)],
                             capture_output=True, text=True, env=subprocess_env(tmp_path), timeout=120)
    assert refused.returncode == 2 and "unknown profile 'huge'" in refused.stderr
    last = refused.stderr.strip().splitlines()[-1]
    assert last == ("ansf train: error: unknown profile 'huge'; profiles: spec-fp32, spec-int8, spec-pruned20, "
                    "student, spec"), last
    assert "unrecognized arguments" not in refused.stderr


def test_an_invalid_setting_names_the_variable_the_user_set(monkeypatch, tmp_path: Path, capsys) -> None:
    """QA F6: one line naming the environment variable (or the flag) and the value, the same for every command;
    not the model's field, not pydantic's dump with its link."""
    from ansf_mcp.cli import main

    monkeypatch.setenv("ANSF_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("ANSF_PHASE_CRITICAL_AT", "abc")
    why = "ANSF_PHASE_CRITICAL_AT='abc': Input should be a valid number, unable to parse string as a number\n"
    for argv in (["status"], ["serve", "--standalone"], ["dashboard"], ["bench", "--suite", "mcp", "--quick"]):
        assert main(argv) == 2, argv
        assert capsys.readouterr().err == f"ansf {argv[0]}: invalid setting: {why}"
    monkeypatch.setenv("ANSF_PHASE_CRITICAL_AT", "0.5")  # a rule across two settings names both variables
    assert main(["status"]) == 2
    assert capsys.readouterr().err == ("ansf status: invalid setting: ANSF_PHASE_ENHANCED_AT must be below "
                                       "ANSF_PHASE_CRITICAL_AT (set: ANSF_PHASE_CRITICAL_AT='0.5')\n")
    monkeypatch.delenv("ANSF_PHASE_CRITICAL_AT")
    monkeypatch.setenv("ANSF_DASHBOARD_INTERVAL_S", "-5")  # the dashboard's own variables too
    assert main(["dashboard"]) == 2
    assert capsys.readouterr().err == ("ansf dashboard: invalid setting: ANSF_DASHBOARD_INTERVAL_S='-5': Input should "
                                       "be greater than 0\n")
    monkeypatch.delenv("ANSF_DASHBOARD_INTERVAL_S")
    assert main(["serve", "--standalone", "--transport", "http", "--port", "99999"]) == 2  # a flag set it
    assert capsys.readouterr().err == ("ansf serve: invalid setting: port=99999 (its flag, or ANSF_PORT): Input should "
                                       "be less than or equal to 65535\n")
    monkeypatch.setenv("ANSF_STORE", "mysql://u:secret@db.example/ansf")  # a value that may hold a password
    assert main(["status"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ansf status: invalid setting: ANSF_STORE: ") and "secret" not in err


def test_an_http_server_says_its_real_port_and_an_idle_stop_exits_0(tmp_path: Path) -> None:
    import re

    started = time.monotonic()
    out = subprocess.run([*ansf_command(), "serve", "--standalone", "--transport", "http", "--port", "0",
                          "--idle-exit-s", "1"], capture_output=True, text=True, timeout=120,
                         env=subprocess_env(tmp_path / "data"), stdin=subprocess.DEVNULL)
    assert out.returncode == 0, (out.returncode, out.stderr[-2000:])  # a clean stop, not a signal's 143
    port = re.search(r"transport on http://127\.0\.0\.1:(\d+)/mcp", out.stderr)
    assert port is not None and int(port.group(1)) > 0, out.stderr  # the kernel's choice, not ':0'
    assert "ansf serve: no client for 1 s (--idle-exit-s), stopping" in out.stderr
    assert time.monotonic() - started < 60


def test_a_non_positive_idle_exit_is_refused() -> None:
    for value in ("-5", "0", "soon"):
        out = subprocess.run([*ansf_command(), "serve", "--transport", "http", "--idle-exit-s", value],
                             capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
        assert out.returncode == 2 and "--idle-exit-s" in out.stderr, (value, out.stderr)


def test_a_relay_on_an_unusable_data_dir_says_so_in_one_line(tmp_path: Path) -> None:
    """`ansf serve` as Claude Desktop starts it (a relay) once printed a traceback when it could not make its data
    directory (a file in its place, or no permission); the standalone server already said so in one line."""
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    env = subprocess_env(blocker / "ansf-mcp")
    env.pop("ANSF_STANDALONE")
    out = subprocess.run([*ansf_command(), "serve", "--project", str(tmp_path)], input="", capture_output=True,
                         text=True, timeout=60, env=env)
    assert out.returncode == 2 and out.stdout == ""
    assert "Traceback" not in out.stderr and len(out.stderr.splitlines()) == 1, out.stderr
    assert out.stderr.startswith(f"ansf serve: cannot use the data directory {blocker / 'ansf-mcp'} ")
    assert "--data-dir" in out.stderr and "--standalone" not in out.stderr


def test_the_announced_url_of_an_ipv6_listener_is_one_a_client_can_open(tmp_path: Path) -> None:
    """`--host ::1` was announced as http://::1:PORT/mcp, which no client or browser parses."""
    import re

    out = subprocess.run([*ansf_command(), "serve", "--standalone", "--transport", "http", "--host", "::1",
                          "--port", "0", "--idle-exit-s", "1"], capture_output=True, text=True, timeout=120,
                         env=subprocess_env(tmp_path / "data"), stdin=subprocess.DEVNULL)
    assert out.returncode == 0, out.stderr[-2000:]
    assert re.search(r"transport on http://\[::1\]:\d+/mcp$", out.stderr, re.MULTILINE), out.stderr


def test_a_relay_whose_server_refuses_its_settings_does_not_suggest_standalone(tmp_path: Path) -> None:
    """The relay suggested `--standalone` after every failed start, also when the shared server refused a setting
    that a standalone server reads and refuses just the same."""
    env = subprocess_env(tmp_path / "data")
    env.pop("ANSF_STANDALONE")
    env["ANSF_MAX_ATTEMPTS"] = "0"
    out = subprocess.run([*ansf_command(), "serve", "--project", str(tmp_path)], input="", capture_output=True,
                         text=True, timeout=120, env=env)
    assert out.returncode == 2 and out.stdout == "" and len(out.stderr.splitlines()) == 1, out.stderr
    assert "exited with status 2 at start" in out.stderr and "ANSF_MAX_ATTEMPTS='0'" in out.stderr
    assert "--standalone" not in out.stderr
