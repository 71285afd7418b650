"""Errors the board raises; the tool layer turns each into a clear error result."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ansf_mcp.store.base import Row


class BoardError(ValueError):
    """Base: the request cannot be carried out; nothing was written."""


class NotFound(BoardError):
    pass


class Conflict(BoardError):
    pass


class Refused(BoardError):
    """The request is well-formed but a rule forbids it (topology, capacity, phase)."""


class Repeat(Conflict):
    """Every task of the call is already on the board exactly as given: a repeat of an earlier call that succeeded
    (its answer lost). A Conflict to any caller that does not answer repeats itself, so nothing is written twice.
    `rows`: the tasks as the check read them, by id, with what the answer to the repeat says of each."""

    def __init__(self, message: str, ids: list[str], rows: dict[str, Row]):
        super().__init__(message)
        self.ids = ids
        self.rows = rows
