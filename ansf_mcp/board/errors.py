"""Errors the board raises; the tool layer turns each into a clear error result."""


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
    (its answer lost). A Conflict to any caller that does not answer repeats itself, so nothing is written twice."""

    def __init__(self, message: str, ids: list[str]):
        super().__init__(message)
        self.ids = ids
