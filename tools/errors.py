"""Turning core errors into clear tool errors (is_error results) instead of tracebacks."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

from mcp.server.mcpserver.exceptions import ToolError
from pydantic import ValidationError

from ansf_mcp.board.errors import BoardError
from ansf_mcp.coordinator.episode import ModelUnavailable
from ansf_mcp.store.db import StoreError

EXPECTED = (BoardError, StoreError, ModelUnavailable, ValidationError, ValueError)


@contextmanager
def clear_errors() -> Iterator[None]:
    try:
        yield
    except ToolError:
        raise
    except ValidationError as exc:
        details = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'input'}: {e['msg']}" for e in exc.errors()[:5])
        raise ToolError(f"invalid input: {details}") from exc
    except EXPECTED as exc:
        raise ToolError(str(exc)) from exc
    except (OSError, sqlite3.Error) as exc:  # a full disk or an unwritable data directory
        raise ToolError(f"storage error: {exc}") from exc

