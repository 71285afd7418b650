"""A real language server killed (SIGKILL) while one of our requests is in flight: the call ends soon, with its
answer (restarted and retried) or one clear sentence; the next call works on a fresh server; an edit leaves
every file wholly old or wholly new."""

from __future__ import annotations

import inspect
import os
import signal
import time
from pathlib import Path

import psutil
import pytest
from ansf_mcp.semantic import lsp, type_net
from ansf_mcp.semantic.service import SemanticService

from tests.semantic.conftest import build
from tests.semantic.helpers import call, ok

pytestmark = pytest.mark.anyio

# A killed server is noticed when its stdout closes; a restart of jedi takes about a second. Far below the
# request timeout the tests set, so a call that only ends by timing out fails the bound.
BOUND_S = 12.0
REQUEST_TIMEOUT_S = 25.0


class KillOnSend:
    """SIGKILLs the language server once a request of `method` was written to it and before it could answer (so
    the request is in flight), `times` times."""

    def __init__(self, monkeypatch, method: str, times: int = 1, server: str = "") -> None:
        self.method, self.left, self.killed, self.group = method, times, [], []
        self.at: float | None = None  # when the last kill was sent
        original = lsp._Handler._send_payload

        async def send(handler, payload):
            if payload.get("method") != self.method or self.left <= 0 \
                    or server not in " ".join(handler.process_launch_info.cmd):
                return await original(handler, payload)
            pid = self._stop(handler)
            try:
                await original(handler, payload)
            finally:
                os.kill(pid, signal.SIGKILL)
                self.at = time.monotonic()

        original_sync = lsp._Handler._send_payload_sync  # notifications (didChange) go this way

        def send_sync(handler, payload):
            if payload.get("method") != self.method or self.left <= 0 \
                    or server not in " ".join(handler.process_launch_info.cmd):
                return original_sync(handler, payload)
            pid = self._stop(handler)
            try:
                original_sync(handler, payload)
            finally:
                os.kill(pid, signal.SIGKILL)
                self.at = time.monotonic()

        monkeypatch.setattr(lsp._Handler, "_send_payload", send)
        monkeypatch.setattr(lsp._Handler, "_send_payload_sync", send_sync)

    def _stop(self, handler) -> int:
        """Stops the server's whole process group (a launcher's real server too), so that a warm server cannot
        answer in the instant before the kill lands; the kill then hits only the process we started, as a
        user's `kill -9 <pid>` would."""
        self.left -= 1
        pid = handler.process.pid
        self.killed.append(pid)
        self.group += [p.pid for p in psutil.Process(pid).children(recursive=True)]
        os.killpg(pid, signal.SIGSTOP)
        return pid


