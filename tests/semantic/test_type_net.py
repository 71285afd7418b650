"""Edits with a type net: basedpyright's errors on the changed files before and with the new content (sent in
memory), an edit that adds type errors refused with nothing written (fixture: tests/fixtures/semantic/typeerrors,
a clean models.py and a seeded.py full of type errors)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import psutil
import pytest
from ansf_mcp.semantic import type_net
from ansf_mcp.semantic.editing import EditError, FileChange
from ansf_mcp.semantic.languages import LanguageUnavailable
from ansf_mcp.semantic.lsp import LspError, LspExited, LspTimeout
from mcp import Client, StdioServerParameters
from pydantic import ValidationError

from ansf_mcp.settings import Settings, invalid_setting
from tests.conftest import ansf_command, subprocess_env
from tests.semantic.conftest import FIXTURES, build
from tests.semantic.helpers import err, ok

pytestmark = pytest.mark.anyio
MODELS = "inventory/models.py"
SEEDED = "inventory/seeded.py"


def snapshot(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*.py"))}


@pytest.fixture(scope="module")
def typed(tmp_path_factory):
    """One server for the module (basedpyright's cold start is paid once); each test edits its own symbol."""
    root = tmp_path_factory.mktemp("typed") / "typeerrors"
    shutil.copytree(FIXTURES / "typeerrors", root)
    server, _app, service = build(root, tmp_path_factory.mktemp("typed-data"), type_net_seconds=120)
    yield server, root
    service.shutdown()


BAD_BODIES = {
    "replace_symbol_body": ("total", "def total(items: list[Item]) -> float:\n    return len(items) + 'x'\n"),
    "insert_before_symbol": ("Store", "def shout(item: Item) -> str:\n    return item.name.shout()\n"),
    "insert_after_symbol": ("Store", "def cheapest(store: Store) -> int:\n    return store.find('tea')\n"),
}


@pytest.mark.parametrize("tool", sorted(BAD_BODIES))
async def test_an_edit_that_adds_a_type_error_is_refused_and_nothing_is_written(typed, tool):
    server, root = typed
    before = snapshot(root)
    name, body = BAD_BODIES[tool]
    msg = await err(server, tool, {"name_path": name, "relative_path": MODELS, "body": body})
    assert "the edit would add 1 type error(s) (basedpyright), it at inventory/models.py:" in msg, msg
    assert msg.endswith("nothing was written (allow_type_errors=true writes it anyway)"), msg
    assert snapshot(root) == before


async def test_allow_type_errors_writes_it_and_says_so(typed):
    server, root = typed
    r = await ok(server, "insert_after_symbol", {
        "name_path": "total", "relative_path": MODELS, "allow_type_errors": True,
        "body": "def broken_total(items: list[Item]) -> str:\n    return total(items)\n"})
    assert r["types"].startswith("types checked (basedpyright, "), r
    assert "1 new type error(s) written as allowed, it at inventory/models.py:" in r["types"], r["types"]
    assert "def broken_total" in (root / MODELS).read_text()
    diags = await ok(server, "get_diagnostics", {"relative_path": MODELS})
    assert [d["code"] for d in diags["diagnostics"] if d["severity"] == "error"] == ["reportReturnType"]


async def test_a_clean_edit_and_an_edit_in_a_file_already_full_of_errors_pass(typed):
    server, root = typed
    r = await ok(server, "replace_symbol_body", {
        "name_path": "Item/value", "relative_path": MODELS,
        "body": "def value(self) -> float:\n    return round(self.price * self.quantity, 2)\n"})
    assert r["types"].endswith("no new type errors") and r["syntax"] == "syntax checked (Python's parser)", r
    # seeded.py has 15 type errors; replacing one with another of the same kind adds none
    r = await ok(server, "replace_symbol_body", {
        "name_path": "wrong_argument_count", "relative_path": SEEDED,
        "body": "def wrong_argument_count(items: list[Item]) -> float:\n    return total(items, 3)\n"})
    assert r["types"].endswith("no new type errors"), r
    assert "total(items, 3)" in (root / SEEDED).read_text()


async def test_a_signature_change_that_breaks_a_file_importing_it_is_refused(typed):
    server, root = typed
    before = snapshot(root)
    msg = await err(server, "replace_symbol_body", {
        "name_path": "total", "relative_path": MODELS,
        "body": "def total(items: list[Item], n: int) -> float:\n    return n * sum(i.value() for i in items)\n"})
    # report.py imports it (models.py's own broken_total breaks too when the test that writes it ran first)
    assert "inventory/report.py" in msg and 'Argument missing for parameter "n"' in msg, msg
    assert snapshot(root) == before
    # seeded.py imports it too: its `total(items, 2)` error goes away, which blocks nothing
    r = await ok(server, "replace_symbol_body", {
        "name_path": "total", "relative_path": MODELS,
        "body": "def total(items: list[Item], n: int = 1) -> float:\n    return n * sum(i.value() for i in items)\n"})
    assert r["types"].endswith("2 importing file(s) too): no new type errors"), r["types"]


async def test_a_refused_edit_leaves_the_checker_with_the_files_on_disk(typed):
    """The refused content was only ever in the checker's memory: afterwards the changed file and the files
    importing it are described as they are on disk, not as the refused edit would have made them."""
    server, root = typed
    before = snapshot(root)
    msg = await err(server, "replace_symbol_body", {
        "name_path": "total", "relative_path": MODELS,
        "body": "def total(items: list[Item], n: int) -> float:\n    return n * sum(i.value() for i in items)\n"})
    assert 'Argument missing for parameter "n"' in msg, msg
    assert snapshot(root) == before
    report = await ok(server, "get_diagnostics", {"relative_path": "inventory/report.py"})
    assert not [d for d in report["diagnostics"] if 'parameter "n"' in d["message"]], report
    models = await ok(server, "get_diagnostics", {"relative_path": MODELS})
    assert not [d for d in models["diagnostics"] if 'parameter "n"' in d["message"]], models


async def test_a_rename_compares_errors_about_the_old_name_as_errors_about_the_new(typed):
    server, root = typed
    # seeded.py's 'Cannot access attribute "colour" for class "Item"' becomes '... class "Article"'
    r = await ok(server, "rename_symbol", {"name_path": "Item", "relative_path": MODELS, "new_name": "Article"})
    assert r["types"].endswith("no new type errors"), r
    assert "item.colour" in (root / SEEDED).read_text() and "class Article" in (root / MODELS).read_text()


async def test_a_budget_of_0_starts_no_type_checker_and_says_so(tmp_path):
    from ansf_mcp.semantic.languages.python import TYPE_CHECKER_KEY

    root = tmp_path / "typeerrors"
    shutil.copytree(FIXTURES / "typeerrors", root)
    server, _app, service = build(root, tmp_path / "data", type_net_seconds=0)
    name, body = BAD_BODIES["replace_symbol_body"]
    r = await ok(server, "replace_symbol_body", {"name_path": name, "relative_path": MODELS, "body": body})
    assert TYPE_CHECKER_KEY not in service._servers
    # the module's other tests keep a checker running for their own project: only this project's counts
    ours = [p.pid for p in psutil.Process().children(recursive=True) if _runs_in(p, root)]
    assert not ours, "basedpyright was started for this project"
    assert r["types"] == "types not checked (the type net's budget is 0 s)", r
    assert "+ 'x'" in (root / MODELS).read_text()  # nothing checked, so nothing refused


def _runs_in(p: psutil.Process, root: Path) -> bool:
    try:
        return "pyright" in " ".join(p.cmdline()) and Path(p.cwd()).resolve() == root.resolve()
    except psutil.Error:
        return False


# ---- the net's own decisions, without a server --------------------------------------------------------
class FakeChecker:
    def __init__(self, before: list[dict] | None, after: list[dict] | None, fail: Exception | None = None):
        self.answers = [before, after]
        self.fail = fail
        self.texts: list[dict] = []

    def diagnostics_for(self, texts, wait, timeout, fresh=frozenset()):
        if self.fail:
            raise self.fail
        self.texts.append(texts)
        answer = self.answers.pop(0)
        return answer if isinstance(answer, dict) else {p: answer for p in texts}


def _error(message: str, line: int = 0, code: str = "reportCallIssue", severity: int = 1) -> dict:
    return {"message": message, "code": code, "severity": severity,
            "range": {"start": {"line": line, "character": 0}, "end": {"line": line, "character": 1}}}


CHANGE = [FileChange(Path("/p/a.py"), "a.py", b"x = 1\n", "x = 2\n", False)]


def test_the_net_sends_the_new_text_and_counts_only_new_errors():
    old = [_error("Expected 1 positional argument", 3)]
    fake = FakeChecker(old, [_error("Expected 1 positional argument", 9), _error("hint", 1, severity=4)])
    assert type_net.check(lambda: fake, CHANGE, "python").endswith("no new type errors")
    assert fake.texts == [{Path("/p/a.py"): None}, {Path("/p/a.py"): "x = 2\n"}]  # the file as it is, then in memory
    fake = FakeChecker(old, [*old, _error('"scale" is not defined', 4, "reportUndefinedVariable")])
    with pytest.raises(EditError, match=r'it at a.py:5: "scale" is not defined; nothing was written'):
        type_net.check(lambda: fake, CHANGE, "python")
    renamed = FakeChecker([_error('Cannot access attribute "x" for class "Old"')],
                          [_error('Cannot access attribute "x" for class "New"')])
    assert type_net.check(lambda: renamed, CHANGE, "python", renamed=("Old", "New")).endswith("no new type errors")


def test_types_not_checked_says_why():
    def unavailable():
        raise LanguageUnavailable("Python type checking", "type checking needs basedpyright")

    assert type_net.check(unavailable, CHANGE, "python") == "types not checked (type checking needs basedpyright)"
    assert type_net.check(unavailable, CHANGE, "go") == "types not checked (no type checker for go here)"
    slow = FakeChecker(None, None, fail=TimeoutError())
    assert type_net.check(lambda: slow, CHANGE, "python", budget_s=2) == \
        "types not checked (basedpyright: no answer within the budget of 2 s)"
    slow = FakeChecker(None, None, fail=LspTimeout("gave no diagnostics within 2 s"))
    assert type_net.check(lambda: slow, CHANGE, "python", budget_s=2) == \
        "types not checked (basedpyright: no answer within the budget of 2 s)"
    died = FakeChecker(None, None, fail=LspExited("Python language server (basedpyright) exited"))
    assert type_net.check(lambda: died, CHANGE, "python") == \
        "types not checked (basedpyright died before it answered; the next edit starts it again)"

    def never_started():
        raise AssertionError("a budget of 0 started the checker")

    assert type_net.check(never_started, CHANGE, "python", budget_s=0) == \
        "types not checked (the type net's budget is 0 s)"
    dead = FakeChecker(None, None, fail=LspError("the language server exited"))
    assert type_net.check(lambda: dead, CHANGE, "python") == \
        "types not checked (basedpyright: the language server exited)"
    silent = FakeChecker([], None)
    assert type_net.check(lambda: silent, CHANGE, "python", budget_s=3) == \
        "types not checked (basedpyright published nothing for a.py within 3 s)"
    many = CHANGE * (type_net.MAX_FILES + 1)
    assert type_net.check(unavailable, many, "python").startswith("types not checked (the edit changes 41 files")


@pytest.mark.slow
async def test_through_a_server_process_over_stdio(tmp_path):
    """The real transport: an `ansf serve` process refuses a type-breaking edit (nothing written), then renames a
    shadowed global precisely with the type net passing."""
    from mcp import Client, StdioServerParameters

    from tests.conftest import ansf_command, subprocess_env

    root = tmp_path / "typeerrors"
    shutil.copytree(FIXTURES / "typeerrors", root)
    cmd = ansf_command()
    params = StdioServerParameters(command=cmd[0], args=[*cmd[1:], "serve", "--project", str(root)],
                                   env=subprocess_env(tmp_path / "data"), cwd=str(root))
    before = snapshot(root)
    async with Client(params, mode="legacy") as client:
        # the checker started first, so a slow machine's cold start cannot push the net past its 12 s budget
        assert not (await client.call_tool("get_diagnostics", {"relative_path": MODELS})).is_error
        r = await client.call_tool("replace_symbol_body", {
            "name_path": "Store/find", "relative_path": MODELS,
            "body": "def find(self, name: str) -> Item | None:\n    return self.items.get(name)\n"})
        assert r.is_error and "type error(s) (basedpyright)" in r.content[0].text, r.content
        assert snapshot(root) == before
        r = await client.call_tool("rename_symbol", {"name_path": "total", "relative_path": MODELS,
                                                     "new_name": "grand_total"})
        assert not r.is_error, r.content
        assert r.structured_content["types"].endswith("no new type errors"), r.structured_content
    assert "return grand_total(items, 2)" in (root / SEEDED).read_text()


def test_an_importing_files_new_error_counts_only_where_it_uses_the_name(tmp_path):
    dep = tmp_path / "b.py"
    dep.write_text("from a import total\n\n\nclass C(Base):\n    def area(self):\n        return total([])\n")
    change = [FileChange(tmp_path / "a.py", "a.py", b"def total(x): ...\n", "def total(x, n): ...\n", False)]
    call = _error("Argument missing for parameter \"n\"", 5)
    override = _error('Method "area" overrides class "Base" in an incompatible manner', 4, "reportIncompatibleMethodOverride")
    a = tmp_path / "a.py"
    fake = FakeChecker({a: [], dep: []}, {a: [], dep: [override]})
    assert type_net.check(lambda: fake, change, "python", dependents=[(dep, "b.py")], name="total").endswith(
        "1 importing file(s) too): no new type errors")
    assert fake.texts[1] == {dep: None, a: "def total(x, n): ...\n"}
    fake = FakeChecker({a: [], dep: []}, {a: [], dep: [override, call]})
    with pytest.raises(EditError, match=r"it at b.py:6: Argument missing"):
        type_net.check(lambda: fake, change, "python", dependents=[(dep, "b.py")], name="total")


# ---- the ANSF_TYPE_NET_S setting, through `ansf serve` as a user starts it -------------------------------------
def _serve(root: Path, data_dir: Path, budget: str) -> tuple[list[str], dict[str, str]]:
    env = {**subprocess_env(data_dir), "ANSF_TYPE_NET_S": budget, "ANSF_SEMANTIC_INDEX": "0"}
    return [*ansf_command(), "serve", "--project", str(root)], env


async def test_ansf_type_net_s_0_turns_the_net_off_in_a_real_server(tmp_path):
    root = tmp_path / "typeerrors"
    shutil.copytree(FIXTURES / "typeerrors", root)
    cmd, env = _serve(root, tmp_path / "data", "0")
    name, body = BAD_BODIES["replace_symbol_body"]
    async with Client(StdioServerParameters(command=cmd[0], args=cmd[1:], env=env, cwd=str(root)),
                      mode="legacy") as client:
        r = await client.call_tool("replace_symbol_body", {"name_path": name, "relative_path": MODELS, "body": body})
        assert not r.is_error, r.content
        assert r.structured_content["types"] == "types not checked (the type net's budget is 0 s)", r.structured_content
        # looked for while the server still runs: a checker it started would be alive now
        ours = [p.pid for p in psutil.process_iter() if _runs_in(p, root)]
        assert not ours, "basedpyright was started for this project"
    assert "+ 'x'" in (root / MODELS).read_text()


def _refused_at_start(tmp_path, net: str, **more: str) -> str:
    """`ansf serve` with these settings exits with code 2 before serving: its stderr."""
    cmd, env = _serve(tmp_path, tmp_path / "data", net)
    env.update(more)
    try:
        done = subprocess.run(cmd, env=env, cwd=str(tmp_path), stdin=subprocess.DEVNULL, capture_output=True,
                              text=True, timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail(f"ansf serve started with ANSF_TYPE_NET_S={net} {more}")
    assert done.returncode == 2, (done.returncode, done.stderr)
    return done.stderr


def test_a_negative_ansf_type_net_s_is_refused_at_start_in_one_sentence(tmp_path):
    assert _refused_at_start(tmp_path, "-1") == ("ansf serve: invalid setting: ANSF_TYPE_NET_S='-1': Input should be "
                                                 "greater than or equal to 0\n")


def test_a_type_net_longer_than_the_call_deadline_is_refused_at_start_in_one_sentence(tmp_path):
    assert _refused_at_start(tmp_path, "30", ANSF_SEMANTIC_DEADLINE_S="25") == (
        "ansf serve: invalid setting: ANSF_TYPE_NET_S (30 s) is longer than 60% of ANSF_SEMANTIC_DEADLINE_S (25 s), "
        "the deadline of the whole call it runs in, which the edit itself needs the rest of: set it at most 15 s, or "
        "0 to turn the type net off (set: ANSF_SEMANTIC_DEADLINE_S='25', ANSF_TYPE_NET_S='30')\n")


@pytest.mark.parametrize("net,deadline,ok", [
    ("21", "20", None),
    # The whole deadline for the net left the edit none: it wrote its file after the caller had been told there
    # was no answer (and a retried insert landed twice).
    ("20", "20", None),
    ("12.5", "20", None),
    ("12", "20", 12),  # the defaults' own share, 60 %
    ("0", "5", 0),  # the net off: no budget to compare
    (None, "5", 3),  # the default 12 s net, never set, shrinks to 60 % of a shorter deadline set alone
    ("5", None, 5),
])
def test_the_type_net_must_fit_the_call_deadline(monkeypatch, net, deadline, ok):
    for var, value in (("ANSF_TYPE_NET_S", net), ("ANSF_SEMANTIC_DEADLINE_S", deadline)):
        if value is None:
            monkeypatch.delenv(var, raising=False)
        else:
            monkeypatch.setenv(var, value)
    if ok is not None:
        assert Settings.load().type_net_s == ok
        return
    with pytest.raises(ValidationError) as caught:
        Settings.load()
    msg = invalid_setting(caught.value)
    assert msg.startswith(f"ANSF_TYPE_NET_S ({net} s) is longer than 60% of ANSF_SEMANTIC_DEADLINE_S ({deadline} s)"), \
        msg


def test_the_setting_reaches_the_service_and_a_callers_budget_wins(tmp_path, monkeypatch):
    monkeypatch.setenv("ANSF_TYPE_NET_S", "7.5")
    root = tmp_path / "typeerrors"
    shutil.copytree(FIXTURES / "typeerrors", root)
    assert build(root, tmp_path / "data")[2].type_net_seconds == 7.5
    assert build(root, tmp_path / "data2", type_net_seconds=3)[2].type_net_seconds == 3
    monkeypatch.delenv("ANSF_TYPE_NET_S")
    assert Settings.load().type_net_s == type_net.TYPE_NET_SECONDS  # one default, whichever way it is built
