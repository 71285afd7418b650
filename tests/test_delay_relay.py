"""The bench's delaying TCP relay (ansf_mcp/bench/delay_relay.py): it adds the round trip it is told, keeps the
order of the bytes, adds latency and not a bandwidth limit, forwards to loopback only, and stops with its parent."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from ansf_mcp.bench.delay_relay import DelayRelay, serve


@pytest.fixture
def echo_port() -> Iterator[int]:
    """A loopback echo server (a thread per connection), closed after the test."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve_one(conn: socket.socket) -> None:
        with conn:
            while data := conn.recv(65536):
                conn.sendall(data)

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            threading.Thread(target=serve_one, args=(conn,), daemon=True).start()

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    yield listener.getsockname()[1]
    stop.set()
    t.join(timeout=5)
    listener.close()


def _exchange(port: int, messages: list[bytes]) -> tuple[float, bytes]:
    """Send every message at once, read until all come back; the time it took and what came back."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        want = sum(map(len, messages))
        started = time.perf_counter()
        for m in messages:
            s.sendall(m)
        got = b""
        while len(got) < want:
            got += s.recv(65536)
        return time.perf_counter() - started, got


def test_the_relay_adds_its_round_trip_once_per_exchange_and_keeps_order(echo_port: int) -> None:
    direct, _ = _exchange(echo_port, [b"ping"])
    with DelayRelay(echo_port, rtt_s=0.08) as relay:
        one, echoed = _exchange(relay.port, [b"ping"])
        # Twenty messages sent back to back come back after one round trip, not twenty: latency, not bandwidth.
        many, echoed_many = _exchange(relay.port, [f"m{i:02d};".encode() for i in range(20)])
    assert echoed == b"ping" and echoed_many == b"".join(f"m{i:02d};".encode() for i in range(20))
    assert direct < 0.05
    assert 0.08 <= one < 0.5, one
    assert 0.08 <= many < 0.5, many


def test_the_relay_forwards_to_loopback_only() -> None:
    with pytest.raises(ValueError, match="loopback"):
        asyncio.run(serve(("192.0.2.1", 5432), 0.001, 1.0))


def test_the_relay_stops_by_itself_when_its_time_is_up(echo_port: int) -> None:
    relay = DelayRelay(echo_port, rtt_s=0.0, max_s=0.5)
    with relay:
        assert relay.proc is not None
        assert relay.proc.wait(timeout=10) == 0


@pytest.mark.parametrize("how", ["terminated", "time up"])
def test_the_relay_stops_cleanly_with_connections_open(echo_port: int, how: str) -> None:
    """Stopped by SIGTERM or by its time limit while a connection is open, it exits 0 with nothing on stderr
    (it used to leave "Task was destroyed but it is pending" and a cancelled handler's traceback)."""
    import subprocess
    import sys

    proc = subprocess.Popen(
        [sys.executable, "-m", "ansf_mcp.bench.delay_relay", "--target", f"127.0.0.1:{echo_port}", "--rtt-ms", "2",
         "--max-s", "1" if how == "time up" else "60"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(b"held open")
            assert s.recv(64) == b"held open"
            if how == "terminated":
                proc.terminate()
            _, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert (proc.returncode, err) == (0, "")
