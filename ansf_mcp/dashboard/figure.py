"""A figure the dashboard shows: a value, or None with the sample count that was not enough."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass
class Figure:
    value: float | None
    samples: int
    note: str = ""
    strategy: str | None = None  # which strategy a per-strategy figure is about

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)
