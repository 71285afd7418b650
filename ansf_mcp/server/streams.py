"""A stream of the SDK's, wrapped: what the wrappers in stdio.py and json_answers.py share (everything not
overridden goes to the inner stream, and entering or leaving the wrapper enters or leaves it)."""

from __future__ import annotations

from types import TracebackType
from typing import Any, Self


class WrappedStream:
    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def __aenter__(self) -> Self:
        await self._inner.__aenter__()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> bool | None:
        return await self._inner.__aexit__(exc_type, exc, tb)
