"""Which file extensions each served language has (no imports: the start-up check reads it cheaply)."""

from __future__ import annotations

PY_EXT = frozenset({".py", ".pyi"})
TS_EXT = frozenset({".ts", ".tsx", ".js", ".jsx", ".mjs", ".cjs", ".mts", ".cts"})
C_EXT = frozenset({".c", ".h", ".cc", ".cpp", ".cxx", ".hpp", ".hh", ".hxx", ".ipp"})
GO_EXT = frozenset({".go"})

LANGUAGE_EXTENSIONS: dict[str, frozenset[str]] = {"python": PY_EXT, "typescript": TS_EXT, "c": C_EXT, "go": GO_EXT}
SOURCE_EXTENSIONS = frozenset().union(*LANGUAGE_EXTENSIONS.values())
