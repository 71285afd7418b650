"""Language-server lifecycle: timeouts, restart + retry once, no orphans (also after SIGKILL of the parent)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest
from ansf_mcp.semantic.lsp import ServerSpec

from tests.semantic.conftest import FIXTURES, build
from tests.semantic.helpers import err, ok

pytestmark = pytest.mark.anyio
FAKE = Path(__file__).with_name("fake_lsp.py")


def _spec(*args: str) -> ServerSpec:
    return ServerSpec(language="Python", key="python", cmd=[sys.executable, str(FAKE), *args], version="fake-1")


def _fake_project(tmp_path: Path) -> tuple[Path, Path]:
    """A one-file project for the fake server: the project and its file."""
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "a.py").write_text("fake = 1\n")
    return proj, proj / "a.py"


async def test_hung_server_is_restarted_and_call_retried(tmp_path):
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "a.py").write_text("fake = 1\n")
    marker = tmp_path / "hung-once"
    server, _, service = build(proj, tmp_path / "data", request_timeout=1.5,
                               spec_overrides={"python": _spec(str(marker))})
    try:
        r = await ok(server, "symbols_overview", {"relative_path": "a.py"})
        assert [s["name_path"] for s in r["files"]["a.py"]] == ["fake"]
        srv = service.server("python")
        assert marker.exists() and srv.restarts == 1
    finally:
        service.shutdown()


async def test_server_that_always_hangs_gives_a_clear_error(tmp_path):
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "a.py").write_text("fake = 1\n")
    server, _, service = build(proj, tmp_path / "data", request_timeout=1.0,
                               spec_overrides={"python": _spec("always")})
    try:
        msg = await err(server, "symbols_overview", {"relative_path": "a.py"})
        assert "did not answer textDocument/documentSymbol within 1s, even after a restart; try again shortly" in msg
        assert service.server("python").restarts == 1
    finally:
        service.shutdown()


async def test_dead_server_is_restarted_transparently(tmp_path):
    server, _, service = build(FIXTURES / "pyproj", tmp_path / "data")
    try:
        args = {"name_path": "Shape", "relative_path": "src/geo/base.py"}
        await ok(server, "find_symbol", args)
        srv = service.server("python")
        pid = srv.pid
        proc = psutil.Process(pid)
        os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(psutil.NoSuchProcess):  # already reaped by the language-server loop
            proc.wait(timeout=10)  # it is gone (an event, not a guess): the next call meets a dead server
        service.cache.clear()
        r = await ok(server, "find_references", {"name_path": "make_id", "relative_path": "src/geo/base.py"})
        assert (r["total"], srv.alive()) == (2, True)
        assert srv.pid != pid and not psutil.pid_exists(pid)
    finally:
        service.shutdown()


async def test_shutdown_leaves_no_processes(tmp_path):
    server, app, service = build(FIXTURES / "pyproj", tmp_path / "data")
    await ok(server, "find_symbol", {"name_path": "Shape", "relative_path": "src/geo/base.py"})
    pid = service.server("python").pid
    app.shutdown()
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


@pytest.mark.slow
def test_no_orphans_after_sigkill_of_parent(tmp_path):
    script = textwrap.dedent(f"""
        import sys, time
        from pathlib import Path
        from ansf_mcp.semantic.service import SemanticService
        s = SemanticService(Path({str(FIXTURES / "pyproj")!r}), Path({str(tmp_path / "data")!r}))
        s.symbols_overview("src/geo/base.py")
        print(s.server("python").pid, flush=True)
        time.sleep(600)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    child = int(proc.stdout.readline())
    assert psutil.pid_exists(child)
    proc.kill()
    proc.wait()
    deadline = time.time() + 10
    while time.time() < deadline and psutil.pid_exists(child):
        try:
            if psutil.Process(child).status() == psutil.STATUS_ZOMBIE:
                break
        except psutil.NoSuchProcess:
            break
        time.sleep(0.1)
    alive = psutil.pid_exists(child) and psutil.Process(child).status() != psutil.STATUS_ZOMBIE
    assert not alive, f"language server {child} outlived its SIGKILLed parent"


def test_a_server_stopped_under_a_request_stays_stopped_and_the_call_says_so(tmp_path):
    """Stopping a server on purpose (shutdown, a memory trim) ends its in-flight request at once with one sentence
    and starts nothing; taken for a crash, it was restarted and the call waited out a second time-out."""
    import threading

    from ansf_mcp.semantic.lsp import LanguageServer, LspError, LspLoop

    proj, target = _fake_project(tmp_path)
    loop = LspLoop()
    srv = LanguageServer(_spec("always"), proj, loop, request_timeout=6, init_timeout=10)
    out: dict[str, object] = {}

    def ask() -> None:
        t0 = time.monotonic()
        try:
            out["answer"] = srv.request("textDocument/documentSymbol", target,
                                        lambda uri: {"textDocument": {"uri": uri}})
        except LspError as exc:
            out["error"] = str(exc)
        out["took"] = time.monotonic() - t0

    try:
        worker = threading.Thread(target=ask)
        worker.start()
        deadline = time.monotonic() + 20
        while not srv.alive():  # the request started the server and waits on it
            assert time.monotonic() < deadline
            time.sleep(0.05)
        time.sleep(0.5)
        stopped_at = time.monotonic()
        srv.stop()
        worker.join(20)
        assert "was stopped while answering textDocument/documentSymbol" in str(out.get("error")), out
        assert time.monotonic() - stopped_at < 5  # not a second request time-out
        assert srv.restarts == 0 and not srv.alive()
    finally:
        srv.stop()
        loop.stop()


