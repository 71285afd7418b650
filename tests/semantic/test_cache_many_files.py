"""The disk budget under several thousand files, with a real jedi server: a generated project whose symbol answers
add up to more than the answer cache may keep, indexed while lookups run beside the index (in its own process's
service and in a second one on the same data directory, as another agent's server would be): every lookup is
right while entries are evicted under it, what the semantic layer keeps on disk never passes 25 MB, and a fresh
server on the same data answers right from what is left."""

from __future__ import annotations

import hashlib
import random
import threading
import time
from pathlib import Path

import pytest
from ansf_mcp.semantic.cache import ANSWER_CACHE_BYTES, DISK_BUDGET_BYTES, dir_bytes
from ansf_mcp.semantic.service import MAX_SCAN_FILES

from tests.semantic.conftest import build

pytestmark = pytest.mark.slow

FILES = 3000  # the index takes the first MAX_SCAN_FILES (2 000); lookups reach the rest
PER_FOLDER = 100
METHODS = FUNCTIONS = 5
NAME_HEX = 8  # sha512 digests per name: long names that do not compress, so few symbols fill the cache
CALLERS_EVERY = 4  # one file in four calls the shared function


def _tag(*parts: object) -> str:
    return "".join(hashlib.sha512(".".join(map(str, (*parts, k))).encode()).hexdigest() for k in range(NAME_HEX))


def _rel(i: int) -> str:
    return f"pkg/d{i // PER_FOLDER}/m{i}.py"


def _expected(i: int) -> dict[str, list[str]]:
    """Top-level name paths of file i, each with its members' name paths (what the generator wrote)."""
    widget = f"Widget{i}"
    out = {widget: [f"{widget}/m{m}_{_tag(i, m)}" for m in range(METHODS)]}
    out.update({f"h{f}_{_tag('h', i, f)}": [] for f in range(FUNCTIONS)})
    return out


