"""Edits to the project's files: planned in memory, checked, then written atomically per file, all or nothing.

A plan is a list of `FileChange`s (old bytes, new text). `commit` first checks that no file changed on disk
since it was read, then writes each file through a temporary file in the same folder and `os.replace`; when a
write fails half-way, the files already written are put back from their old bytes, so a workspace edit lands
whole or not at all. Only UTF-8 text files are edited (a BOM and the file's line endings are kept).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import secrets
import stat
import textwrap
from dataclasses import dataclass
from pathlib import Path

from ansf_mcp.semantic.positions import from_server

BOM = b"\xef\xbb\xbf"


class EditError(ValueError):
    """An edit that was refused or could not be applied; nothing was written."""


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
    return "\r\n" if "\r\n" in text else "\n"


def reindent(body: str, indent: str, newline: str) -> list[str]:
    """`body` dedented, then indented to `indent`; returned as lines with `newline` endings."""
    body = textwrap.dedent(body.replace("\r\n", "\n").strip("\n"))
    return [(indent + ln if ln.strip() else "") + newline for ln in body.split("\n")]


def apply_lsp_edits(text: str, edits: list[dict], encoding: str, rel: str) -> str:
    """Apply LSP TextEdits (positions in the server's column unit) to `text`."""
    lines = text.splitlines(keepends=True)
    starts = [0]
    for ln in lines:
        starts.append(starts[-1] + len(ln))

    def offset(pos: dict) -> int:
        line, units = pos["line"], pos["character"]
        if line >= len(lines):
            return len(text)
        content = lines[line].rstrip("\r\n")
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


def write_atomic(path: Path, data: bytes) -> None:
    """Write `data` to `path` through a temporary file in the same folder and `os.replace` (keeps the mode)."""
    mode = stat.S_IMODE(path.stat().st_mode) if path.exists() else 0o644
    tmp = path.with_name(f".{path.name}.ansf-{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):  # make the rename itself durable
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


def commit(changes: list[FileChange]) -> None:
    """Write every change or none. Refuses when a file changed on disk since it was read."""
    for ch in changes:
        try:
            now = ch.path.read_bytes()
        except OSError as exc:
            raise EditError(f"{ch.rel} cannot be read any more ({exc}); nothing was changed") from exc
        if now != ch.old:
            raise EditError(f"{ch.rel} changed on disk while the edit was prepared; nothing was changed")
    done: list[FileChange] = []
    try:
        for ch in changes:
            if ch.new_bytes != ch.old:
                write_atomic(ch.path, ch.new_bytes)
                done.append(ch)
    except OSError as exc:
        failed = []
        for ch in reversed(done):
            try:
                write_atomic(ch.path, ch.old)
            except OSError:
                failed.append(ch.rel)
        if failed:
            raise EditError(f"writing failed ({exc}) and {', '.join(failed)} could not be restored") from exc
        raise EditError(f"writing failed ({exc}); every file was restored, nothing was changed") from exc