def _snapshot(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*.py"))}


async def _timed(server, name: str, args: dict):
    t0 = time.monotonic()
    r = await call(server, name, args)
    return r, time.monotonic() - t0


def _text(r) -> str:
    return " ".join(getattr(c, "text", "") for c in r.content)


def _assert_clear(r) -> None:
    """Either the answer or one sentence that says what happened and what to do."""
    if r.is_error:
        msg = _text(r)
        assert "language server" in msg and ("try again" in msg or "restarted" in msg), msg
        assert "Traceback" not in msg and len(msg) < 400, msg


def _gone(kill: KillOnSend) -> None:
    """The killed processes and every process they had started are gone (at most zombies awaiting a reaper)."""
    deadline = time.monotonic() + 10
    for pid in kill.killed + kill.group:
        while True:
            try:
                if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                    break
            except psutil.NoSuchProcess:
                break
            assert time.monotonic() < deadline, f"process {pid} of a killed language server is still running"
            time.sleep(0.1)


REFS = {"name_path": "scale", "relative_path": "src/geo/units.py"}
DEF = {"relative_path": "src/geo/report.py", "line": 10, "column": 12}  # make_id("report")


@pytest.mark.parametrize("tool,args,method", [
    ("find_references", REFS, "textDocument/references"),
    ("goto_definition", DEF, "textDocument/definition"),
])
async def test_a_kill_in_flight_ends_the_call_soon_and_the_next_call_works(pyproj_copy, tmp_path, monkeypatch,
                                                                           tool, args, method):
    server, _app, service = build(pyproj_copy, tmp_path / "data", request_timeout=REQUEST_TIMEOUT_S)
    expected = await ok(server, tool, args)  # the server is warm: the kill meets a running request
    service.cache.clear()
    service.symbols._entries.clear()
    kill = KillOnSend(monkeypatch, method)
    r, seconds = await _timed(server, tool, args)
    assert kill.killed, "the request was sent (and the server killed under it)"
    assert seconds < BOUND_S, f"{tool} took {seconds:.1f} s after its server was killed"
    _assert_clear(r)
    # One kill: the restart and retry answer it (a second death, not this one, ends in a sentence).
    assert not r.is_error, _text(r)
    assert r.structured_content == expected
    # at once, as an agent would: the next call meets a fresh server, not the dead one
    r, seconds = await _timed(server, tool, args)
    assert not r.is_error, _text(r)
    assert r.structured_content == expected and seconds < BOUND_S
    srv = service.server("python")
    assert srv.alive() and srv.pid not in kill.killed
    _gone(kill)


async def test_a_server_killed_on_every_try_gives_one_clear_sentence_then_recovers(pyproj_copy, tmp_path,
                                                                                   monkeypatch):
    server, _app, service = build(pyproj_copy, tmp_path / "data", request_timeout=REQUEST_TIMEOUT_S)
    expected = await ok(server, "find_references", REFS)
    service.cache.clear()
    kill = KillOnSend(monkeypatch, "textDocument/references", times=10)
    r, seconds = await _timed(server, "find_references", REFS)
    assert r.is_error and seconds < 2 * BOUND_S, (r.structured_content, seconds)
    _assert_clear(r)
    kill.left = 0
    r, seconds = await _timed(server, "find_references", REFS)
    assert not r.is_error, _text(r)
    assert r.structured_content == expected and seconds < BOUND_S
    _gone(kill)


NESTED = "def outer():\n    def inner(x):\n        return x + 1\n\n    return inner(1) + inner(2)\n"

RENAMES = [
    # a module-level name: planned from the scope-checked references
    ({"name_path": "make_id", "relative_path": "src/geo/base.py", "new_name": "new_id"},
     "textDocument/references", {"src/geo/base.py", "src/geo/report.py"}),
    # a nested function: the language server's own rename
    ({"name_path": "outer/inner", "relative_path": "src/geo/nested.py", "new_name": "kernel"},
     "textDocument/rename", {"src/geo/nested.py"}),
]


@pytest.mark.parametrize("args,method,touched", RENAMES)
@pytest.mark.parametrize("times", [1, 10])
async def test_a_rename_whose_server_is_killed_leaves_every_file_whole(pyproj_copy, tmp_path, monkeypatch, args,
                                                                       method, touched, times):
    (pyproj_copy / "src/geo/nested.py").write_text(NESTED)
    server, _app, service = build(pyproj_copy, tmp_path / "data", request_timeout=REQUEST_TIMEOUT_S)
    await ok(server, "find_symbol", {"name_path": "make_id", "relative_path": "src/geo/base.py"})  # warm
    before = _snapshot(pyproj_copy)
    kill = KillOnSend(monkeypatch, method, times=times)
    r, seconds = await _timed(server, "rename_symbol", args)
    assert kill.killed and seconds < 2 * BOUND_S, seconds
    _assert_clear(r)
    assert times > 1 or not r.is_error, _text(r)  # one kill: restarted, retried and done
    after = _snapshot(pyproj_copy)
    if r.is_error:
        assert after == before, "a refused rename changed nothing"
    else:
        assert {f["relative_path"] for f in r.structured_content["files"]} == touched
        changed = {rel for rel in before if after[rel] != before[rel]}
        assert changed == touched
        for rel in changed:  # wholly new: the old name is gone from what the rename rewrote, the new one there
            assert args["new_name"].encode() in after[rel]
    assert not list((tmp_path / "data" / "edits").glob("*")), "no transaction left behind"
    assert not list((tmp_path / "data" / "locks").glob("*")), "no file lock left held"
    kill.left = 0
    _gone(kill)
    # the next edit works, on a fresh server, and starts from whatever the files now hold
    if not r.is_error:
        args = {**args, "name_path": args["name_path"].replace(args["name_path"].rsplit("/", 1)[-1],
                                                                args["new_name"]),
                "new_name": args["name_path"].rsplit("/", 1)[-1]}
    r = await call(server, "rename_symbol", args)
    assert not r.is_error, _text(r)
    assert service.server("python").alive()


async def test_a_call_right_after_a_kill_meets_a_fresh_server(pyproj_copy, tmp_path):
    """Killed between two calls, the next one made at once (before the death is reaped): not sent into the dead
    server's pipe to wait out the request timeout."""
    server, _app, service = build(pyproj_copy, tmp_path / "data", request_timeout=REQUEST_TIMEOUT_S)
    expected = await ok(server, "find_references", REFS)
    for _ in range(3):
        service.cache.clear()
        pid = service.server("python").pid
        os.kill(pid, signal.SIGKILL)
        r, seconds = await _timed(server, "find_references", REFS)
        assert not r.is_error, _text(r)
        assert r.structured_content == expected and seconds < BOUND_S, seconds
        assert service.server("python").pid != pid


NEW_BODY = "def make_id(prefix):\n    return prefix + \"-key\"\n"


async def test_an_edit_whose_type_checker_is_killed_lands_whole_and_says_so_at_once(pyproj_copy, tmp_path,
                                                                                   monkeypatch):
    """The type net's checker killed while it holds the edit's new text: the edit is written whole (or not at
    all), says at once (not at the end of the net's budget) that its types were not checked because the checker
    died, and the next edit is checked again."""
    budget = type_net.TYPE_NET_SECONDS
    server, _app, _service = build(pyproj_copy, tmp_path / "data", request_timeout=REQUEST_TIMEOUT_S,
                                   type_net_seconds=budget)
    # started first, so that what the old code waited out after the kill is nearly the whole budget, not the
    # part a slow cold start left of it
    await ok(server, "get_diagnostics", {"relative_path": "src/geo/base.py"})
    args = {"name_path": "make_id", "relative_path": "src/geo/base.py", "body": NEW_BODY}
    base = pyproj_copy / "src/geo/base.py"
    old = base.read_bytes()
    kill = KillOnSend(monkeypatch, "textDocument/didChange", server="basedpyright")
    r, seconds = await _timed(server, "replace_symbol_body", args)
    assert kill.killed and kill.at is not None and seconds < budget + BOUND_S, seconds
    after_kill = time.monotonic() - kill.at
    assert not r.is_error, _text(r)
    assert after_kill < budget / 2, f"the edit answered {after_kill:.1f} s after its checker died: {r.structured_content}"
    assert r.structured_content["types"].startswith("types not checked (basedpyright died"), r.structured_content
    new = base.read_bytes()
    assert new == old.replace(b'return prefix + "-id"', b'return prefix + "-key"')
    assert not list((tmp_path / "data" / "edits").glob("*"))
    r = await ok(server, "replace_symbol_body", {**args, "body": NEW_BODY.replace("-key", "-tag")})
    assert r["types"].startswith("types checked"), r
    assert base.read_bytes() == old.replace(b'return prefix + "-id"', b'return prefix + "-tag"')
    _gone(kill)


async def test_diagnostics_whose_type_checker_is_killed_say_so_at_once_and_the_next_call_works(pyproj_copy,
                                                                                                 tmp_path,
                                                                                                 monkeypatch):
    """basedpyright killed while get_diagnostics waits for what it publishes (a notification, not a request: no
    answer is owed, so nothing fails the wait): one sentence at once, not the whole wait, then a fresh checker."""
    wait_s = inspect.signature(SemanticService.get_diagnostics).parameters["wait_seconds"].default
    server, _app, service = build(pyproj_copy, tmp_path / "data", request_timeout=REQUEST_TIMEOUT_S)
    expected = await ok(server, "get_diagnostics", {"relative_path": "src/geo/base.py"})  # warm: no cold start
    args = {"relative_path": "src/geo/report.py"}  # not open yet: its didOpen is what the checker dies under
    kill = KillOnSend(monkeypatch, "textDocument/didOpen", server="basedpyright")
    r = await call(server, "get_diagnostics", args)
    assert kill.killed and kill.at is not None, "the file was sent (and the checker killed under it)"
    after_kill = time.monotonic() - kill.at
    assert after_kill < wait_s / 2, f"get_diagnostics answered {after_kill:.1f} s after its checker died: {_text(r)}"
    assert r.is_error, r.structured_content
    msg = _text(r)
    # said once (in lsp), named as the caller named the file
    assert "basedpyright died before it published diagnostics for src/geo/report.py; the next call starts it " \
           "again" in msg, msg
    assert "Traceback" not in msg and len(msg) < 400, msg
    r = await ok(server, "get_diagnostics", args)
    assert r["note"] is None, r
    assert await ok(server, "get_diagnostics", {"relative_path": "src/geo/base.py"}) == expected
    assert service.type_checker().alive() and service.type_checker().pid not in kill.killed
    _gone(kill)