def _generate(root: Path) -> None:
    (root / "pkg").mkdir(parents=True)
    (root / "pkg/__init__.py").write_text("")
    (root / "pkg/common.py").write_text("def shared(x):\n    return x\n")
    for d in range((FILES + PER_FOLDER - 1) // PER_FOLDER):
        (root / f"pkg/d{d}").mkdir()
        (root / f"pkg/d{d}/__init__.py").write_text("")
    for i in range(FILES):
        lines = ["from pkg.common import shared", "", f"class Widget{i}:"]
        for m in range(METHODS):
            lines += [f"    def m{m}_{_tag(i, m)}(self, v):", f"        return v + {m}", ""]
        for f in range(FUNCTIONS):
            body = "shared(x)" if f == 0 and i % CALLERS_EVERY == 0 else "x"
            lines += [f"def h{f}_{_tag('h', i, f)}(x):", f"    return {body} * {f}", ""]
        (root / _rel(i)).write_text("\n".join(lines) + "\n")


def _names(overview) -> dict[str, list[str]]:
    (symbols,) = overview.files.values()
    return {s.name_path: [c.name_path for c in s.children or []] for s in symbols}


def _semantic_bytes(data: Path) -> int:
    return sum(dir_bytes(data / d) for d in ("semantic-cache", "lsp/jedi-cache", "symbol-table", "locks", "edits"))


def test_thousands_of_files_stay_within_the_disk_budget_and_answer_right(tmp_path):
    t0 = time.monotonic()
    proj, data = tmp_path / "proj", tmp_path / "data"
    _generate(proj)
    _server, app, indexer = build(proj, data)
    _server2, app2, other = build(proj, data)  # another server process's service on the same data directory
    done = threading.Event()
    wrong: list[str] = []
    lookups = {"indexer": 0, "other": 0}
    peak = [0]

    def look(service, name: str, seed: int) -> None:
        rnd = random.Random(seed)
        while not done.is_set():
            i = rnd.randrange(FILES)
            try:
                got = _names(service.symbols_overview(_rel(i), depth=1))
            except Exception as exc:  # a lookup broken by an eviction under it is what this test looks for
                wrong.append(f"{name} {_rel(i)}: {type(exc).__name__}: {exc}")
                continue
            if got != _expected(i):
                wrong.append(f"{name} {_rel(i)}: {sorted(got)[:2]}...")
            lookups[name] += 1
            peak[0] = max(peak[0], _semantic_bytes(data))

    readers = [threading.Thread(target=look, args=(indexer, "indexer", 1)),
               threading.Thread(target=look, args=(other, "other", 2))]
    for t in readers:
        t.start()
    try:
        state = indexer.index(lambda: 100_000)
    finally:
        done.set()
        for t in readers:
            t.join(timeout=60)
    assert state["state"] == "done" and state["files"] == 2000, state
    assert not wrong, wrong[:5]
    assert min(lookups.values()) > 0, lookups

    # references over every caller: jedi parses hundreds of files and pickles them under the data directory
    refs = indexer.find_references("shared", "pkg/common.py")
    truth = {(_rel(i), 1) for i in range(FILES)} | {(_rel(i), 5 + 3 * METHODS) for i in range(0, FILES, CALLERS_EVERY)}
    named = {(f.relative_path, r.line) for f in refs.files for r in f.references}
    assert named <= truth and refs.total == len(named) >= MAX_SCAN_FILES, (refs.total, sorted(named - truth)[:3])
    assert f"more than {MAX_SCAN_FILES} Python files" in (refs.note or ""), refs.note  # short, and says so

    stats = indexer.cache.stats()
    assert stats["evictions"] > 0, f"the answers never filled the cache, so its bound was not tested: {stats}"
    assert stats["bytes_on_disk"] <= ANSWER_CACHE_BYTES, stats
    used = _semantic_bytes(data)
    print(f"lookups {lookups}, cache {stats}, on disk {used} (peak {peak[0]}), "
          f"{time.monotonic() - t0:.1f} s")  # shown with -s or on failure
    assert max(used, peak[0]) <= DISK_BUDGET_BYTES, (used, peak[0])
    app.shutdown()
    app2.shutdown()

    # a fresh server on what is left: an early file (its answer evicted long ago) and the last ones are right
    _server3, app3, fresh = build(proj, data)
    try:
        for i in (0, 1, 1999, FILES - 1):
            assert _names(fresh.symbols_overview(_rel(i), depth=1)) == _expected(i), _rel(i)
        assert fresh.find_references("shared", "pkg/common.py").total == refs.total
        assert _semantic_bytes(data) <= DISK_BUDGET_BYTES
    finally:
        app3.shutdown()
    assert time.monotonic() - t0 < 300


def test_references_on_a_project_past_the_scan_limit_say_they_may_be_incomplete(tmp_path):
    """jedi parses, and the scope check reads, at most MAX_SCAN_FILES files: past it the references answer is
    short of the truth, and must say so rather than pass for complete."""
    proj = tmp_path / "proj"
    (proj / "pkg").mkdir(parents=True)
    (proj / "pkg/__init__.py").write_text("")
    (proj / "pkg/common.py").write_text("def shared(x):\n    return x\n")
    users = MAX_SCAN_FILES + 100
    for d in range((users + PER_FOLDER - 1) // PER_FOLDER):
        (proj / f"pkg/d{d}").mkdir()
        (proj / f"pkg/d{d}/__init__.py").write_text("")
    for i in range(users):
        (proj / _rel(i)).write_text("from pkg.common import shared\n\n\ndef f(x):\n    return shared(x)\n")
    _server, app, service = build(proj, tmp_path / "data")
    try:
        refs = service.find_references("shared", "pkg/common.py")
        every = {(f.relative_path, r.line) for f in refs.files for r in f.references}
        assert every <= {(_rel(i), line) for i in range(users) for line in (1, 5)}, "what it names is right"
        if refs.total < 2 * users:
            assert refs.note and f"more than {MAX_SCAN_FILES} Python files" in refs.note, (refs.total, refs.note)
    finally:
        app.shutdown()
