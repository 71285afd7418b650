"""The shared runtime: one start and one stop however many holders enter it; repeated log lines rate-limited."""

from __future__ import annotations

import logging

import pytest

from ansf_mcp.runtime import Runtime, _Repeats
from ansf_mcp.settings import Settings


@pytest.mark.anyio
async def test_nested_holders_share_one_start_and_one_stop(settings: Settings) -> None:
    runtime = Runtime.open(settings)
    stopped: list[bool] = []
    runtime.on_shutdown.append(lambda: stopped.append(True))
    async with runtime.serving():
        assert runtime.ready
        async with runtime.serving():  # an SSE connection inside the HTTP app's lifespan
            pass
        assert runtime.ready and not stopped
    assert not runtime.ready and stopped == [True]
    runtime.shutdown()  # idempotent
    assert stopped == [True]
    with pytest.raises(RuntimeError):
        async with runtime.serving():
            pass


def test_the_same_line_is_logged_once_per_window() -> None:
    gate = _Repeats(every_s=60)
    record = lambda msg: logging.LogRecord("x", logging.ERROR, __file__, 1, msg, None, None)  # noqa: E731
    passed = [gate.filter(record("Too many open files")) for _ in range(1000)]
    assert passed.count(True) == 1
    assert gate.filter(record("another message"))
