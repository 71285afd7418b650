"""The symbol table: find_symbol over a folder from recorded trees (same answers as matching every tree), edits
seen at once, the table persisted across a restart and healed when damaged; and the index's gate that lets a
caller's query go first."""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

import pytest
from ansf_mcp.semantic import symbols as sym
from ansf_mcp.semantic.host import QueryGate, SemanticHost, checker_refusal, last_name
from ansf_mcp.semantic.languages import LANGUAGE_EXTENSIONS, LanguageUnavailable
from ansf_mcp.semantic.paths import walk_files
from ansf_mcp.semantic.service import INDEX_NICE, _hinted_first
from ansf_mcp.semantic.symbol_table import SymbolTable

from tests.semantic.conftest import build
from tests.semantic.helpers import ok

pytestmark = pytest.mark.anyio
EXTS = frozenset().union(*LANGUAGE_EXTENSIONS.values())


def _requests(service) -> int:
    return sum(s["requests"] for s in service.status()["servers"])


def _brute_force(service, name_path: str, substring: bool) -> list[tuple[str, str, int]]:
    """Every tree of the project matched, as find_symbol did before the table (the oracle)."""
    out = []
    for path, rel, lang, err in service._scan(service.root):
        if err:
            continue
        for loc in sym.find(service.document_symbols(path, rel, lang), name_path, substring):
            out.append((rel, loc.name_path, loc.node["sel"][0] + 1))
    return out


