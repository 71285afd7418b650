"""Edit transactions: the journal rolls a crashed commit back, live owners are left alone, locks exclude across
threads; bounded pattern search (RE2, a time budget, cancellation)."""

from __future__ import annotations

import fcntl
import json
import multiprocessing
import os
import threading
import time
from pathlib import Path

import pytest
from ansf_mcp.semantic import inspection, journal
from ansf_mcp.semantic.editing import ChangedOnDisk, EditError, FileChange
from ansf_mcp.semantic.locks import FileLocks, LockTimeout

from tests.semantic.conftest import FIXTURES, build
from tests.semantic.helpers import err, ok

pytestmark = pytest.mark.anyio


def _project(tmp_path: Path, n: int) -> list[Path]:
    proj = tmp_path / "proj"
    proj.mkdir()
    files = []
    for i in range(n):
        p = proj / f"m{i}.py"
        p.write_text(f"value_{i} = {i}\n")
        files.append(p)
    return files


def _crash_after(files: list[Path], data: Path, k: int, other_device: bool = False) -> None:
    """In a child process: commit a change to every file, dying (os._exit) after the k-th rename (`other_device`:
    as if the data directory were on another file system: temporary files beside the targets)."""
    if other_device:
        journal._same_device = lambda _a, _b: False
    real = journal._replace_from
    count = {"n": 0}

    def dying(image, target, side_tmp, expected=None):
        real(image, target, side_tmp, expected)
        count["n"] += 1
        if count["n"] == k:
            os._exit(9)

    journal._replace_from = dying
    journal.commit([FileChange(p, p.name, p.read_bytes(), p.read_text() + "# new\n", False) for p in files], data)
    os._exit(0)


@pytest.mark.parametrize(("k", "other_device"), [(1, False), (3, False), (2, True)])
def test_a_crash_part_way_is_rolled_back_at_the_next_start(tmp_path, k, other_device):
    files = _project(tmp_path, 5)
    before = {p: p.read_bytes() for p in files}
    data = tmp_path / "data"
    proc = multiprocessing.get_context("fork").Process(target=_crash_after, args=(files, data, k, other_device))
    proc.start()
    proc.join(30)
    assert proc.exitcode == 9
    assert sum(p.read_bytes() != before[p] for p in files) == k  # part-way: k of 5 written
    assert journal.recover(data) == 1
    assert {p: p.read_bytes() for p in files} == before  # all old
    assert list((data / journal.JOURNAL).iterdir()) == []
    assert not [p for p in (tmp_path / "proj").iterdir() if p.suffix != ".py"]  # no temp files in the project
    assert journal.recover(data) == 0


