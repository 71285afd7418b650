"""What a served language is: one record per language, read by everything that lists languages."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ansf_mcp.semantic.lsp import ServerSpec

Progress = Callable[[str], None]


class LanguageUnavailable(RuntimeError):
    """Explicit answer for an unsupported language or a missing server (names the language, says how to enable)."""

    def __init__(self, language: str, message: str):
        super().__init__(message)
        self.language = language


@dataclass(frozen=True)
class Language:
    """A served language. `spec` builds its server's launch record (root, lsp_dir, progress) or raises
    LanguageUnavailable; `installed` says whether it starts without a download (the background index only uses
    those). Module import stays cheap: a spec imports what it needs when called."""

    key: str
    name: str
    extensions: frozenset[str]
    spec: Callable[[Path, Path, Progress | None], ServerSpec]
    installed: Callable[[Path], bool] = lambda _lsp_dir: True


def bin_candidates(name: str) -> list[str]:
    """Executables called `name`: next to this interpreter first, then on PATH."""
    out = [str(Path(sys.executable).parent / name)]
    found = shutil.which(name)
    if found:
        out.append(found)
    return [c for c in out if os.path.isfile(c) and os.access(c, os.X_OK)]
