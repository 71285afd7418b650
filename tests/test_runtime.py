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


class FakeWarmer:
    """A warm-up that loads nothing: it is 'loading' until the test lets it finish."""

    def __init__(self) -> None:
        import threading

        self.state = "not started"
        self.done = threading.Event()

    def start(self, allowed: bool, reason: str = "") -> None:
        self.state = "loading"

    def status(self) -> dict:
        return {"state": self.state}

    def wait(self, timeout_s: float | None = None) -> None:
        self.done.wait(timeout_s)


def test_after_the_warm_up_a_decision_is_rehearsed_then_the_heap_settles(settings: Settings,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    import sys
    import threading

    from ansf_mcp import heap
    from ansf_mcp import runtime as runtime_module

    steps: list[str] = []
    settled = threading.Event()
    monkeypatch.setattr(runtime_module, "rehearse_decision", lambda: steps.append("rehearsed"))

    def settle(why: str) -> float:
        steps.append(f"settled after {why}")
        settled.set()
        return 0.0

    monkeypatch.setattr(heap, "settle", settle)
    runtime = Runtime.open(settings.model_copy(update={"warm_model": True}))
    warmer = FakeWarmer()
    runtime.warmer = warmer  # type: ignore[assignment]
    try:
        runtime.start()
        assert heap.status()["full_collections_held"]  # while the model loads, until the heap settles
        assert not settled.wait(0.2) and steps == []  # nothing before the model is in
        warmer.state = "loaded"
        warmer.done.set()
        assert settled.wait(10)
        assert steps == ["rehearsed", "settled after the start-up's warm-up"]
        assert "ansf_mcp.coordinator.strategies" in sys.modules  # the solver loaded beside the model
    finally:
        runtime.shutdown()
        heap.resume_full_collections()


def test_the_rehearsal_is_one_small_auto_decision_and_never_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    from ansf_mcp.coordinator import strategies
    from ansf_mcp.runtime import rehearse_decision

    seen: list[tuple[int, int, str]] = []

    def decide(episode, strategy="auto", **_: object):
        seen.append((len(episode.agents), len(episode.tasks), strategy))
        raise RuntimeError("no model here")

    monkeypatch.setattr(strategies, "decide", decide)
    rehearse_decision()  # logs the failure; the server goes on
    assert seen == [(2, 2, "auto")]
