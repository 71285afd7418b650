"""Edits that race: two symbolic edits of one file at once, and an edit racing another program's write of the
file between the edit's read and its write. No update is lost: both land, or the later one is refused with one
sentence; another program's write is never silently overwritten."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import anyio
import pytest
from ansf_mcp.semantic import syntax

from tests.semantic.conftest import build
from tests.semantic.helpers import call

pytestmark = pytest.mark.anyio

BASE = "src/geo/base.py"
AREA = "def area(self):\n    return 42\n"
AFTER_MAKE_ID = "def make_tag(prefix):\n    return prefix + \"-tag\"\n"
BEFORE_SHAPE = "SENTINEL = 7\n"
OUTSIDE = "# written by another program\n"


def _text(r) -> str:
    return " ".join(getattr(c, "text", "") for c in r.content)


# The refusals an edit may answer with when it lost a race: the file moved while the edit was read or planned,
# another edit of ours held the file, or another program (another server's edit too) saved it at the very moment
# of writing.
REFUSALS = ("changed on disk", "another edit held", "saved by another program")


def _is_clear_refusal(msg: str) -> bool:
    return any(r in msg for r in REFUSALS) and "nothing was changed" in msg and "Traceback" not in msg


def _refused_clearly(r) -> None:
    msg = _text(r)
    assert _is_clear_refusal(msg), msg


EDITS = [
    ("replace_symbol_body", {"name_path": "Shape/area", "relative_path": BASE, "body": AREA}, "return 42"),
    ("insert_after_symbol", {"name_path": "make_id", "relative_path": BASE, "body": AFTER_MAKE_ID},
     "def make_tag(prefix)"),
    ("insert_before_symbol", {"name_path": "Shape", "relative_path": BASE, "body": BEFORE_SHAPE}, "SENTINEL = 7"),
]


async def test_concurrent_edits_of_one_file_all_land_or_are_refused(pyproj_copy, tmp_path):
    server, _app, _service = build(pyproj_copy, tmp_path / "data", type_net_seconds=0.0)
    base = pyproj_copy / BASE
    results: dict[str, object] = {}

    async def edit(tool: str, args: dict) -> None:
        results[tool] = await call(server, tool, args)

    async with anyio.create_task_group() as tg:
        for tool, args, _mark in EDITS:
            tg.start_soon(edit, tool, args)
    text = base.read_text()
    landed = 0
    for tool, _args, mark in EDITS:
        r = results[tool]
        if r.is_error:  # type: ignore[attr-defined]
            _refused_clearly(r)
            assert mark not in text, f"{tool} was refused but its change is in the file"
        else:
            landed += 1
            assert mark in text, f"{tool} answered success but its change is not in the file (lost update)"
    assert landed >= 1
    compile(text, BASE, "exec")
    assert not list((tmp_path / "data" / "edits").glob("*")) and not list((tmp_path / "data" / "locks").glob("*"))


def test_edits_from_many_threads_on_one_file_lose_nothing(pyproj_copy, tmp_path):
    """Eight threads each insert their own constant before `make_id` at once, half of them through a second
    service with its own data directory (another server process: its locks do not exclude ours, only the
    compare-and-swap does): every one that answers success is in the file, every failure is one clear
    sentence."""
    services = [build(pyproj_copy, tmp_path / name, type_net_seconds=0.0)[2] for name in ("data", "other-data")]
    for service in services:  # both servers warm, so the threads meet at the files, not at a server's start
        service.symbols_overview(BASE)
    base = pyproj_copy / BASE
    outcome: dict[int, str | None] = {}
    start = threading.Barrier(8)

    def worker(i: int) -> None:
        start.wait()
        try:
            services[i % 2].insert_before_symbol("make_id", BASE, f"CONSTANT_{i} = {i}\n")
            outcome[i] = None
        except Exception as exc:  # the service's own errors are the answer's text
            outcome[i] = f"{type(exc).__name__}: {exc}"

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    text = base.read_text()
    for i, failure in outcome.items():
        if failure is None:
            assert f"CONSTANT_{i} = {i}" in text, f"thread {i}'s edit answered success but is lost"
        else:
            assert _is_clear_refusal(failure), failure
            assert f"CONSTANT_{i} = {i}" not in text
    assert len(outcome) == 8 and any(v is None for v in outcome.values())
    compile(text, BASE, "exec")


def _outside_write(path: Path, text: str) -> None:
    """Another program (another process, no lock of ours) appends to the file."""
    subprocess.run([sys.executable, "-c", "import sys; open(sys.argv[1], 'a').write(sys.argv[2])", str(path),
                    text], check=True)


@pytest.mark.parametrize("tool,args,mark", [
    *EDITS,
    ("rename_symbol", {"name_path": "make_id", "relative_path": BASE, "new_name": "make_key"}, "def make_key"),
])
@pytest.mark.parametrize("times", [1, 99])
async def test_an_outside_write_between_read_and_write_is_never_overwritten(pyproj_copy, tmp_path, monkeypatch,
                                                                            tool, args, mark, times):
    """The other program writes after the edit planned its new text and before the edit writes it (once, or
    before every try): the edit is planned again over their text, or refused; their text always stays."""
    server, _app, _service = build(pyproj_copy, tmp_path / "data", type_net_seconds=0.0)
    base = pyproj_copy / BASE
    check = syntax.check
    writes = []

    def check_then_race(changes, lang):
        verdict = check(changes, lang)
        if len(writes) < times:
            writes.append(f"# outside write {len(writes)}\n")
            _outside_write(base, OUTSIDE + writes[-1])
        return verdict

    monkeypatch.setattr(syntax, "check", check_then_race)
    r = await call(server, tool, args)
    text = base.read_text()
    assert writes, "the outside write happened inside the edit"
    for w in writes:
        assert OUTSIDE + w in text, "another program's write was overwritten"
    if r.is_error:
        _refused_clearly(r)
        assert mark not in text
        assert times > 1, "a single outside write is planned over, not refused"
    else:
        assert mark in text, "the edit answered success but is not in the file"
    compile(text, BASE, "exec")
