"""A TCP relay on loopback that delays every byte by half a round trip each way: "another host" for the bench.

This kernel has no netem; the scale suite puts this relay between PostgreSQL replicas and the database to
simulate 1 ms or 5 ms of network round trip. Data keeps its order and is never held back by the data behind it
(each chunk is due `rtt_s / 2` after it was read), so the relay adds latency, not a bandwidth limit.

Bounded and self-stopping: it listens on 127.0.0.1 only, relays only to a loopback target, takes at most
`MAX_CONNECTIONS` at once, buffers at most `MAX_CHUNKS` chunks per direction, and exits after `--max-s`
seconds or as soon as the process that started it is gone.

Run: python -m ansf_mcp.bench.delay_relay --target 127.0.0.1:5432 --rtt-ms 5 (prints the port it listens on).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import os
import signal
import subprocess
import sys
import time
from types import TracebackType
from typing import Any

MAX_CONNECTIONS = 500
MAX_CHUNKS = 1024
CHUNK = 65536


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay_s: float) -> None:
    """Copy one direction, each chunk written `delay_s` after it was read."""
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue(MAX_CHUNKS)

    async def read() -> None:
        while data := await reader.read(CHUNK):
            await queue.put((time.monotonic() + delay_s, data))
        await queue.put((time.monotonic() + delay_s, b""))

    async def write() -> None:
        while True:
            due, data = await queue.get()
            if (wait := due - time.monotonic()) > 0:
                await asyncio.sleep(wait)
            if not data:
                break
            writer.write(data)
            await writer.drain()
        with contextlib.suppress(OSError):
            writer.write_eof()

    reading = asyncio.ensure_future(read())
    try:
        await write()
    finally:
        reading.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reading  # ended here, not destroyed pending when the loop closes


async def serve(target: tuple[str, int], rtt_s: float, max_s: float, ready: asyncio.Future[int] | None = None,
                parent: int | None = None) -> None:
    if not ipaddress.ip_address(target[0]).is_loopback:
        raise ValueError(f"the relay only forwards to loopback addresses, not {target[0]}")
    slots = asyncio.Semaphore(MAX_CONNECTIONS)
    connections: set[asyncio.Task[Any]] = set()

    async def handle(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        if slots.locked():
            client_w.close()
            return
        task = asyncio.current_task()
        assert task is not None
        connections.add(task)
        try:
            async with slots:
                await _relay(client_r, client_w)
        except asyncio.CancelledError:
            pass  # the relay is stopping; a handler that ends cancelled is reported as an error by Python 3.11
        finally:
            connections.discard(task)

    async def _relay(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            server_r, server_w = await asyncio.open_connection(*target)
        except OSError:
            client_w.close()
            return
        try:
            await asyncio.gather(_pump(client_r, server_w, rtt_s / 2), _pump(server_r, client_w, rtt_s / 2))
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            for w in (client_w, server_w):
                w.close()

    stop = asyncio.Event()
    with contextlib.suppress(NotImplementedError, RuntimeError):  # not in the main thread: no signal handler
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    print(port, flush=True)
    if ready is not None:
        ready.set_result(port)
    deadline = time.monotonic() + max_s
    async with server:
        while not stop.is_set() and time.monotonic() < deadline and (parent is None or os.getppid() == parent):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), min(0.5, max(0.0, deadline - time.monotonic())))
        # Stopping (SIGTERM, time up, parent gone): no new connections, and every open one ends here, so no task
        # is left pending when the loop closes ("Task was destroyed but it is pending").
        server.close()
        for task in list(connections):
            task.cancel()
        await asyncio.gather(*connections, return_exceptions=True)


class DelayRelay:
    """The relay as a child process (its own interpreter, so the bench's agents do not slow it down)."""

    def __init__(self, target_port: int, rtt_s: float, max_s: float = 1800.0):
        self.target_port, self.rtt_s, self.max_s = target_port, rtt_s, max_s
        self.proc: subprocess.Popen[str] | None = None
        self.port = 0

    def __enter__(self) -> DelayRelay:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ansf_mcp.bench.delay_relay", "--target", f"127.0.0.1:{self.target_port}",
             "--rtt-ms", str(self.rtt_s * 1000), "--max-s", str(self.max_s), "--parent", str(os.getpid())],
            stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.strip().isdigit():
            self.proc.kill()
            raise RuntimeError("the delay relay did not start")
        self.port = int(line)
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--target", required=True, help="host:port on loopback")
    ap.add_argument("--rtt-ms", type=float, required=True, help="round-trip delay added, in milliseconds")
    ap.add_argument("--max-s", type=float, default=1800.0, help="stop after this many seconds")
    ap.add_argument("--parent", type=int, default=None, help="stop when this process is no longer the parent")
    args = ap.parse_args(argv)
    host, port = args.target.rsplit(":", 1)
    asyncio.run(serve((host, int(port)), args.rtt_ms / 1000, args.max_s, parent=args.parent))


if __name__ == "__main__":
    main()
