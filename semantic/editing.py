"""Edits to the project's files: planned in memory against the content read, then committed all or nothing.

A plan is a list of `FileChange`s (old bytes, new text). The caller holds the files' locks (`locks.FileLocks`);
`journal.commit` writes the before- and after-images to a journal in the data directory, compares each file with
what the plan read immediately before replacing it, and replaces files by rename from temporary files outside the
project; a crash part-way is rolled back at the next start. Only UTF-8 text files are edited (a BOM and the
file's line endings are kept).
"""

from __future__ import annotations

import hashlib
import itertools
import textwrap
from dataclasses import dataclass
from pathlib import Path

from ansf_mcp.semantic.positions import from_server, split_lines

BOM = b"\xef\xbb\xbf"


class EditError(ValueError):
    """An edit that was refused or could not be applied; nothing was written."""


class ChangedOnDisk(EditError):
    """A file is no longer the content the edit was planned against (another program wrote it meanwhile)."""


@dataclass
class FileChange:
    path: Path
    rel: str
    old: bytes
    new_text: str
    bom: bool

    @property
    def new_bytes(self) -> bytes:
        return (BOM if self.bom else b"") + self.new_text.encode("utf-8")


def digest(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def load(path: Path, rel: str) -> tuple[bytes, str, bool]:
    """(raw bytes, text with its own line endings, had a BOM). Refuses files that are not clean UTF-8."""
    raw = path.read_bytes()
    body = raw[3:] if raw.startswith(BOM) else raw
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise EditError(f"{rel} is not valid UTF-8 (byte {exc.start}); it is not edited, to avoid corrupting it") \
            from exc
    return raw, text, raw.startswith(BOM)


def newline_of(text: str) -> str:
    if "\r\n" in text:
        return "\r\n"
    # a file with lone CRs only (classic Mac OS) keeps them: an LF after its last CR would pair up with it as one
    # CRLF break, swallowing a blank line and shifting the lines the answer names
    return "\r" if "\r" in text and "\n" not in text else "\n"


def reindent(body: str, indent: str, newline: str) -> list[str]:
    """`body` dedented, then indented to `indent`; returned as lines with `newline` endings."""
    body = textwrap.dedent(body.replace("\r\n", "\n").strip("\n"))
    return [(indent + ln if ln.strip() else "") + newline for ln in body.split("\n")]


def apply_lsp_edits(text: str, edits: list[dict], encoding: str, rel: str) -> str:
    """Apply LSP TextEdits (positions in the server's column unit) to `text`."""
    lines = split_lines(text, keepends=True)
    starts = [0]
    for ln in lines:
        starts.append(starts[-1] + len(ln))

    def offset(pos: dict) -> int:
        line, units = pos["line"], pos["character"]
        if line >= len(lines):
            return len(text)
        content = lines[line].rstrip("\r\n")
        # jedi-language-server names the end of a file that ends in a line break as one unit past that break on
        # the last line; clamped to the line's end (the spec's rule for a too-large column) its replacement text,
        # which ends in a line break, would add a blank line to the file
        if line == len(lines) - 1 and content != lines[line] and units == len(lines[line]):
            return len(text)
        return starts[line] + min(from_server(content, units, encoding), len(content))

    spans = sorted(((offset(e["range"]["start"]), offset(e["range"]["end"]), e.get("newText", "")) for e in edits),
                   key=lambda t: (t[0], t[1]))
    for (_s1, e1, _t1), (s2, _e2, _t2) in itertools.pairwise(spans):
        if s2 < e1:
            raise EditError(f"the language server's edits for {rel} overlap; nothing was changed")
    out = text
    for start, end, new in reversed(spans):
        out = out[:start] + new + out[end:]
    return out


