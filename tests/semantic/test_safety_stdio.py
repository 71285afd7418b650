"""Through real server processes (stdio, legacy handshake): two servers on one data directory renaming or replacing
at once never corrupt a file nor lose an acknowledged edit; an editor's save during a rename is never lost; a
SIGKILL part-way through a multi-file rename leaves every file all old or all new after the next start, with no
temporary file; a catastrophic regex never delays ping past 1 s. The longer probe is `ansf_mcp.bench.edit_safety`."""

from __future__ import annotations

import ast
import shutil
import time
from pathlib import Path

import anyio
import pytest
from mcp import Client, StdioServerParameters

from ansf_mcp.bench import edit_safety
from tests.conftest import ansf_command, subprocess_env

pytestmark = [pytest.mark.anyio, pytest.mark.slow]
ROUNDS = 4


def params(data_dir: Path, project: Path) -> StdioServerParameters:
    cmd = ansf_command()
    env = subprocess_env(data_dir)
    return StdioServerParameters(command=cmd[0], args=[*cmd[1:], "serve", "--project", str(project)], env=env,
                                 cwd=str(project))


def make_project(root: Path) -> Path:
    shutil.copytree(Path(__file__).resolve().parents[1] / "fixtures" / "semantic" / "pyproj", root)
    return root


async def test_two_servers_renaming_at_once_never_corrupt(tmp_path: Path) -> None:
    project = make_project(tmp_path / "proj")
    data = tmp_path / "data"
    names = {"a": "scale", "b": "SCALE"}  # a function used in 8 files and the constant in its body
    refused = 0
    async with Client(params(data, project), mode="legacy") as one, \
            Client(params(data, project), mode="legacy") as two:
        for rnd in range(ROUNDS):
            results: dict[str, tuple[bool, str]] = {}

            async def rename(client: Client, key: str, rnd: int = rnd, results: dict = results) -> None:
                new = f"{names[key]}_{rnd}"
                r = await client.call_tool("rename_symbol", {"name_path": names[key],
                                                             "relative_path": "src/geo/units.py", "new_name": new})
                results[key] = (not r.is_error, new if not r.is_error else r.content[0].text)

            async with anyio.create_task_group() as tg:
                tg.start_soon(rename, one, "a")
                tg.start_soon(rename, two, "b")
            old = dict(names)
            for key, (done, text) in results.items():
                if done:
                    names[key] = text
                else:
                    refused += 1
                    assert any(s in text for s in ("changed on disk", "another edit", "saved by another program")), text
            units = (project / "src/geo/units.py").read_text()
            assert f"def {names['a']}(value):" in units and f"{names['b']} = 2" in units, units
            assert f"return value * {names['b']}" in units, units
            for path in sorted(project.rglob("*.py")):
                tree = ast.parse(path.read_bytes())  # never garbled (odd.py is Latin-1 on purpose)
                words = {getattr(n, "id", None) or getattr(n, "name", None) or getattr(n, "attr", None)
                         for n in ast.walk(tree) if isinstance(n, ast.Name | ast.FunctionDef | ast.alias |
                                                                ast.Attribute)}
                gone = {old[k] for k in old if names[k] != old[k]}
                assert not words & gone, (path.name, words & gone)  # every acknowledged rename is whole
    assert not list(project.rglob("*.tmp")) and refused <= ROUNDS  # at most one refusal per round


async def test_a_catastrophic_regex_never_delays_ping(tmp_path: Path) -> None:
    project = tmp_path / "proj"
    project.mkdir()
    for i in range(40):
        (project / f"f{i}.txt").write_text(("a" * 31 + "b\n") * 500 + ("word " * 2000 + "\n") * 5)
    async with Client(params(tmp_path / "data", project), mode="legacy") as client:
        worst = 0.0
        searching = anyio.Event()
        finished = anyio.Event()

        async def search() -> None:
            searching.set()
            for pattern in ("(a+)+$", r"(\w+\s?)+:"):
                r = await client.call_tool("search_for_pattern", {"pattern": pattern})
                assert not r.is_error, r.content
            finished.set()

        async def pings() -> None:
            nonlocal worst
            await searching.wait()
            for _ in range(1000):
                if finished.is_set():
                    return
                started = time.monotonic()
                await client.send_ping()
                worst = max(worst, time.monotonic() - started)

        async with anyio.create_task_group() as tg:
            tg.start_soon(search)
            tg.start_soon(pings)
        print(f"worst ping during the catastrophic searches: {worst:.3f} s")
        assert finished.is_set() and worst <= 1.0, worst


async def test_two_servers_replacing_two_functions_of_one_file_lose_nothing(tmp_path: Path) -> None:
    r = await edit_safety.replaces(tmp_path, 4, time.monotonic() + 240)
    assert (r["runs"], r["corrupted_files"], r["acknowledged_edits_lost"], r["other_error_count"]) == (4, 0, 0, 0)
    assert r["acknowledged"] + r["refused"] == 8 and r["acknowledged"] >= 4


async def test_an_editor_saving_during_a_rename_is_never_lost(tmp_path: Path) -> None:
    r = await edit_safety.editor(tmp_path, 4, time.monotonic() + 240)
    assert (r["runs"], r["corrupted_files"], r["acknowledged_edits_lost"], r["editor_saves_lost"],
            r["other_error_count"]) == (4, 0, 0, 0, 0)


async def test_sigkill_during_a_multi_file_rename_leaves_all_old_or_all_new(tmp_path: Path) -> None:
    r = await edit_safety.kills(tmp_path, 3, 40, time.monotonic() + 300)
    assert (r["runs"], r["mixed_old_and_new"], r["runs_with_temp_files"], r["corrupted_files"]) == (3, 0, 0, 0)
    assert r["all_old"] + r["all_new"] == 3
