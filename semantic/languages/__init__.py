"""The served languages: one file each (semantic/languages/<name>.py) and one line in LANGUAGES below.

Everything that lists languages reads this registry: file extensions, names in messages, server specs, the
background index. Importing it is cheap (a spec imports the language-server machinery when called).
"""

from __future__ import annotations

from pathlib import Path

from ansf_mcp.semantic.languages import c, go, python, typescript
from ansf_mcp.semantic.languages._record import Language, LanguageUnavailable, Progress, bin_candidates

LANGUAGES: tuple[Language, ...] = (python.LANGUAGE, typescript.LANGUAGE, c.LANGUAGE, go.LANGUAGE)

BY_KEY: dict[str, Language] = {lang.key: lang for lang in LANGUAGES}
LANGUAGE_EXTENSIONS: dict[str, frozenset[str]] = {lang.key: lang.extensions for lang in LANGUAGES}
LANGUAGE_NAMES: dict[str, str] = {lang.key: lang.name for lang in LANGUAGES}
SOURCE_EXTENSIONS: frozenset[str] = frozenset().union(*LANGUAGE_EXTENSIONS.values())

__all__ = ["BY_KEY", "LANGUAGES", "LANGUAGE_EXTENSIONS", "LANGUAGE_NAMES", "SOURCE_EXTENSIONS", "Language",
           "LanguageUnavailable", "bin_candidates", "language_of", "make_spec", "supported"]

# Languages we recognise but cannot serve here: name and why/how.
UNSUPPORTED = {
    ".rs": ("Rust", "rust-analyzer is not obtainable from a package registry reachable here; not supported yet"),
    ".java": ("Java", "Eclipse JDT LS needs a download that is not available here; not supported yet"),
    ".kt": ("Kotlin", "kotlin-language-server needs a download that is not available here; not supported yet"),
    ".cs": ("C#", "OmniSharp needs a download that is not available here; not supported yet"),
    ".rb": ("Ruby", "solargraph is not supported yet"),
    ".php": ("PHP", "intelephense is not supported yet"),
    ".dart": ("Dart", "the Dart SDK is not supported yet"),
    ".ex": ("Elixir", "elixir-ls is not supported yet"),
    ".exs": ("Elixir", "elixir-ls is not supported yet"),
    ".swift": ("Swift", "sourcekit-lsp is not supported yet"),
    ".scala": ("Scala", "metals is not supported yet"),
    ".lua": ("Lua", "lua-language-server is not supported yet"),
}


def supported(with_extensions: bool = False) -> str:
    """'Python, TypeScript/JavaScript, ...' (with an example extension each on request), for messages."""
    if not with_extensions:
        return ", ".join(lang.name for lang in LANGUAGES)
    return ", ".join(f"{lang.name} ({'/'.join(sorted(lang.extensions)[:3])})" for lang in LANGUAGES)


def language_of(path: Path) -> str:
    ext = path.suffix.lower()
    for lang in LANGUAGES:
        if ext in lang.extensions:
            return lang.key
    if ext in UNSUPPORTED:
        name, why = UNSUPPORTED[ext]
        raise LanguageUnavailable(name, f"{name} ({path.name}): {why}. Supported: {supported()}.")
    raise LanguageUnavailable(ext or path.name, f"no language server handles '{path.name}' (extension "
                              f"{ext or 'none'!r}); supported: {supported(with_extensions=True)}")


def make_spec(key: str, root: Path, lsp_dir: Path, progress: Progress | None = None):  # -> ServerSpec
    lang = BY_KEY.get(key)
    if lang is None:
        raise LanguageUnavailable(key, f"unknown language {key!r}")
    return lang.spec(root, lsp_dir, progress)
