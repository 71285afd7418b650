"""A toolbox that registers only some of a family's tools (`ansf serve --tools agent`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ansf_mcp.tools.answers import TextRenderer
from ansf_mcp.tools.registry import Kind, Toolbox, ToolServer


class Subset(Toolbox):
    """Registers the tools named in `allowed` the one way (`Toolbox.add`) and skips the rest of the family."""

    def __init__(self, server: ToolServer, allowed: frozenset[str]) -> None:
        super().__init__(server)
        self.allowed = allowed

    def add(self, kind: Kind, title: str, *, text: TextRenderer | None = None,
            meta: dict[str, Any] | None = None) -> Callable[[Any], Any]:
        register = super().add(kind, title, text=text, meta=meta)
        return lambda fn: register(fn) if fn.__name__ in self.allowed else fn
