"""Errors the board raises; the tool layer turns each into a clear error result."""


class BoardError(ValueError):
    """Base: the request cannot be carried out; nothing was written."""


class NotFound(BoardError):
    pass


class Conflict(BoardError):
    pass


class Refused(BoardError):
    """The request is well-formed but a rule forbids it (topology, capacity, phase)."""
