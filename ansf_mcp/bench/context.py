"""What every suite is given, and how it reports progress and notices cancellation."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class BenchCancelled(Exception):
    """The caller cancelled; the suite stops at its next progress report."""


class SuiteInputError(Exception):
    """What a suite was given cannot be used (a path that is no git repository, too little history to replay).

    A known failure, said in one sentence: `ansf bench` refuses a named suite's input before anything runs (exit
    2, nothing stored), and a suite of `all` that meets it reports the sentence in its section, without a
    traceback.
    """


@dataclass
class SuiteContext:
    quick: bool
    project: Path
    data_dir: Path
    # The git repository the replay suite reads (None: the project).
    repo: Path | None = None
    # The --store setting (the scale suite uses a postgresql:// one's server for its scratch databases).
    store: str | None = None
    report: Callable[[float, str], None] = lambda fraction, message: None
    cancelled: threading.Event = field(default_factory=threading.Event)
    # Results of suites already run in the same `all` run, by suite name.
    previous: dict[str, dict[str, Any]] = field(default_factory=dict)

    def progress(self, fraction: float, message: str) -> None:
        if self.cancelled.is_set():
            raise BenchCancelled("benchmark cancelled")
        self.report(max(0.0, min(1.0, fraction)), message)

    def scaled(self, start: float, end: float) -> Callable[[float, str], None]:
        """A progress callback for a sub-step that owns [start, end] of this suite's progress."""
        return lambda f, m: self.progress(start + (end - start) * f, m)
