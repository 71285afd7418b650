"""Columns: code points inside the semantic layer and in every answer; the server's own units on the wire.

LSP counts a column in UTF-16 code units unless client and server agreed on another encoding at initialise
(`general.positionEncodings` offered, `capabilities.positionEncoding` answered; utf-8, utf-16 or utf-32 =
code points). A line with an emoji or CJK text has different columns in each, so every column crossing the
boundary goes through here, with the text of its line.
"""

from __future__ import annotations

import re

UTF8, UTF16, UTF32 = "utf-8", "utf-16", "utf-32"
OFFERED = [UTF32, UTF16]  # what the client offers: code points first, the LSP default second

# `str.splitlines` also breaks at these; LSP and Python's tokenizer do not, and they may stand inside a line of
# source (^L between sections, U+2028 in a comment or string), where they would shift every later line number
_OTHER_BREAKS = re.compile("[\v\f\x1c-\x1e\x85\u2028\u2029]")
_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+")


def split_lines(text: str, keepends: bool = False) -> list[str]:
    """`text` as the lines a language server numbers: broken at CRLF, CR and LF only."""
    if not _OTHER_BREAKS.search(text):
        return text.splitlines(keepends)
    lines = _LINE.findall(text)
    return lines if keepends else [ln.rstrip("\r\n") for ln in lines]


def _units(ch: str, encoding: str) -> int:
    cp = ord(ch)
    if encoding == UTF16:
        return 2 if cp > 0xFFFF else 1
    if encoding == UTF8:
        return 1 if cp < 0x80 else 2 if cp < 0x800 else 3 if cp < 0x10000 else 4
    return 1


def to_server(line: str, column: int, encoding: str) -> int:
    """0-based code-point column in `line` -> the server's units."""
    if encoding == UTF32 or line.isascii():
        return column
    return sum(_units(ch, encoding) for ch in line[:column]) + max(0, column - len(line))


def from_server(line: str, units: int, encoding: str) -> int:
    """0-based column in the server's units -> code points (a column inside a surrogate pair rounds down)."""
    if encoding == UTF32 or line.isascii():
        return units
    seen = 0
    for i, ch in enumerate(line):
        w = _units(ch, encoding)
        if seen + w > units:
            return i
        seen += w
    return len(line) + (units - seen)
