"""One cap on every answer, errors included, through a real stdio server: the answers the issue measured over it
(spawn_swarm at the input limits, swarm_status over 601 swarms, coordinate of 1 000 tasks, errors echoing huge
inputs) and forged cursors, which get one sentence."""

from __future__ import annotations

import base64
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from ansf_mcp.tools.answers import ERROR_CHARS, MAX_ANSWER_CHARS

from tests.conftest import ansf_command, stop, subprocess_env
from tests.test_stdio_answers import HANDSHAKE, read_message

pytestmark = pytest.mark.slow

# {"jsonrpc":"2.0","id":N,"result":...}: what a line adds around the answer the cap measures.
RPC_WRAPPER = 64


class StdioServer:
    """`ansf serve` over stdio, spoken to line by line so the size of each answer is what was sent."""

    def __init__(self, data_dir: Path, project: Path):
        self.proc = subprocess.Popen([*ansf_command(), "serve", "--project", str(project)],
                                     env=subprocess_env(data_dir), cwd=project, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0)
        self.next_id = 100
        self.early: dict[int, tuple[dict[str, Any], int]] = {}
        for message in HANDSHAKE:
            self.send(message)
        assert read_message(self.proc, "initialize")["id"] == 1

    def send(self, message: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write((json.dumps(message) + "\n").encode())

    def request(self, name: str, arguments: dict[str, Any]) -> int:
        self.next_id += 1
        self.send({"jsonrpc": "2.0", "id": self.next_id, "method": "tools/call",
                   "params": {"name": name, "arguments": arguments}})
        return self.next_id

    def answer(self, rid: int, what: str, timeout: float = 60) -> tuple[dict[str, Any], int]:
        """The result of request `rid` and the length of the line it came on."""
        import select

        assert self.proc.stdout is not None
        # Requests sent together run concurrently, so their answers may arrive in any order: keep the others.
        while rid not in self.early:
            ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
            assert ready, f"no answer within {timeout} s: {what}"
            line = self.proc.stdout.readline()
            message = json.loads(line)
            self.early[message["id"]] = (message, len(line.decode().rstrip("\n")))
        message, size = self.early.pop(rid)
        return message["result"], size

    def call(self, name: str, arguments: dict[str, Any]) -> tuple[dict[str, Any], int]:
        return self.answer(self.request(name, arguments), name)

    def close(self) -> str:
        stop(self.proc)
        assert self.proc.stderr is not None
        return self.proc.stderr.read().decode(errors="replace")


@pytest.fixture
def server(data_dir: Path, tmp_path: Path):
    project = tmp_path / "project"
    (project / "pkg").mkdir(parents=True)
    # Enough matching lines that a search pages, so there is a real cursor to forge from.
    (project / "pkg" / "many.py").write_text("".join(f"VALUE_{i} = {i}  # needle {'x' * 60}\n" for i in range(3000)))
    s = StdioServer(data_dir, project)
    yield s
    stderr = s.close()
    assert "Traceback" not in stderr, stderr[-3000:]


def within_cap(result: dict[str, Any], size: int, what: str) -> None:
    assert size <= MAX_ANSWER_CHARS + RPC_WRAPPER, f"{what}: {size} characters sent"


def test_the_largest_answers_stay_within_the_cap(server: StdioServer) -> None:
    # spawn_swarm at every input limit: 64 agents, each 50 capabilities of 100 characters and a 200-character role
    agents = [{"role": f"r{i:02d}" + "o" * 197, "capabilities": [f"c{j:02d}" + "x" * 97 for j in range(50)], "capacity": 100}
              for i in range(64)]
    result, size = server.call("spawn_swarm", {"name": "n" * 200, "agents": agents})
    within_cap(result, size, "spawn_swarm")
    assert not result.get("isError"), result
    spawned = result["structuredContent"]
    assert spawned["swarm_id"].startswith("swarm-") and "answer cap" in spawned["shrunk"]
    assert spawned["agents"][0]["id"] == "agent-0"  # a prefix of the answer, not an arbitrary part of it
    # coordinate of 1 000 tasks with long descriptions
    tasks = [{"description": f"task {i} " + "d" * 400} for i in range(1000)]
    result, size = server.call("coordinate", {"swarm_id": spawned["swarm_id"], "tasks": tasks,
                                              "strategy": "round-robin"})
    within_cap(result, size, "coordinate")
    assert not result.get("isError"), result
    # swarm_status() over 601 swarms: the requests go out together, the answers are read after
    ids = [server.request("spawn_swarm", {"name": f"s{i:03d}" + "n" * 190, "agents": [{"role": "r"}]})
           for i in range(600)]
    for rid in ids:
        result, _ = server.answer(rid, "spawn_swarm")
        assert not result.get("isError"), result
    result, size = server.call("swarm_status", {})
    within_cap(result, size, "swarm_status over 601 swarms")
    assert not result.get("isError"), result


@pytest.mark.parametrize(("tool", "arguments"), [
    ("find_references", {"name_path": "A/" + "x" * 2_000_000, "relative_path": "pkg/many.py"}),
    ("replace_symbol_body", {"name_path": "A/" + "x" * 2_000_000, "relative_path": "pkg/many.py", "body": "x = 1"}),
    ("swarm_status", {"swarm_id": "x" * 2_000_000}),
    ("no_such_tool_" + "y" * 1_000_000, {}),
    ("spawn_swarm", {"name": "n", "agents": [{"role": "r", "capabilities": ["z" * 1_000_000]}]}),
])
def test_errors_never_echo_a_huge_input(server: StdioServer, tool: str, arguments: dict[str, Any]) -> None:
    result, size = server.call(tool, arguments)
    assert result["isError"], result
    text = result["content"][0]["text"]
    assert len(text) <= ERROR_CHARS and size <= ERROR_CHARS + 2 * RPC_WRAPPER, (size, text[:300])
    assert "\n" not in text and "Traceback" not in text


def _cursor(state: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(state).encode()).decode().rstrip("=")


def test_forged_cursors_get_one_sentence(server: StdioServer) -> None:
    search = {"pattern": "needle", "relative_path": "pkg"}
    result, _ = server.call("search_for_pattern", search)
    assert not result["isError"], result
    cursor = result["structuredContent"]["next_cursor"]
    assert cursor, "the search must page for this test to forge its cursor"
    real = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    forged = [
        _cursor({**real, "f": -5}), _cursor({**real, "l": -3}), _cursor({**real, "f": "abc"}),
        _cursor({**real, "l": [1]}), _cursor({**real, "f": 10**40}), _cursor({**real, "l": 1.5}),
        "%%%not-base64%%%", _cursor([1, 2]), base64.urlsafe_b64encode(b"\xff\xfe{").decode(), "A" * 100_000,
    ]
    for bad in forged:
        result, _ = server.call("search_for_pattern", {**search, "cursor": bad})
        assert result["isError"], (bad[:80], result)
        text = result["content"][0]["text"]
        assert "cursor" in text and "\n" not in text and len(text) <= ERROR_CHARS, text[:300]
        for internal in ("Traceback", "invalid literal", "Error executing", "int()", "line -"):
            assert internal not in text, text
