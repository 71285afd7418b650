"""Every stdio request gets an answer (issue 10, item 8): a lone surrogate or JSON nested past the parser's limit
used to get none, and the client hung until its own time-out. Raw bytes to a real `ansf serve` subprocess."""

from __future__ import annotations

import json
import select
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import ansf_command, subprocess_env

HANDSHAKE = [
    {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}},
    {"jsonrpc": "2.0", "method": "notifications/initialized"},
]


def call_line(rid: object, arguments_json: str) -> str:
    return ('{"jsonrpc":"2.0","id":' + json.dumps(rid) + ',"method":"tools/call","params":{"name":"spawn_swarm",'
            '"arguments":' + arguments_json + "}}")


BAD_LINES = {
    "lone surrogate": (11, call_line(11, '{"name":"\\ud800","agents":[{"role":"r"}]}')),
    "199 levels": (12, call_line(12, '{"name":"n","agents":' + "[" * 199 + "]" * 199 + "}")),
    "5000 levels": ("deep", call_line("deep", '{"name":"n","agents":' + "[" * 5000 + "]" * 5000 + "}")),
    "truncated": (14, call_line(14, '{"name":"n"')),
    "not JSON-RPC": (15, '{"jsonrpc":"2.0","id":15}'),
    "garbage": (None, "this is not json"),
    # a field of the wrong type: the error's input was that field's value, not the line, and no answer came
    "method not a string": (16, '{"jsonrpc":"2.0","id":16,"method":5}'),
    "params a string": (17, '{"jsonrpc":"2.0","id":17,"method":"tools/call","params":"x"}'),
    "params a list": (18, '{"jsonrpc":"2.0","id":18,"method":"ping","params":[1]}'),
    "a batch": (None, '[{"jsonrpc":"2.0","id":19,"method":"ping"},{"jsonrpc":"2.0","id":20,"method":"ping"}]'),
}


def read_message(proc: subprocess.Popen[bytes], what: str = "", timeout: float = 15) -> dict:
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    assert ready, f"no answer within 15 s {what}"
    line = proc.stdout.readline()
    assert line, "the server closed stdout"
    return json.loads(line)


@pytest.mark.slow
def test_unreadable_requests_are_answered_with_their_id(data_dir: Path, tmp_path: Path) -> None:
    proc = subprocess.Popen([*ansf_command(), "serve"], env=subprocess_env(data_dir), cwd=tmp_path,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0)
    try:
        for message in HANDSHAKE:
            proc.stdin.write((json.dumps(message) + "\n").encode())
            proc.stdin.flush()
        assert read_message(proc)["id"] == 1
        for name, (rid, line) in BAD_LINES.items():
            proc.stdin.write(line.encode() + b"\n")
            proc.stdin.flush()
            answer = read_message(proc, name)
            assert answer["id"] == rid, (name, answer)
            assert answer["error"]["code"] in (-32700, -32600), (name, answer)
            assert answer["error"]["message"], name
        # The server is still serving afterwards, and nothing was written by the refused calls.
        proc.stdin.write((json.dumps({"jsonrpc": "2.0", "id": 99, "method": "tools/call", "params": {
            "name": "swarm_status", "arguments": {}}}) + "\n").encode())
        proc.stdin.flush()
        status = read_message(proc)
        assert status["id"] == 99 and status["result"]["structuredContent"]["swarms"] == []
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert b"Traceback" not in err, err.decode(errors="replace")[-2000:]


def test_request_id_scan_needs_no_parser() -> None:
    from ansf_mcp.server.stdio import request_id

    assert request_id('{"params":{"id":9},"id":"abc","jsonrpc":"2.0"}') == "abc"
    assert request_id('{"a":"he said \\"id\\": 5","id" : 12}') == 12
    assert request_id('{"id":"\\ud800"}') is None
    assert request_id('{"id":true}') is None
    assert request_id("[" * 100_000) is None


def test_requests_running_when_the_input_ends_are_still_answered(data_dir: Path, tmp_path: Path) -> None:
    """A client that writes its requests and closes the pipe (`printf ... | ansf serve`) gets every answer: the SDK
    alone ended the session at the end of the input and cancelled what was still running."""
    proc = subprocess.Popen([*ansf_command(), "serve"], env=subprocess_env(data_dir), cwd=tmp_path,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, bufsize=0)

    def call(rid: int, name: str, arguments: dict) -> dict:
        proc.stdin.write((json.dumps({"jsonrpc": "2.0", "id": rid, "method": "tools/call",
                                      "params": {"name": name, "arguments": arguments}}) + "\n").encode())
        answer = read_message(proc, name)
        assert answer["id"] == rid and not answer["result"].get("isError"), answer
        return answer["result"]["structuredContent"]

    try:
        for message in HANDSHAKE:
            proc.stdin.write((json.dumps(message) + "\n").encode())
        assert read_message(proc)["id"] == 1
        swarm = call(2, "spawn_swarm", {"name": "drain", "agents": [{"role": "a"}, {"role": "b"}]})
        sw, (first, second) = swarm["swarm_id"], [a["id"] for a in swarm["agents"]]
        call(3, "coordinate", {"swarm_id": sw, "strategy": "round-robin", "tasks": [
            {"id": "t1", "description": "build it"}, {"id": "t2", "description": "ship it", "depends_on": ["t1"]}]})
        claimed = call(4, "next_task", {"swarm_id": sw, "agent_id": first})
        holder, waiter = (first, second) if claimed["status"] == "assigned" else (second, first)
        if claimed["status"] != "assigned":
            assert call(5, "next_task", {"swarm_id": sw, "agent_id": second})["status"] == "assigned"
        # The other agent waits for a change (t2 needs t1, which is claimed); the input ends meanwhile. Its wait
        # stops then: answered at once with what it has, and the process does not live on for the full minute.
        proc.stdin.write((json.dumps({"jsonrpc": "2.0", "id": 6, "method": "tools/call", "params": {
            "name": "next_task", "arguments": {"swarm_id": sw, "agent_id": waiter, "wait_s": 60}}}) + "\n").encode())
        time.sleep(0.5)  # the wait has begun
        closed = time.monotonic()
        proc.stdin.close()
        answer = read_message(proc, "after the input ended")
        assert answer["id"] == 6 and answer["result"]["structuredContent"]["status"] == "wait", answer
        assert holder != waiter
        assert proc.wait(timeout=30) == 0
        assert time.monotonic() - closed < 15
    finally:
        proc.kill()
