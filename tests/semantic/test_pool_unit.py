"""The semantic pool's fail-fast answers, without a language server: calls queued behind one that passed its
deadline are answered at once and say why, even when the stuck call ends before they wake to read it."""

from __future__ import annotations

import asyncio
import inspect
import threading

import pytest
from ansf_mcp.semantic.defaults import SEMANTIC_DEADLINE_SECONDS, SEMANTIC_WORKERS
from ansf_mcp.semantic.host import SemanticHost
from ansf_mcp.semantic.pool import SemanticCallError, SemanticPool

from ansf_mcp.settings import Settings


class EndsAtOnce(SemanticPool):
    """The stuck call ends right after its deadline is first noticed: `unavailable` says why once, then nothing
    (on a busy machine the waiters it cancelled may wake only after that)."""

    def __init__(self) -> None:
        super().__init__(workers=1, deadline_s=0.2)
        self.told = False

    def unavailable(self) -> str | None:
        why = super().unavailable()
        if why is None or self.told:
            return None
        self.told = True
        return why


def test_queued_calls_say_why_they_failed_fast_even_after_the_stuck_call_ended() -> None:
    pool = EndsAtOnce()
    release = threading.Event()

    def stuck() -> str:
        release.wait(10)
        return "late"

    async def scenario() -> list[str]:
        first = asyncio.create_task(pool.run("goto_definition('a.py')", stuck))
        await asyncio.sleep(0)  # the stuck call takes the only worker
        queued = [asyncio.create_task(pool.run(f"call {i}", lambda: "never", deadline_s=5)) for i in range(5)]
        with pytest.raises(SemanticCallError, match="no answer from the language server within 0 s"):
            await first
        answers = []
        for task in queued:
            with pytest.raises(SemanticCallError) as caught:
                await task
            answers.append(str(caught.value))
        return answers

    try:
        answers = asyncio.run(scenario())
    finally:
        release.set()
        pool.shutdown()
    assert len(answers) == 5
    assert all(a.startswith("semantic tools are failing fast: goto_definition('a.py') has had no answer") for a in
               answers), answers


def test_one_deadline_and_worker_count_default_whichever_way_the_layer_is_built() -> None:
    # The server builds the pool from Settings; tests and benchmarks build the host or the pool directly.
    host_default = inspect.signature(SemanticHost).parameters["deadline_s"].default
    assert Settings.model_fields["semantic_deadline_s"].default == SEMANTIC_DEADLINE_SECONDS
    assert SemanticPool().deadline_s == host_default == SEMANTIC_DEADLINE_SECONDS
    workers = inspect.signature(SemanticHost).parameters["workers"].default
    assert Settings.model_fields["semantic_workers"].default == SemanticPool().workers == workers == SEMANTIC_WORKERS
