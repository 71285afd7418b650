"""References and renames that know Python's scopes: a parameter, local, lambda or comprehension variable, class
attribute or another module's import that shadows a module global is not the global; `__all__` entries and
string annotations are (fixture: tests/fixtures/semantic/shadowproj)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from ansf_mcp.semantic.scopes import ProjectScopes, analyse, module_name

from tests.semantic.conftest import FIXTURES, build
from tests.semantic.helpers import flat, ok

pytestmark = pytest.mark.anyio
PROJECT = FIXTURES / "shadowproj"


def _at(text: str, line: int, column: int, name: str) -> bool:
    return text.splitlines()[line][column:column + len(name)] == name


# ---- the analysis alone -------------------------------------------------------------------------------
def test_each_shadowing_binding_is_told_from_the_global():
    text = (PROJECT / "webapp/handlers.py").read_text()
    names = analyse(text, "request", "webapp.handlers")
    assert names is not None
    lines = text.splitlines()
    globals_at = sorted(o.line + 1 for o in names.occurrences.values() if o.module_level)
    # the import, global_path, View.path, and rebinding's `global` statement, assignment and return
    assert globals_at == [3, 7, 41, 45, 46, 47]
    local_lines = {o.line + 1 for o in names.occurrences.values() if not o.module_level}
    assert local_lines == {10, 11, 15, 16, 20, 25, 29, 32, 38}  # parameter, local, lambda, comprehension,
    # closure over a local, class attribute
    for o in names.occurrences.values():
        assert _at(text, o.line, o.column, "request"), (o, lines[o.line])
    assert names.imports == [("webapp.globals", "request")] and not names.defines


def test_all_entries_and_string_annotations_are_found_at_their_columns():
    text = (PROJECT / "webapp/config.py").read_text()
    names = analyse(text, "Config", "webapp.config")
    assert names is not None
    strings = sorted((o.line + 1, o.kind) for o in names.added())
    assert strings == [(12, "string annotation"), (12, "string annotation"), (16, "string annotation"),
                       (20, "string annotation"), (24, "string annotation")]
    for o in names.added():
        assert _at(text, o.line, o.column, "Config")
    init = analyse((PROJECT / "webapp/__init__.py").read_text(), "Config", "webapp", is_package=True)
    assert init is not None and [(o.line + 1, o.kind) for o in init.added()] == [(6, "__all__")]


def test_string_forms_and_relative_imports():
    text = ('from . import globals as g\nfrom .globals import request as r, request\n'
            '__all__ = ("request",)\n__all__ += ["request"]\n__all__.append("request")\n'
            'x: "dict[str, request]" = {}\n'
            'def f(a: "Optional[ request ]", b: "request" "s") -> r"request": ...\n'
            'class C:\n    def m(self, request): return [request for _ in (request,)]\n'
            'f(request=1)\nobj.request\n')
    names = analyse(text, "request", "pkg.mod")
    assert names is not None
    kinds = sorted((o.line + 1, o.kind, o.module_level) for o in names.occurrences.values())
    assert kinds == [
        (2, "import", True), (2, "import", True),  # `request as r` (a use of pkg.globals.request), `request`
        (3, "__all__", True), (4, "__all__", True), (5, "__all__", True),
        (6, "string annotation", True),
        (7, "string annotation", True), (7, "string annotation", True),  # not the concatenated "request" "s"
        (9, "code", False), (9, "code", False), (9, "parameter", False),
        (10, "keyword argument", False), (11, "attribute", False)]
    for o in names.occurrences.values():
        assert _at(text, o.line, o.column, "request"), o
    assert {o.source for o in names.occurrences.values() if o.kind == "import"} == {"pkg.globals"}
    assert analyse("def f(:\n", "x") is None


def test_module_names_under_import_roots():
    assert module_name("src/pkg/mod.py", [".", "src"]) == ("pkg.mod", False)
    assert module_name("pkg/__init__.py", [""]) == ("pkg", True)
    assert module_name("scripts/run-me.py", [""]) == (None, False)
    assert module_name("README.md", [""]) == (None, False)


def test_a_local_import_binds_the_global_it_imports():
    text = (PROJECT / "webapp/lazy.py").read_text()
    names = analyse(text, "request", "webapp.lazy")
    assert names is not None
    assert {(o.line + 1, o.kind, o.source) for o in names.occurrences.values()} == {
        (5, "import", "webapp.globals"), (7, "code", "webapp.globals"), (11, "import", "vendorlib"),
        (13, "code", "vendorlib")}


def test_another_modules_object_of_that_name_is_not_the_global():
    files = {p.relative_to(PROJECT).as_posix(): p.read_text() for p in PROJECT.rglob("*.py")}
    scopes = ProjectScopes("webapp/globals.py", "request", files.get, list(files), [""])
    assert scopes.users == {"webapp/globals.py", "webapp/handlers.py", "webapp/__init__.py"}
    assert scopes.classify("webapp/compat.py", 0, 22) == (False, "import")  # from vendorlib import request
    assert scopes.classify("webapp/compat.py", 4, 11) == (False, "code")
    assert scopes.classify("webapp/handlers.py", 6, 11) == (True, "code")
    assert scopes.classify("webapp/handlers.py", 0, 0) == (True, "code")  # not a name: the server's word stands


# ---- through the tools --------------------------------------------------------------------------------
@pytest.fixture
def shadow(tmp_path):
    root = tmp_path / "shadowproj"
    shutil.copytree(PROJECT, root)
    server, _app, service = build(root, tmp_path / "data")
    yield server, root
    service.shutdown()


GLOBAL_REQUEST = {("webapp/__init__.py", 4, "import"), ("webapp/__init__.py", 6, "__all__"),
                  ("webapp/globals.py", 10, "code"), ("webapp/handlers.py", 3, "import"),
                  ("webapp/handlers.py", 7, "code"), ("webapp/handlers.py", 41, "code"),
                  ("webapp/handlers.py", 45, "code"), ("webapp/handlers.py", 46, "code"),
                  ("webapp/handlers.py", 47, "code"), ("webapp/lazy.py", 5, "import"), ("webapp/lazy.py", 7, "code")}


async def test_references_of_a_shadowed_global_have_no_false_positives(shadow):
    server, _root = shadow
    r = await ok(server, "find_references", {"name_path": "request", "relative_path": "webapp/globals.py"})
    got = {(x["relative_path"], x["line"], x["kind"]) for x in flat(r)}
    assert got == GLOBAL_REQUEST
    assert "11 occurrence(s) of 'request' left out" in r["note"], r["note"]
    # mentions in the files that use it, listed apart: not references, and a rename leaves them
    assert [(m["relative_path"], m["line"], m["kind"]) for m in r["mentions"]] == [
        ("webapp/__init__.py", 1, "docstring"), ("webapp/handlers.py", 1, "docstring")]
    vendor = await ok(server, "find_references", {"name_path": "request", "relative_path": "vendorlib/__init__.py"})
    assert {(x["relative_path"], x["line"]) for x in flat(vendor)} == {
        ("webapp/compat.py", 1), ("webapp/compat.py", 5), ("webapp/lazy.py", 11), ("webapp/lazy.py", 13)}
    config = await ok(server, "find_references", {"name_path": "Config", "relative_path": "webapp/config.py"})
    kinds = sorted((x["relative_path"], x["line"], x["kind"]) for x in flat(config))
    assert [k for k in kinds if k[2] in ("__all__", "string annotation")] == [
        ("webapp/__init__.py", 6, "__all__"), ("webapp/config.py", 12, "string annotation"),
        ("webapp/config.py", 12, "string annotation"), ("webapp/config.py", 16, "string annotation"),
        ("webapp/config.py", 20, "string annotation"), ("webapp/config.py", 24, "string annotation")]
    assert config["total"] == 11 and "note" not in config
    assert [(m["relative_path"], m["line"], m["kind"]) for m in config["mentions"]] == [
        ("webapp/config.py", 25, "comment")]


def _own_tests(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"], cwd=root,
                          capture_output=True, text=True, timeout=120)


async def test_a_rename_leaves_no_stale_name_and_the_projects_tests_pass(shadow):
    server, root = shadow
    assert _own_tests(root).returncode == 0
    r = await ok(server, "rename_symbol", {"name_path": "request", "relative_path": "webapp/globals.py",
                                           "new_name": "current_request"})
    assert r["total_edits"] == 12 and "not renamed: 11 occurrence(s)" in r["note"], r
    r = await ok(server, "rename_symbol", {"name_path": "Config", "relative_path": "webapp/config.py",
                                           "new_name": "Settings"})
    assert "6 of them in strings" in r["note"], r["note"]
    assert [(m["line"], m["kind"]) for m in r["leftover_mentions"]] == [(25, "comment")]
    # nothing left that names the old globals: every remaining `request` is a local of its own
    for p in root.rglob("*.py"):
        rel = p.relative_to(root).as_posix()
        if rel.startswith("vendorlib") or rel == "webapp/compat.py":
            continue
        if rel == "webapp/lazy.py":  # the vendor's request stays, imported inside lazy_vendor
            assert (p.read_text().count("from vendorlib import request"), p.read_text().count("current_request")) \
                == (1, 2)
            continue
        module, package = module_name(rel, [""])
        for old in ("request", "Config"):
            names = analyse(p.read_text(), old, module, package)
            assert names is not None
            stale = [o for o in names.occurrences.values() if o.module_level and o.kind != "attribute"]
            assert stale == [], (rel, old, stale)
    handlers = (root / "webapp/handlers.py").read_text()
    assert "def with_parameter(request: Request) -> str:\n    return request.path" in handlers
    assert '__all__ = ["Settings", "load_config", "current_request"]' in (root / "webapp/__init__.py").read_text()
    assert 'def maybe_config(flag: bool) -> Optional["Settings"]:' in (root / "webapp/config.py").read_text()
    assert (root / "webapp/compat.py").read_text() == (PROJECT / "webapp/compat.py").read_text()
    result = _own_tests(root)
    assert result.returncode == 0, result.stdout[-2000:]


async def test_a_members_references_keep_jedis_answer_labelled(shadow):
    server, _root = shadow
    r = await ok(server, "find_references", {"name_path": "Config/merged", "relative_path": "webapp/config.py"})
    assert [(x["relative_path"], x["line"], x["kind"]) for x in flat(r)] == [
        ("tests/test_webapp.py", 26, "attribute")]
    assert "note" not in r


# ---- a class member: jedi names every `total` it cannot tell apart ---------------------------------------------
SHOP = {
    "shop/__init__.py": "",
    "shop/models.py": '''"""Models."""
TAX = 0.2


def total(items):
    return sum(i.price for i in items)


class Item:
    def __init__(self, price: float) -> None:
        self.price = price

    def total(self) -> float:
        return self.price * (1 + TAX)


class Cart:
    def __init__(self) -> None:
        self.items: list[Item] = []

    def total(self) -> float:
        return total(self.items)

    def doubled(self) -> float:
        return 2 * self.total()


class GiftCart(Cart):
    def total(self) -> float:
        return 0.0
''',
    "shop/report.py": '''from shop.models import Cart, total


def summary(cart: Cart) -> float:
    return cart.total() + total([])


def helper(total: int) -> int:
    return total + 1
''',
    "shop/cli.py": '''import shop.models
from shop.report import summary


def main() -> None:
    print(summary(shop.models.Cart()), shop.models.total([]))''',
}


@pytest.fixture
def shop(tmp_path):
    root = tmp_path / "shop"
    for rel, text in SHOP.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    server, _app, service = build(root, tmp_path / "data")
    yield server, root
    service.shutdown()


async def test_a_methods_references_and_rename_leave_other_objects_of_its_name_alone(shop):
    server, root = shop
    r = await ok(server, "find_references", {"name_path": "Cart/total", "relative_path": "shop/models.py"})
    assert [(x["relative_path"], x["line"], x["kind"]) for x in flat(r)] == [
        ("shop/models.py", 25, "attribute"), ("shop/models.py", 29, "code"), ("shop/report.py", 5, "attribute")]
    assert "left out" in r["note"] and "GiftCart" in r["note"], r  # the override is the same member
    before = {rel: (root / rel).read_text() for rel in SHOP}
    r = await ok(server, "rename_symbol", {"name_path": "Cart/total", "relative_path": "shop/models.py",
                                           "new_name": "grand_total"})
    assert r["total_edits"] == 4, r
    models = (root / "shop/models.py").read_text()
    assert models == before["shop/models.py"].replace(
        "    def total(self) -> float:\n        return total(self.items)",
        "    def grand_total(self) -> float:\n        return total(self.items)").replace(
        "self.total()", "self.grand_total()").replace(
        "    def total(self) -> float:\n        return 0.0", "    def grand_total(self) -> float:\n        return 0.0")
    assert (root / "shop/report.py").read_text() == before["shop/report.py"].replace("cart.total()",
                                                                                     "cart.grand_total()")
    assert (root / "shop/cli.py").read_text() == before["shop/cli.py"]  # no blank line added at the end either
    run = subprocess.run([sys.executable, "-c", "from shop.cli import main; main()"], cwd=root,
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0 and run.stdout.strip() == "0 0", run.stderr[-2000:]


def test_member_occurrences_tell_a_member_from_other_objects_of_its_name():
    from ansf_mcp.semantic.scopes import (
        ATTRIBUTE,
        MODULE_ATTRIBUTE,
        OTHER_DEFINITION,
        SELF_ATTRIBUTE,
        member_occurrences,
    )

    occ = member_occurrences(SHOP["shop/models.py"], "total", {("Cart",)})
    assert occ is not None
    assert occ[(4, 4)] == (OTHER_DEFINITION, False)  # the module function
    assert occ[(12, 8)] == (OTHER_DEFINITION, False)  # Item.total
    assert occ[(20, 8)] == ("code", True)  # Cart.total itself
    assert occ[(21, 15)] == ("code", False)  # the module function, called from inside the method
    assert occ[(24, 24)] == (ATTRIBUTE, True)
    family = member_occurrences(SHOP["shop/models.py"], "total", {("Cart",), ("GiftCart",)},
                                frozenset({("Cart",), ("GiftCart",)}), frozenset({("Item",)}))
    assert family is not None and family[(24, 24)] == (SELF_ATTRIBUTE, True)  # no language server needed
    cli = member_occurrences(SHOP["shop/cli.py"], "total", set())
    assert cli is not None and list(cli.values()) == [(MODULE_ATTRIBUTE, False)]
    report = member_occurrences(SHOP["shop/report.py"], "total", set())
    assert report is not None and sorted(report.values()) == [
        (ATTRIBUTE, True), ("code", False), ("code", False), ("import", False), ("parameter", False)]


async def test_uses_under_an_import_alias_are_references_a_rename_leaves_alone(tmp_path):
    root = tmp_path / "aliased"
    root.mkdir()
    (root / "models.py").write_text("class Item:\n    pass\n")
    (root / "cli.py").write_text("from models import Item as It\n\nmade = It()\n\n\ndef make():\n    return It()\n")
    server, _app, service = build(root, tmp_path / "data")
    try:
        r = await ok(server, "find_references", {"name_path": "Item", "relative_path": "models.py"})
        assert [(x["relative_path"], x["line"], x["kind"]) for x in flat(r)] == [
            ("cli.py", 1, "import"), ("cli.py", 3, "alias"), ("cli.py", 7, "alias")]
        await ok(server, "rename_symbol", {"name_path": "Item", "relative_path": "models.py", "new_name": "Thing"})
        assert (root / "cli.py").read_text() == (
            "from models import Thing as It\n\nmade = It()\n\n\ndef make():\n    return It()\n")
        assert (root / "models.py").read_text() == "class Thing:\n    pass\n"
    finally:
        service.shutdown()


async def test_the_member_check_stops_at_its_budget_and_says_so(shop, monkeypatch):
    """One member's references must not hold the language server from every other call: the checks of `obj.name`
    uses stop at a budget, and the note says what was left as jedi's answer."""
    from ansf_mcp.semantic import service as service_module

    monkeypatch.setattr(service_module, "MAX_MEMBER_CHECKS", 0)
    server, _root = shop
    r = await ok(server, "find_references", {"name_path": "Cart/total", "relative_path": "shop/models.py"})
    assert "only the first 0 `obj.total` uses were checked" in r["note"], r["note"]
    # unchecked, jedi's attribute uses stand: cart.total() in report.py is still there
    assert ("shop/report.py", 5, "attribute") in [(x["relative_path"], x["line"], x["kind"]) for x in flat(r)]


@pytest.mark.parametrize("name_path, relative_path", [
    ("request", "webapp/globals.py"),  # a module global: the scope check reads the project's files
    ("Config/merged", "webapp/config.py"),  # a class member: the family check reads them
    ("outer/inner", "webapp/handlers.py"),  # a function's local: no scope check
])
def test_one_references_call_walks_the_project_once(tmp_path, monkeypatch, name_path, relative_path):
    # The project's state (the cache key), the files the scope check reads and the note on a capped scan all
    # come from one walk: each more is another pass over every folder of a large project, per call.
    from ansf_mcp.semantic import paths
    from ansf_mcp.semantic import service as service_module

    root = tmp_path / "shadowproj"
    shutil.copytree(PROJECT, root)
    _server, _app, service = build(root, tmp_path / "data")
    walks: list[Path] = []
    walk = paths.walk_files

    def counted(root, start, *args, **kwargs):
        walks.append(start)
        return walk(root, start, *args, **kwargs)

    monkeypatch.setattr(paths, "walk_files", counted)
    monkeypatch.setattr(service_module, "walk_files", counted)
    assert service.reference_list(name_path, relative_path).refs
    assert len(walks) == 1, walks