def test_a_live_transaction_is_not_recovered(tmp_path):
    root = tmp_path / "data" / journal.JOURNAL
    (root / "123-live").mkdir(parents=True)
    (root / "123-live" / "manifest.json").write_text(json.dumps({"files": []}))
    fd = os.open(root / "123-live.lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)  # as its owner holds it
    try:
        assert journal.recover(tmp_path / "data") == 0 and (root / "123-live").exists()
    finally:
        os.close(fd)
    assert journal.recover(tmp_path / "data") == 1 and not (root / "123-live").exists()


def test_commit_refuses_a_file_that_changed(tmp_path):
    [p] = _project(tmp_path, 1)
    change = FileChange(p, p.name, p.read_bytes(), "value_0 = 1\n", False)
    p.write_text("value_0 = 'editor'\n")
    with pytest.raises(ChangedOnDisk, match=r"m0\.py changed on disk"):
        journal.commit([change], tmp_path / "data")
    assert p.read_text() == "value_0 = 'editor'\n"
    assert not (tmp_path / "data" / journal.JOURNAL).exists()  # refused before any journal was written


def test_locks_exclude_other_holders_and_time_out(tmp_path):
    [p] = _project(tmp_path, 1)
    locks = FileLocks(tmp_path / "locks", wait_s=0.2)
    entered = threading.Event()
    release = threading.Event()

    def holder() -> None:
        with locks.hold([p]):
            entered.set()
            release.wait(10)

    t = threading.Thread(target=holder)
    t.start()
    assert entered.wait(10)
    with pytest.raises(LockTimeout, match="nothing was changed"), locks.hold([p]):
        pass
    release.set()
    t.join(10)
    with locks.hold([p]):  # free again
        pass
    assert not list((tmp_path / "proj").glob("*.lock"))  # lock files live in the data directory only


def test_lock_files_go_with_their_locks_and_exclusion_still_holds(tmp_path):
    """A lock file is removed by the holder that releases it; a waiter that had opened the removed file locks
    the path's new one, so two holders never overlap however the releases and opens interleave."""
    paths = _project(tmp_path, 2)
    locks = FileLocks(tmp_path / "locks", wait_s=30)
    inside, overlaps, rounds = [0], [0], 200
    guard = threading.Lock()

    def worker() -> None:
        for _ in range(rounds):
            with locks.hold(paths):
                with guard:
                    inside[0] += 1
                    overlaps[0] += inside[0] > 1
                time.sleep(0)
                with guard:
                    inside[0] -= 1

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert overlaps[0] == 0
    assert not list((tmp_path / "locks").iterdir())


async def test_catastrophic_patterns_answer_at_once(tmp_path):
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "a.txt").write_text(("a" * 31 + "b\n") * 2000 + ("word " * 4000 + "\n") * 20)
    server, runtime, _service = build(proj, tmp_path / "data")
    try:
        for pattern in ("(a+)+$", r"(\w+\s?)+:"):
            started = time.monotonic()
            r = await ok(server, "search_for_pattern", {"pattern": pattern})
            assert r["matches"] == 0 and time.monotonic() - started < 5, pattern
        msg = await err(server, "search_for_pattern", {"pattern": r"(?<=a)b"})
        assert "RE2" in msg and "lookarounds" in msg
    finally:
        runtime.shutdown()


async def test_a_search_stops_at_its_budget_and_says_how_far_it_got(tmp_path, monkeypatch):
    server, runtime, service = build(FIXTURES / "pyproj", tmp_path / "data")
    try:
        monkeypatch.setattr(inspection, "SEARCH_SECONDS", 0.0)  # spent before the first file
        r = await ok(server, "search_for_pattern", {"pattern": "def "})
        assert r["matches"] == 0 and r["next_cursor"]
        assert r["notes"][0].startswith("stopped after") and "0 files scanned" in r["notes"][0]
        monkeypatch.setattr(inspection, "SEARCH_SECONDS", 10.0)
        stop = threading.Event()
        stop.set()  # the caller went away
        answer = service.search_for_pattern("def ", stop=stop)
        assert answer.matches == 0 and answer.notes[0].startswith("cancelled after")
    finally:
        runtime.shutdown()


@pytest.mark.parametrize("in_place", [True, False])
def test_a_save_at_the_moment_of_writing_is_kept(tmp_path, monkeypatch, in_place):
    """An editor saves after the last compare and before the rename: the swap brings its save out, so it is put
    back and the edit refused (in place: the same inode rewritten; or by its own rename)."""
    a, b = _project(tmp_path, 2)
    changes = [FileChange(p, p.name, p.read_bytes(), p.read_text() + "# ours\n", False) for p in (a, b)]
    real = journal._exchange
    saved = []

    def editor_first(x, y):
        if not saved and y == b:
            saved.append(True)
            if in_place:
                b.write_text("value_1 = 'editor'\n")
            else:
                (tmp_path / "elsewhere").write_text("value_1 = 'editor'\n")
                os.replace(tmp_path / "elsewhere", b)
        return real(x, y)

    monkeypatch.setattr(journal, "_exchange", editor_first)
    with pytest.raises(ChangedOnDisk, match="saved by another program"):
        journal.commit(changes, tmp_path / "data")
    assert b.read_text() == "value_1 = 'editor'\n"  # their save
    assert a.read_bytes() == changes[0].old  # ours rolled back: all or none
    assert sorted(p.name for p in (tmp_path / "proj").iterdir()) == ["m0.py", "m1.py"]
    assert list((tmp_path / "data" / journal.JOURNAL).iterdir()) == []  # a refused commit leaves no journal


