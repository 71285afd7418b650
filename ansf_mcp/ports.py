"""A free TCP port for a server this program starts, chosen where outgoing connections never land.

The kernel hands the source ports of outgoing connections out of its ephemeral range; a port picked by binding to
0 comes from the same range, so between the pick and the server's own bind any connection on the machine may take
it (seen in CI: a shared server's bind failed with "address already in use"). A port below that range is taken
only by another program that listens on it, and the pick checks for that.
"""

from __future__ import annotations

import argparse
import errno
import random
import socket
from pathlib import Path

EPHEMERAL_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
LOWEST = 20_000  # below: ports that well-known services and development servers listen on
TRIES = 50
HIGHEST = 65_535


def port_number(text: str) -> int:
    """An argparse `type=` for --port: a number in 0-65535 (0: any free port), refused in argparse's one line."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 <= port <= HIGHEST:
        raise argparse.ArgumentTypeError(f"{port} is not a port (0-{HIGHEST})")
    return port


def ephemeral_range() -> tuple[int, int]:
    try:
        lo, hi = (int(x) for x in EPHEMERAL_RANGE_FILE.read_text().split())
        return lo, hi
    except (OSError, ValueError):
        return 32_768, 60_999  # Linux's default


def free_port(host: str = "127.0.0.1") -> int:
    """A port on `host` that nothing listens on now, below the ephemeral range when there is room there."""
    lo, _ = ephemeral_range()
    rng = random.SystemRandom()
    if lo - LOWEST >= 1_000:
        for _ in range(TRIES):
            port = rng.randrange(LOWEST, lo)
            if bind_error(host, port) is None:
                return port
    with socket.socket(_family(host), socket.SOCK_STREAM) as s:  # no room below, or all tried were taken
        s.bind((host, 0))
        return int(s.getsockname()[1])


def bind_error(host: str, port: int) -> OSError | None:
    """Why a server could not listen on host:port now (None: it could), tried as uvicorn binds (SO_REUSEADDR)."""
    with socket.socket(_family(host), socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            return exc
        except OverflowError as exc:  # a port outside 0-65535 (the socket module's own check): say it like the rest
            return OSError(errno.EINVAL, str(exc).removeprefix("bind(): ").rstrip("."))
    return None


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET
