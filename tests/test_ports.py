"""Ports for the servers we start are picked below the kernel's ephemeral range, where outgoing connections never
take them between the pick and the server's bind."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from ansf_mcp import ports


def test_a_port_below_the_ephemeral_range_that_nothing_listens_on() -> None:
    lo, _ = ports.ephemeral_range()
    picked = {ports.free_port() for _ in range(20)}
    assert all(ports.LOWEST <= p < lo for p in picked)
    with socket.socket() as s:
        s.bind(("127.0.0.1", picked.pop()))  # free indeed


def test_a_taken_port_is_never_picked(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", ports.free_port()))
        held.listen()
        taken = held.getsockname()[1]
        other = ports.free_port()
        candidates = iter([taken, taken, other])
        monkeypatch.setattr(ports.random.SystemRandom, "randrange", lambda self, a, b: next(candidates))
        assert ports.free_port() == other


def test_without_room_below_the_range_the_kernel_picks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    narrow = tmp_path / "range"
    narrow.write_text("20500\t60999\n")
    monkeypatch.setattr(ports, "EPHEMERAL_RANGE_FILE", narrow)
    assert ports.ephemeral_range() == (20_500, 60_999)
    assert ports.free_port() >= 20_500  # the kernel's own choice, inside its range


def test_a_port_out_of_range_is_a_bind_error_and_refused_by_the_flag() -> None:
    """QA F1: `ansf dashboard --port 99999` ended in the socket module's OverflowError traceback."""
    import argparse

    for port in (65_536, 99_999, -1):
        exc = ports.bind_error("127.0.0.1", port)
        assert isinstance(exc, OSError) and exc.strerror == "port must be 0-65535", exc
        with pytest.raises(argparse.ArgumentTypeError, match=r"is not a port \(0-65535\)"):
            ports.port_number(str(port))
    assert ports.port_number("0") == 0 and ports.port_number("65535") == 65_535
    with pytest.raises(argparse.ArgumentTypeError, match="'x' is not a number"):
        ports.port_number("x")


def test_a_refused_listen_names_the_flag_that_fixes_it() -> None:
    """An address this machine does not have was told to choose another --port."""
    from ansf_mcp.web import ConfigError, check_port_free

    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        with pytest.raises(ConfigError, match=r"cannot listen on 127\.0\.0\.1:\d+ .*; choose another with --port$"):
            check_port_free("127.0.0.1", held.getsockname()[1])
    for host in ("192.0.2.1", "no-such-host.invalid"):  # TEST-NET-1: never this machine's; .invalid never resolves
        with pytest.raises(ConfigError, match=r"; give --host an address of this machine$"):
            check_port_free(host, ports.free_port())
