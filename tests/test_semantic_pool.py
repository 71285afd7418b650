"""A hung or dead language server cannot freeze the stdio server (issue 10, item 4): the semantic tools run on a
pool of their own with a deadline, queued calls fail fast while one is stuck, and a server that dies answers
what it owed at once. Real stdio subprocess, real jedi-language-server, stopped with SIGSTOP."""

from __future__ import annotations

import os
import shutil
import signal
import time
from pathlib import Path

import anyio
import pytest
from mcp import Client, StdioServerParameters

from tests.conftest import ansf_command, subprocess_env

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

PYPROJ = Path(__file__).resolve().parent / "fixtures" / "semantic" / "pyproj"
DEADLINE_S = 3
WORKERS = 4  # the semantic pool's default (settings.semantic_workers)


def params(data_dir: Path, project: Path) -> StdioServerParameters:
    cmd = ansf_command()
    env = {**subprocess_env(data_dir), "ANSF_SEMANTIC_DEADLINE_S": str(DEADLINE_S)}
    return StdioServerParameters(command=cmd[0], args=[*cmd[1:], "serve", "--project", str(project)], env=env,
                                 cwd=str(project))


async def jedi_pid(client: Client) -> int:
    first = await client.call_tool("symbols_overview", {"relative_path": "src/geo/circle.py"})
    assert not first.is_error, first.content
    status = (await client.call_tool("system_status", {})).structured_content
    servers = status["components"]["semantic"]["servers"]
    assert servers and servers[0]["alive"], servers
    return servers[0]["pid"]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    dst = tmp_path / "pyproj"
    shutil.copytree(PYPROJ, dst)
    return dst


async def test_a_stopped_language_server_freezes_nothing_else(data_dir: Path, project: Path) -> None:
    async with Client(params(data_dir, project), mode="legacy") as client:
        pid = await jedi_pid(client)
        os.kill(pid, signal.SIGSTOP)
        try:
            answers: list[tuple[float, bool, str]] = []

            async def definition(line: int) -> None:
                started = time.monotonic()
                r = await client.call_tool("goto_definition",
                                           {"relative_path": "src/geo/circle.py", "line": 1 + line % 13, "column": 1})
                answers.append((time.monotonic() - started, r.is_error, r.content[0].text if r.content else ""))

            with anyio.fail_after(30):
                async with anyio.create_task_group() as tg:
                    for i in range(WORKERS):  # they take the pool's workers and hang on the stopped jedi
                        tg.start_soon(definition, i)
                    # The rest queue behind them with a later deadline of their own: they must be answered when the
                    # first ones pass theirs, not wait out their own (sent together, all would share one deadline).
                    await anyio.sleep(1.0)
                    for i in range(WORKERS, 45):  # more than anyio's 40 worker threads, which also read stdin
                        tg.start_soon(definition, i)
                    await anyio.sleep(0)  # let them all be sent
                    # The rest of the server answers at once while 45 semantic calls hang on a stopped jedi.
                    with anyio.fail_after(10):
                        status = await client.call_tool("system_status", {})
                        swarms = await client.call_tool("swarm_status", {})
                    assert not status.is_error and not swarms.is_error
            assert len(answers) == 45
            assert all(err for _, err, _ in answers), "a stopped server cannot have answered"
            slowest = max(t for t, _, _ in answers)
            assert slowest < DEADLINE_S + 5, f"slowest semantic answer took {slowest:.1f} s"
            texts = {text.split(":")[0] for _, _, text in answers}
            assert any("no answer from the language server" in t for _, _, t in answers), texts
            failed_fast = sum("failing fast" in t for _, _, t in answers)
            assert failed_fast >= 45 - WORKERS - 2, sorted({t[:80] for _, _, t in answers})
        finally:
            os.kill(pid, signal.SIGKILL)


async def test_a_language_server_that_dies_mid_call_holds_nothing_up(data_dir: Path, project: Path) -> None:
    async with Client(params(data_dir, project), mode="legacy") as client:
        pid = await jedi_pid(client)
        os.kill(pid, signal.SIGSTOP)
        stuck = await client.call_tool("goto_definition", {"relative_path": "src/geo/circle.py", "line": 3,
                                                           "column": 6})
        assert stuck.is_error and "no answer" in stuck.content[0].text  # in flight at the stopped server
        os.kill(pid, signal.SIGKILL)
        started = time.monotonic()
        with anyio.fail_after(15):
            while True:  # the dead server's owed answer comes at once; the next call starts a fresh one
                r = await client.call_tool("goto_definition", {"relative_path": "src/geo/circle.py", "line": 3,
                                                               "column": 6})
                if not r.is_error:
                    break
                assert "failing fast" in r.content[0].text, r.content[0].text
                await anyio.sleep(0.2)
        assert r.structured_content["definitions"], r.structured_content
        assert time.monotonic() - started < 10