def _fake_servers() -> list[int]:
    """Live (not zombie) fake language servers started by this process."""
    live = []
    for p in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):
            if str(FAKE) in p.cmdline() and p.status() != psutil.STATUS_ZOMBIE:
                live.append(p.pid)
    return live


def test_two_calls_failing_on_one_dead_server_restart_it_once(tmp_path, monkeypatch):
    """The second call was sent to the server after it died, before anything restarted it: both fail on it, and
    both would restart it (the second killing the first's new server, or leaking one whose spawn it did not see).
    One restart; both calls answered by the new server; no process left but that one."""
    import threading

    from ansf_mcp.semantic import lsp
    from ansf_mcp.semantic.lsp import LanguageServer, LspLoop

    proj, target = _fake_project(tmp_path)
    started: list[lsp._Handler] = []
    sent: list[tuple[lsp._Handler, str]] = []
    original_start, original_send = lsp._Handler.start, lsp._Handler.send_request

    async def start(handler):
        await original_start(handler)
        started.append(handler)

    async def send_request(handler, method, params=None):
        sent.append((handler, method))
        return await original_send(handler, method, params)

    monkeypatch.setattr(lsp._Handler, "start", start)
    monkeypatch.setattr(lsp._Handler, "send_request", send_request)
    loop = LspLoop()
    # a request timeout far above the test's bound: a call that only ends by timing out fails it
    srv = LanguageServer(_spec(str(tmp_path / "muted-once"), "mute"), proj, loop, request_timeout=20,
                         init_timeout=10)
    out: dict[str, object] = {}

    def ask(name: str) -> None:
        try:
            out[name] = srv.request("textDocument/documentSymbol", target, lambda uri: {"textDocument": {"uri": uri}})
        except Exception as exc:  # whatever ended the call is what the assertion shows
            out[name] = exc

    try:
        srv.request("textDocument/hover", target, lambda uri: {"textDocument": {"uri": uri}})  # started and warm
        first = srv.handler
        t0 = time.monotonic()
        callers = [threading.Thread(target=ask, args=(name,)) for name in ("a", "b")]
        for t in callers:
            t.start()
        for t in callers:
            t.join(30)
        took = time.monotonic() - t0
        symbols = [{"name": "fake", "kind": 12, "range": {"start": {"line": 0, "character": 0},
                                                          "end": {"line": 0, "character": 5}},
                    "selectionRange": {"start": {"line": 0, "character": 0}, "end": {"line": 0, "character": 5}},
                    "children": []}]
        assert out == {"a": symbols, "b": symbols}, out
        # both calls were sent to the dead server (the second after its output had ended)
        assert [m for h, m in sent if h is first].count("textDocument/documentSymbol") == 2, sent
        assert took < 8, f"the calls took {took:.1f} s"
        assert srv.restarts == 1 and len(started) == 2, (srv.restarts, started)
        assert _fake_servers() == [srv.pid], "only the restarted server is left running"
    finally:
        srv.stop()
        loop.stop()
    deadline = time.monotonic() + 10
    while _fake_servers():
        assert time.monotonic() < deadline, f"language servers left running: {_fake_servers()}"
        time.sleep(0.1)


def test_diagnostics_published_just_before_the_server_died_are_the_answer(tmp_path, monkeypatch):
    """The server publishes, then exits, and the wait ends as its death is seen: the answer had arrived and
    stands (taken for "died before it published", it was discarded and the caller told there was none)."""
    from ansf_mcp.semantic.lsp import LanguageServer, LspLoop

    settled = LanguageServer._settled

    async def settled_as_it_dies(self, uri, ev, wait):
        await settled(self, uri, ev, wait)
        # the race, every time: the waits for the answer and for the death end in the same turn of the loop
        await self.handler.exited.wait()

    monkeypatch.setattr(LanguageServer, "_settled", settled_as_it_dies)
    proj, target = _fake_project(tmp_path)
    loop = LspLoop()
    srv = LanguageServer(_spec("publish-and-die"), proj, loop, request_timeout=6, init_timeout=10)
    try:
        found = srv.diagnostics(target, wait=5)
        assert [d["message"] for d in found or []] == ["fake error"], found
    finally:
        srv.stop()
        loop.stop()


def test_a_server_stopped_while_its_dead_one_is_ended_starts_nothing(tmp_path, monkeypatch):
    """A call finds its server dead and starts a new one; while the dead one is being ended, the owner stops the
    server (a memory trim, a shutdown). The start went on regardless: a server nobody would stop again."""
    import asyncio
    import threading

    from ansf_mcp.semantic import lsp
    from ansf_mcp.semantic.lsp import LanguageServer, LspError, LspLoop

    proj, target = _fake_project(tmp_path)
    loop = LspLoop()
    srv = LanguageServer(_spec(), proj, loop, request_timeout=5, init_timeout=10)

    def ask() -> object:
        return srv.request("textDocument/hover", target, lambda uri: {"textDocument": {"uri": uri}})

    try:
        ask()
        dead = srv.handler
        os.kill(srv.pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while srv.alive():
            assert time.monotonic() < deadline
            time.sleep(0.02)
        ended = threading.Event()
        end = lsp._end

        async def slow_end(h):  # the window, widened: the stop lands while the dead handler is being ended
            await end(h)
            if h is dead:
                ended.set()
                await asyncio.sleep(1.0)

        monkeypatch.setattr(lsp, "_end", slow_end)
        out: dict[str, object] = {}

        def call() -> None:
            try:
                out["answer"] = ask()
            except LspError as exc:
                out["error"] = str(exc)

        worker = threading.Thread(target=call)
        worker.start()
        assert ended.wait(10)
        srv.stop()
        worker.join(20)
        assert "was stopped" in str(out.get("error")), out
        assert not srv.alive() and srv.handler is None
        assert not _fake_servers()
    finally:
        srv.stop()
        loop.stop()
