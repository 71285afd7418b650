"""Loading the neural model ahead of the first decision, and timing every load on its own.

At start, when the operating phase allows the neural coordinator, the default profile loads in a background
thread, so the first `coordinate(auto)` does not pay the torch import and checkpoint load (1-2 s, ~290 MB). A
decision that still finds its model unloaded (warm-up off, or a non-default profile) loads it first through
`ensure`, so `decisions.elapsed_ms` — what the latency alert reads — is the decision alone. Each load is a row in
`model_loads`, the dashboard's own figure.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from ansf_mcp.coordinator.episode import ModelUnavailable
from ansf_mcp.coordinator.profiles import DEFAULT_PROFILE
from ansf_mcp.store.db import Store

log = logging.getLogger(__name__)


class ModelWarmer:
    def __init__(self, store: Store):
        self.store = store
        self._lock = threading.Lock()
        self._loading = threading.Lock()  # one load at a time: a caller during warm-up waits, then finds it loaded
        self._state: dict[str, Any] = {"state": "not started"}
        self._thread: threading.Thread | None = None

    def status(self) -> dict[str, Any]:
        with self._lock:
            return dict(self._state)

    def _set(self, **state: Any) -> None:
        with self._lock:
            self._state = state

    def start(self, allowed: bool, reason: str = "") -> None:
        """Warm the default profile in the background when `allowed` (the phase permits the neural model)."""
        if not allowed:
            self._set(state="skipped", reason=reason or "the operating phase does not allow the neural model")
            return
        self._set(state="loading", trigger="warm-up", started_at=time.time())
        self._thread = threading.Thread(target=self._warm, name="ansf-model-warmup", daemon=True)
        self._thread.start()

    def wait(self, timeout_s: float | None = None) -> None:
        """Until the warm-up started by `start` has ended (at once when none was started)."""
        if self._thread is not None:
            self._thread.join(timeout_s)

    def _warm(self) -> None:
        try:
            self.ensure(None, trigger="warm-up")
        except ModelUnavailable as exc:
            log.warning("model warm-up failed: %s", exc)
        except Exception:  # a warm-up must never take the server down
            log.exception("model warm-up failed")
            self._set(state="failed", reason="unexpected error; see the server log")

    def ensure(self, model: str | None, trigger: str = "first use") -> float | None:
        """Load `model` (None: the default profile) unless loaded; returns the load's milliseconds, None if it
        was loaded already. The load is recorded in `model_loads`."""
        from ansf_mcp.coordinator import neural

        profile = model or DEFAULT_PROFILE
        if profile in neural.loaded_profiles():
            return None
        with self._loading:
            if profile in neural.loaded_profiles():
                return None
            return self._load(neural, model, profile, trigger)

    def _load(self, neural: Any, model: str | None, profile: str, trigger: str) -> float:
        started = time.perf_counter()
        try:
            neural.load(model)
        except ModelUnavailable as exc:
            self._set(state="failed", profile=profile, reason=str(exc))
            raise
        elapsed_ms = round((time.perf_counter() - started) * 1000, 3)
        self._set(state="loaded", profile=profile, trigger=trigger, load_ms=elapsed_ms, loaded_at=time.time())
        try:
            with self.store.transaction() as conn:
                conn.execute(
                    "INSERT INTO model_loads (profile, trigger, elapsed_ms, created_at) VALUES (?, ?, ?, ?)",
                    (profile, trigger, elapsed_ms, time.time()),
                )
        except Exception:  # the figure is lost, the model is loaded: not worth failing the call
            log.exception("could not record the model load")
        log.info("model %s loaded in %.0f ms (%s)", profile, elapsed_ms, trigger)
        return elapsed_ms