def test_without_an_atomic_swap_the_commit_still_lands_whole(tmp_path, monkeypatch):
    files = _project(tmp_path, 3)
    monkeypatch.setattr(journal, "_exchange", lambda _a, _b: False)  # a file system without RENAME_EXCHANGE
    monkeypatch.setattr(journal, "_same_device", lambda _a, _b: False)  # and the data directory elsewhere
    journal.commit([FileChange(p, p.name, p.read_bytes(), p.read_text() + "# new\n", False) for p in files],
                   tmp_path / "data")
    assert all(p.read_text().endswith("# new\n") for p in files)
    assert sorted(p.name for p in (tmp_path / "proj").iterdir()) == ["m0.py", "m1.py", "m2.py"]
    assert list((tmp_path / "data" / journal.JOURNAL).iterdir()) == []


def test_a_crash_while_a_finished_commit_cleans_up_keeps_it(tmp_path):
    """Killed after every file was written, while the journal's images were being deleted: all new stays."""
    files = _project(tmp_path, 4)
    data = tmp_path / "data"

    def killed_in_cleanup() -> None:
        real = journal.shutil.rmtree

        def dying(path, ignore_errors=False):  # the manifest is already gone: a finished commit
            first = sorted(Path(path).iterdir())[0]  # one image gone, then the process dies
            first.unlink()
            os._exit(9)

        journal.shutil.rmtree = dying
        journal.commit([FileChange(p, p.name, p.read_bytes(), p.read_text() + "# new\n", False) for p in files],
                       data)
        journal.shutil.rmtree = real

    proc = multiprocessing.get_context("fork").Process(target=killed_in_cleanup)
    proc.start()
    proc.join(30)
    assert proc.exitcode == 9
    assert journal.recover(data) == 0  # nothing to undo: it had committed
    assert all(p.read_text().endswith("# new\n") for p in files)
    assert list((data / journal.JOURNAL).iterdir()) == []


def test_a_full_disk_under_the_journal_changes_nothing_and_leaves_nothing(tmp_path, monkeypatch):
    files = _project(tmp_path, 2)
    before = {p: p.read_bytes() for p in files}

    def full(_path, _data, _mode=0o600):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(journal, "_write_synced", full)
    with pytest.raises(EditError, match=r"journal could not be written.*nothing was changed"):
        journal.commit([FileChange(p, p.name, p.read_bytes(), "x = 1\n", False) for p in files], tmp_path / "data")
    assert {p: p.read_bytes() for p in files} == before
    assert list((tmp_path / "data" / journal.JOURNAL).iterdir()) == []


async def test_a_cancelled_search_stops_working(tmp_path, monkeypatch):
    """The client gives up on a long search: the cancellation reaches the search, which stops at its next file
    instead of running to its budget."""
    import anyio
    from mcp import Client

    proj = tmp_path / "proj"
    proj.mkdir()
    for i in range(400):
        (proj / f"f{i}.txt").write_text("needle in a haystack\n" * 2000)
    monkeypatch.setattr(inspection, "SEARCH_SECONDS", 120.0)
    server, runtime, service = build(proj, tmp_path / "data")
    ended = threading.Event()
    answers = []
    real = type(service).search_for_pattern

    def watched(self, *args, **kwargs):
        args = (*args[:8], 10**9)  # page_chars: one page for everything, only the budget or a cancellation stops it
        try:
            answers.append(real(self, *args, **kwargs))
            return answers[-1]
        finally:
            ended.set()

    monkeypatch.setattr(type(service), "search_for_pattern", watched)
    try:
        async with Client(server) as client:
            with anyio.move_on_after(0.5):
                await client.call_tool("search_for_pattern", {"pattern": "needle"})
            started = time.monotonic()
            assert await anyio.to_thread.run_sync(ended.wait, 30)
        assert time.monotonic() - started < 5
        assert answers[0].notes[0].startswith("cancelled after"), answers[0].notes
    finally:
        runtime.shutdown()