def test_the_table_walks_as_walk_files_does(tmp_path):
    root = tmp_path / "proj"
    for rel in ("a.py", "b/c.py", "b/d/e.py", "b/z.ts", "node_modules/x.py", ".hidden/y.py", "build/q.py",
                "pkg.egg-info/w.py", "m/n.go", "m/readme.txt", "A/upper.py"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text("x = 1\n")
    (root / "link.py").symlink_to(root / "b" / "c.py")
    (root / "linkdir").symlink_to(root / "b", target_is_directory=True)
    (tmp_path / "outside.py").write_text("y = 2\n")
    (root / "out.py").symlink_to(tmp_path / "outside.py")
    table = SymbolTable(tmp_path / "table", root)
    expected = [str(p) for p in walk_files(root, root.resolve(), EXTS)]
    assert [str(p) for p, _link in table.walk(root.resolve(), EXTS)] == expected
    assert [str(p) for p, link in table.walk(root.resolve(), EXTS) if link] == [str(root / "link.py")]
    # a file added, one removed: the folder's listing is read again (its mtime changed, or is too recent to trust)
    (root / "b" / "new.py").write_text("z = 3\n")
    (root / "a.py").unlink()
    expected = [str(p) for p in walk_files(root, root.resolve(), EXTS)]
    assert [str(p) for p, _link in table.walk(root.resolve(), EXTS)] == expected
    assert str(root / "b" / "new.py") in expected and str(root / "a.py") not in expected


async def test_find_symbol_answers_as_matching_every_tree_and_asks_nothing_warm(pyproj_copy, tmp_path):
    server, app, service = build(pyproj_copy, tmp_path / "data")
    try:
        queries = [("area", False), ("/Shape/area", False), ("Shape/area", False), ("convert[1]", False),
                   ("are", True), ("SCALE", True), ("Unknown", True), ("nothing_like_this", False)]
        for name_path, substring in queries:
            r = await ok(server, "find_symbol", {"name_path": name_path, "substring": substring})
            got = [(m["relative_path"], m["name_path"], m["line"]) for m in r["matches"]]
            assert got == _brute_force(service, name_path, substring), name_path
            assert r["total"] == len(got)
        requests, hits = _requests(service), service.cache.stats()["hits"]
        r = await ok(server, "find_symbol", {"name_path": "area"})
        assert r["total"] > 1
        # warm: every tree came from the table, none from the language server or the answer cache
        assert (_requests(service), service.cache.stats()["hits"]) == (requests, hits)
    finally:
        app.shutdown()


async def test_symlinked_files_and_unserved_languages_as_before(pyproj_copy, tmp_path):
    """A symlink to a project file is named by its target, as the walk always did; a language without a server
    is one note, not an error."""
    (pyproj_copy / "src" / "alias.py").symlink_to(pyproj_copy / "src" / "geo" / "rect.py")
    (pyproj_copy / "src" / "main.go").write_text("package main\n\nfunc Rect() {}\n")
    (pyproj_copy / "src" / "lib.rs").write_text("pub struct Rect;\n")
    (pyproj_copy / "src" / "more.rs").write_text("pub struct Rect;\n")
    server, app, service = build(pyproj_copy, tmp_path / "data", spec_overrides={})
    try:
        service._unavailable["go"] = LanguageUnavailable("Go", "gopls is not installed here")
        r = await ok(server, "find_symbol", {"name_path": "Rect"})
        assert [(m["relative_path"], m["line"]) for m in r["matches"]] == [
            (rel, line) for rel, _np, line in _brute_force(service, "Rect", False)]
        assert [m["relative_path"] for m in r["matches"]].count("src/geo/rect.py") == 2  # the link and the file
        assert sorted(r["notes"]) == ["Go files skipped: gopls is not installed here",
                                      "Rust files skipped (lib.rs and any others): rust-analyzer is not obtainable from a "
                              "package registry reachable here; not supported yet"]
        overview = await ok(server, "symbols_overview", {"relative_path": "src"})
        assert any(n.startswith("Rust files skipped") for n in overview["notes"]), overview.get("notes")
    finally:
        app.shutdown()


async def test_a_partial_index_makes_answers_slower_never_shorter(pyproj_copy, tmp_path):
    """The index stopped after 3 files (the phase's budget): find_symbol and find_references fetch the trees
    they still need and answer whole."""
    server, app, service = build(pyproj_copy, tmp_path / "data")
    try:
        state = service.index(lambda: 3)
        assert (state["state"], state["files"], len(service.symbols)) == ("stopped", 3, 3)
        r = await ok(server, "find_symbol", {"name_path": "area"})
        assert [(m["relative_path"], m["name_path"], m["line"]) for m in r["matches"]] == _brute_force(
            service, "area", False)
        assert len(service.symbols) == 14  # every file's tree, fetched by the query itself
        refs = await ok(server, "find_references", {"name_path": "scale", "relative_path": "src/geo/units.py"})
        assert refs["total"] == 15
    finally:
        app.shutdown()


async def test_an_edited_file_is_seen_at_once(pyproj_copy, tmp_path):
    server, app, _service = build(pyproj_copy, tmp_path / "data")
    try:
        assert (await ok(server, "find_symbol", {"name_path": "brand_new"}))["total"] == 0
        units = pyproj_copy / "src" / "geo" / "units.py"
        units.write_text(units.read_text() + "\n\ndef brand_new():\n    return 1\n")
        r = await ok(server, "find_symbol", {"name_path": "brand_new"})
        assert [(m["relative_path"], m["line"]) for m in r["matches"]] == [
            ("src/geo/units.py", len(units.read_text().splitlines()) - 1)]
        # the same size and, within the clock's granularity, the same mtime: the content hash decides
        text = units.read_text()
        units.write_text(text.replace("def brand_new", "def brand_old"))
        assert (await ok(server, "find_symbol", {"name_path": "brand_new"}))["total"] == 0
        assert (await ok(server, "find_symbol", {"name_path": "brand_old"}))["total"] == 1
        # a new file in a folder, and a deleted one
        (pyproj_copy / "src" / "geo" / "fresh.py").write_text("class FreshThing:\n    pass\n")
        r = await ok(server, "find_symbol", {"name_path": "FreshThing"})
        assert [m["relative_path"] for m in r["matches"]] == ["src/geo/fresh.py"]
        (pyproj_copy / "src" / "geo" / "fresh.py").unlink()
        assert (await ok(server, "find_symbol", {"name_path": "FreshThing"}))["total"] == 0
    finally:
        app.shutdown()


async def test_an_edit_through_the_tools_is_seen_at_once(pyproj_copy, tmp_path):
    server, app, _service = build(pyproj_copy, tmp_path / "data")
    try:
        assert (await ok(server, "find_symbol", {"name_path": "Rect/area"}))["total"] == 1
        await ok(server, "rename_symbol", {"name_path": "Rect/area", "relative_path": "src/geo/rect.py",
                                           "new_name": "surface"})
        assert (await ok(server, "find_symbol", {"name_path": "Rect/area"}))["total"] == 0
        assert (await ok(server, "find_symbol", {"name_path": "Rect/surface"}))["total"] == 1
    finally:
        app.shutdown()


async def test_the_table_outlives_a_restart_and_heals(pyproj_copy, tmp_path, caplog):
    data = tmp_path / "data"
    server, app, service = build(pyproj_copy, data)
    try:
        first = await ok(server, "find_symbol", {"name_path": "area"})
        db = service.symbols.path
    finally:
        app.shutdown()
    assert db.is_file() and db.parent == data / "symbol-table"
    server, app, service = build(pyproj_copy, data, cache_dir=tmp_path / "empty-cache")
    try:
        assert await ok(server, "find_symbol", {"name_path": "area"}) == first
        assert _requests(service) == 0  # no language server asked: the trees were on disk
        assert not any(s["alive"] for s in service.status()["servers"])
    finally:
        app.shutdown()
    for damage in (b"", db.read_bytes()[: db.stat().st_size // 3]):
        db.write_bytes(damage)
        for side in db.parent.glob(db.name + "-*"):
            side.unlink()
        caplog.set_level(logging.WARNING, logger="ansf_mcp.semantic.symbol_table")
        server, app, service = build(pyproj_copy, data)
        try:
            assert await ok(server, "find_symbol", {"name_path": "area"}) == first
            assert service.symbols.stats()["rebuilt_after_damage"] == 1
        finally:
            app.shutdown()
        assert any("deleted and rebuilt" in r.getMessage() for r in caplog.records)
        caplog.clear()


def test_past_its_budget_the_table_keeps_trees_in_memory_only(tmp_path):
    src = tmp_path / "a.py"
    src.write_text("x = 1\n")
    table = SymbolTable(tmp_path / "table", tmp_path, max_bytes=120)
    tree = [{"name": f"name_{i}", "kind": "variable", "range": [i, 0, i, 5], "sel": [i, 0], "children": []}
            for i in range(40)]
    table.put("a.py", "python", "fp", os.stat(src), "d1", tree)
    assert table.get("a.py", src, "fp", lambda p: "d1").tree == tree  # served from memory
    assert table.stats()["stored_bytes"] == 0
    assert table.get("a.py", src, "another server", lambda p: "d1") is None  # another server's tree never serves
    table.close()
    assert len(SymbolTable(tmp_path / "table", tmp_path)) == 0  # nothing of it was written


def test_the_table_on_disk_stays_within_its_share(tmp_path):
    """Trees past the payload limit stay in memory; SQLite's file and WAL stay within the table's bytes;
    replacing a file's tree does not count twice."""
    import random

    from ansf_mcp.semantic.cache import dir_bytes

    rng = random.Random(7)
    src = tmp_path / "a.py"
    src.write_text("x = 1\n")
    table = SymbolTable(tmp_path / "table", tmp_path, max_bytes=500_000)
    for i in range(400):
        tree = [{"name": "".join(rng.choices("abcdefghijklmnopqrstuvwxyz", k=24)), "kind": "function",
                 "range": [j, 0, j, 9], "sel": [j, 4], "children": []} for j in range(60)]
        table.put(f"m{i % 300}.py", "python", "fp", os.stat(src), f"d{i}", tree)
    stats = table.stats()
    assert 0 < stats["stored_bytes"] <= table.payload_limit
    assert dir_bytes(tmp_path / "table") <= 500_000
    assert stats["files"] == 300  # every tree is served, stored or not
    table.close()
    reopened = SymbolTable(tmp_path / "table", tmp_path, max_bytes=500_000)
    assert 0 < len(reopened) < 300 and reopened.stats()["stored_bytes"] == stats["stored_bytes"]


def test_may_hold_is_a_necessary_condition_of_a_match(tmp_path):
    src = tmp_path / "m.go"
    src.write_text("package m\n")
    tree = [{"name": "(*Recv).Close", "kind": "method", "range": [0, 0, 1, 0], "sel": [0, 0], "children": []},
            {"name": "Outer", "kind": "class", "range": [2, 0, 5, 0], "sel": [2, 0], "children": [
                {"name": "inner_Thing", "kind": "method", "range": [3, 0, 4, 0], "sel": [3, 0], "children": []}]}]
    entry = SymbolTable(tmp_path / "t", tmp_path).put("m.go", "go", "fp", os.stat(src), "d", tree)
    for name, substring in (("Close", False), ("Outer", False), ("inner_Thing", False), ("thing", True),
                            ("OUT", True), ("Inner", False), ("Recv", False), ("zzz", True)):
        assert entry.may_hold(name, substring) == bool(sym.find(tree, name, substring)), name


def test_the_gate_holds_the_index_while_a_query_runs(tmp_path):
    """The index waits at the gate before each file while a caller's call is in flight, and goes on after."""
    root = tmp_path / "proj"
    (root / "pkg").mkdir(parents=True)
    for i in range(3):
        (root / "pkg" / f"m{i}.py").write_text(f"def f{i}():\n    return {i}\n")
    host = SemanticHost(root, tmp_path / "data", separate_index_server=False)  # the index shares the server
    host.gate = gate = QueryGate(quiet_s=0.0)
    service = host.service()
    waiting = threading.Event()
    real_wait = gate.wait_idle

    def pause() -> None:
        if gate.active:
            waiting.set()
        real_wait(host._stop)

    try:
        with gate.query():  # a caller's call is in flight
            t = threading.Thread(target=service.index, args=(lambda: 2_000,), kwargs={"pause": pause}, daemon=True)
            t.start()
            assert waiting.wait(30)
            assert service.indexing["files"] == 0 and _requests(service) == 0  # held before its first file
        t.join(120)
        assert (service.indexing["state"], service.indexing["files"]) == ("done", 3)
        assert gate.waits == 1
        assert host.status()["index"]["waits_for_queries"] == 1
    finally:
        host.shutdown()


def test_beside_a_query_only_its_own_files_are_indexed(tmp_path):
    """Python, with the index's own server: while a caller's call runs, the files its hint named are indexed and
    the rest waits at the gate until the call ends."""
    root = tmp_path / "proj"
    (root / "pkg").mkdir(parents=True)
    for i in range(5):
        body = "needle = 1\n" if i in (1, 3) else f"x{i} = 1\n"
        (root / "pkg" / f"m{i}.py").write_text(body)
    host = SemanticHost(root, tmp_path / "data")
    host.gate = gate = QueryGate(quiet_s=0.0)
    service = host.service()
    waiting = threading.Event()
    seen_at_wait: list[int] = []

    def pause() -> None:
        if gate.active and not waiting.is_set():
            seen_at_wait.append(len(service.symbols))
            waiting.set()
        gate.wait_idle(host._stop)

    try:
        with gate.query():
            service.hint_index("needle")
            t = threading.Thread(target=service.index, args=(lambda: 2_000,), kwargs={"pause": pause}, daemon=True)
            t.start()
            assert waiting.wait(60)
            assert seen_at_wait == [2] and service.indexing["hinted"] == 2  # m1 and m3, beside the query
            assert service.indexing["files"] == 2
        t.join(120)
        assert (service.indexing["state"], service.indexing["files"]) == ("done", 5)
    finally:
        host.shutdown()


def test_a_long_wait_lets_the_index_server_go_and_the_index_resumes(tmp_path):
    """Calls that hold the index past the long wait stop its own language server (memory); it starts again when
    the index resumes, and the index completes."""
    root = tmp_path / "proj"
    (root / "pkg").mkdir(parents=True)
    for i in range(3):
        (root / "pkg" / f"m{i}.py").write_text(f"x{i} = 1\n")
    host = SemanticHost(root, tmp_path / "data")
    host.gate = gate = QueryGate(quiet_s=0.0)
    service = host.service()
    released = threading.Event()
    first = service.index_server("python")
    service.symbol_entry(root / "pkg" / "m0.py", "pkg/m0.py", "python", via=first)
    assert first.alive()

    def let_go() -> None:
        service.stop_index_servers("held too long")
        released.set()

    try:
        with gate.query():
            t = threading.Thread(target=service.index, args=(lambda: 2_000,), daemon=True,
                                 kwargs={"pause": lambda: gate.wait_idle(host._stop, on_long_wait=let_go,
                                                                         long_s=0.0)})
            t.start()
            assert released.wait(60)
            assert not first.alive() and service._index_servers == {}
        t.join(120)
        assert (service.indexing["state"], service.indexing["files"]) == ("done", 3)
        assert service.server("python").requests == 0  # the query's server was never asked
    finally:
        host.shutdown()


async def test_a_call_holds_the_gate_on_its_worker(tmp_path):
    root = tmp_path / "proj"
    root.mkdir()
    host = SemanticHost(root, tmp_path / "data")
    try:
        seen = await host.run("probe", lambda s: host.gate.active)
        assert seen == 1 and host.gate.active == 0
    finally:
        host.shutdown()


async def test_the_index_has_its_own_server_at_a_lower_priority(pyproj_copy, tmp_path):
    """Python's index asks a second jedi of the same spec (the same trees), reniced, stopped when it ends; the
    files a query names are indexed first."""
    host = SemanticHost(pyproj_copy, tmp_path / "data")
    reference = SemanticHost(pyproj_copy, tmp_path / "data2", separate_index_server=False)
    try:
        service = host.service()
        srv = service.index_server("python")
        assert srv is not None and srv is not service.server("python")
        rel = "src/geo/rect.py"
        tree = service.symbol_entry(pyproj_copy / rel, rel, "python", via=srv).tree
        assert tree == reference.service().document_symbols(pyproj_copy / rel, rel, "python")
        assert os.getpriority(os.PRIO_PROCESS, srv.pid) >= INDEX_NICE
        roles = [s.get("role", "") for s in service.status()["servers"]]
        assert any(r.startswith("index") for r in roles)
        assert service.server("python").requests == 0  # the query's server was not asked
        service.hint_index("scale")
        state = service.index(lambda: 2_000)
        mentioning = [p for p in (pyproj_copy / "src").rglob("*.py") if b"scale" in p.read_bytes()]
        assert (state["state"], state["hinted"]) == ("done", len(mentioning)) and mentioning
        assert service._index_servers == {} and not srv.alive()  # stopped when the index ended
        assert service.server("python").requests == 0
        requests = 0
        for p in sorted((pyproj_copy / "src").rglob("*.py")):
            r = p.relative_to(pyproj_copy).as_posix()
            service.document_symbols(p, r, "python")  # every tree is in the table now
        assert service.server("python").requests == requests
    finally:
        host.shutdown()
        reference.shutdown()


def test_memory_pressure_stops_the_index_server_and_the_index_goes_on_gated(tmp_path):
    root = tmp_path / "proj"
    (root / "pkg").mkdir(parents=True)
    for i in range(2):
        (root / "pkg" / f"m{i}.py").write_text(f"def f{i}():\n    return {i}\n")
    host = SemanticHost(root, tmp_path / "data")
    try:
        service = host.service()
        srv = service.index_server("python")
        service.symbol_entry(root / "pkg" / "m0.py", "pkg/m0.py", "python", via=srv)
        assert srv.alive()
        host.trim()
        assert not srv.alive() and service.index_server("python") is None
        paused = []
        state = service.index(lambda: 2_000, pause=lambda: paused.append(1))
        assert (state["state"], state["files"], len(paused)) == ("done", 2, 2)  # gated, in the query's server
        assert service.server("python").requests == 1  # m0's tree was in the table already
    finally:
        host.shutdown()


def test_hinted_files_go_first_in_order(tmp_path):
    files = []
    for i, text in enumerate(["a", "needle", "b", "the needle", "c"]):
        files.append(tmp_path / f"f{i}.py")
        files[-1].write_text(text)
    remaining = list(reversed(files))  # popped from the end
    assert _hinted_first(remaining, "needle") == 2
    assert [remaining.pop().name for _ in range(5)] == ["f3.py", "f1.py", "f0.py", "f2.py", "f4.py"]
    assert _hinted_first(remaining, None) == 0
    assert last_name("Shape/area[1]") == "area" and last_name("/top/") == "top"


def test_no_type_checker_in_the_critical_phase():
    assert checker_refusal("1 critical") == "no type checker is started while memory is critical (operating phase 1)"
    assert checker_refusal("2 enhanced") is None and checker_refusal(None) is None


async def test_critical_phase_stops_the_checker_and_diagnostics_say_so(pyproj_copy, tmp_path):
    """basedpyright runs in the enhanced phase; when the phase turns critical the next diagnostics call stops it
    and answers from jedi's syntax check, saying why in one sentence; its memory counted while it ran."""
    phase = ["2 enhanced"]
    host = SemanticHost(pyproj_copy, tmp_path / "data", phase=lambda: phase[0])
    try:
        d = await host.get_diagnostics("src/geo/units.py")
        assert {x.checker for x in d.diagnostics} <= {"basedpyright"} and d.note is None
        status = host.status()
        checker = next(s for s in status["servers"] if s["server"] == "basedpyright")
        assert checker["alive"] and status["servers_rss_bytes"] >= (checker["rss_bytes"] or 0) > 0
        phase[0] = "1 critical"
        d = await host.get_diagnostics("src/geo/units.py")
        assert d.note == ("syntax errors only: no type checker is started while memory is critical (operating "
                          "phase 1)")
        assert all(x.checker == "jedi-language-server (syntax only)" for x in d.diagnostics)
        assert not any(s["server"] == "basedpyright" for s in host.status()["servers"])
    finally:
        host.shutdown()


def test_status_names_the_table(tmp_path):
    root = tmp_path / "proj"
    root.mkdir()
    host = SemanticHost(root, tmp_path / "data")
    try:
        status = host.service().status()
        assert status["symbol_table"]["files"] == 0
        assert Path(status["symbol_table"]["path"]).parent == (tmp_path / "data" / "symbol-table").resolve()
    finally:
        host.shutdown()


async def test_new_content_under_an_old_modification_time_is_seen(pyproj_copy, tmp_path):
    # `cp -p`, `rsync -t` and `tar x` write new content and put the old modification time back
    server, app, _service = build(pyproj_copy, tmp_path / "data")
    base = pyproj_copy / "src/geo/base.py"
    try:
        assert (await ok(server, "find_symbol", {"name_path": "make_id"}))["total"] == 1
        st = base.stat()
        base.write_text(base.read_text().replace("def make_id(", "def make_ix("))
        os.utime(base, ns=(st.st_atime_ns, st.st_mtime_ns))
        assert base.stat().st_size == st.st_size and base.stat().st_mtime_ns == st.st_mtime_ns
        assert (await ok(server, "find_symbol", {"name_path": "make_ix"}))["total"] == 1
        assert (await ok(server, "find_symbol", {"name_path": "make_id"}))["total"] == 0
        overview = await ok(server, "symbols_overview", {"relative_path": "src/geo/base.py"})
        assert "make_ix" in str(overview) and "make_id" not in str(overview)
    finally:
        app.shutdown()
