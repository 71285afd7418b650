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
