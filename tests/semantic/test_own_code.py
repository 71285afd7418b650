"""The project's own source wins: over a copy installed beside the server or in the project's environment, over
jedi's bundled stubs, and over jedi's 30-file reference limit. Truth: the tokenizer (every NAME occurrence)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ansf_mcp.bench.semantic_truth import name_lines
from tests.semantic.conftest import FIXTURES, build
from tests.semantic.helpers import flat, ok

pytestmark = pytest.mark.anyio

# Another copy of the package, with the names on other lines: an answer pointing here is the installed copy.
INSTALLED_INIT = '''"""An installed termcolor that is not the project's."""
ATTRIBUTES = {}


def colored(text, color=None, on_color=None, attrs=None):
    return text


def cprint(text, color=None):
    print(text)


class Palette:
    pass
'''


def _install_copy(site: Path) -> None:
    (site / "termcolor").mkdir(parents=True)
    (site / "termcolor" / "__init__.py").write_text(INSTALLED_INIT)


@pytest.fixture(params=["beside-the-server", "in-the-project-venv"])
def shadowed(request, tmp_path):
    """(server, service, project): ownpkg, with another termcolor importable by the language server."""
    proj = tmp_path / "ownpkg"
    shutil.copytree(FIXTURES / "ownpkg", proj)
    overrides = {}
    if request.param == "beside-the-server":
        from ansf_mcp.semantic.languages.python import spec as python_spec

        site = tmp_path / "server-site"
        _install_copy(site)
        spec = python_spec(proj)
        spec.env["PYTHONPATH"] = str(site)  # on the server's own sys.path, like our venv's site-packages
        overrides["python"] = spec
    else:
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(proj / ".venv")], check=True,
                       capture_output=True)
        site = next((proj / ".venv" / "lib").glob("python3*/site-packages"))
        _install_copy(site)
    server, _app, service = build(proj, tmp_path / "data", spec_overrides=overrides)
    yield server, service, proj
    service.shutdown()


async def _definition(server, proj: Path, rel: str, line: int, name: str, nth: int = 0):
    text = (proj / rel).read_text().splitlines()[line - 1]
    col = -1
    for _ in range(nth + 1):
        col = text.index(name, col + 1)
    r = await ok(server, "goto_definition", {"relative_path": rel, "line": line, "column": col + 1})
    return [(d["relative_path"], d["line"]) for d in r["definitions"]]


async def test_definitions_land_in_the_project(shadowed):
    server, service, proj = shadowed
    env = service.server("python").spec.init_options["workspace"].get("environmentPath")
    assert (env is not None) == (proj / ".venv").exists()
    core = "src/termcolor/core.py"
    assert await _definition(server, proj, "tests/test_core.py", 7, "colored") == [(core, 12)]
    assert await _definition(server, proj, "tests/test_core.py", 8, "colored") == [(core, 12)]
    assert await _definition(server, proj, "tests/test_core.py", 12, "Palette") == [(core, 4)]
    assert await _definition(server, proj, "tests/test_core.py", 13, "Palette", 1) == [(core, 4)]
    assert await _definition(server, proj, "tests/test_core.py", 15, "cprint") == [(core, 16)]


@pytest.mark.parametrize("name", ["Palette", "colored"])
async def test_references_match_the_tokenizer_truth(shadowed, name):
    server, _service, proj = shadowed
    r = await ok(server, "find_references", {"name_path": name, "relative_path": "src/termcolor/core.py"})
    got = {(x["relative_path"], x["line"]) for x in flat(r)}
    # the tokenizer's NAME tokens, and the package's `__all__` entry (a string that names it, found by scope)
    truth = name_lines(proj, name) | {("src/termcolor/__init__.py", 3)}
    definition = {("src/termcolor/core.py", 4 if name == "Palette" else 12)}
    assert got == truth - definition
    assert not any(x["relative_path"].startswith(".venv") for x in flat(r))


async def test_references_beyond_jedis_30_file_limit(tmp_path):
    """Stock jedi parses at most 30 other files containing the name; a name used in 45 files loses 15."""
    proj = tmp_path / "many"
    pkg = proj / "many"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "base.py").write_text("def shared_helper(x):\n    return x\n")
    for i in range(45):
        (pkg / f"m{i:02d}.py").write_text(f"from many.base import shared_helper\n\nVALUE = shared_helper({i})\n")
    server, _app, service = build(proj, tmp_path / "data")
    try:
        r = await ok(server, "find_references", {"name_path": "shared_helper", "relative_path": "many/base.py"})
        assert r["total"] == 90
        assert {x["relative_path"] for x in flat(r)} == {f"many/m{i:02d}.py" for i in range(45)}
    finally:
        service.shutdown()


def test_wrapper_keeps_stdout_for_the_protocol():
    """The wrapper is a plain module run: importing it prints nothing and starts nothing."""
    out = subprocess.run([sys.executable, "-c", "import ansf_mcp.semantic.jedi_server"], capture_output=True,
                         text=True, env={**os.environ, "PYTHONWARNINGS": "ignore"}, check=True)
    assert out.stdout == ""


async def test_forward_references_in_annotations_are_found(tmp_path):
    """`from __future__ import annotations`: a class used in annotations above its definition (stock jedi
    resolves those uses to nothing and leaves them out)."""
    proj = tmp_path / "fwd"
    (proj / "fwd").mkdir(parents=True)
    (proj / "fwd/__init__.py").write_text("")
    (proj / "fwd/model.py").write_text(
        "from __future__ import annotations\n\n\n"
        "def first(items: list[Later]) -> Later | None:\n    return items[0] if items else None\n\n\n"
        "class Holder:\n    def __init__(self, later: Later) -> None:\n        self.later = later\n\n\n"
        "class Later:\n    pass\n")
    (proj / "fwd/use.py").write_text("from fwd.model import Later\n\nITEMS: list[Later] = [Later()]\n")
    server, _app, service = build(proj, tmp_path / "data")
    try:
        r = await ok(server, "find_references", {"name_path": "Later", "relative_path": "fwd/model.py"})
        got = {(x["relative_path"], x["line"]) for x in flat(r)}
        assert got == name_lines(proj, "Later") - {("fwd/model.py", 13)}
        assert r["total"] == 6  # two on line 4, one on line 9; in use.py the import and two on line 3
    finally:
        service.shutdown()
