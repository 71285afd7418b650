"""Path confinement and file checks: every path a tool receives goes through here."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path, PurePosixPath

MAX_FILE_BYTES = 2_000_000
SKIP_DIRS = frozenset(
    {
        ".git", ".hg", ".svn", "node_modules", ".venv", "venv", "env", ".env", "__pycache__", ".tox", ".nox",
        ".mypy_cache", ".pytest_cache", ".ruff_cache", "build", "dist", "site-packages", ".cache", ".idea",
        ".vscode", "target", ".eggs",
    }
)


class PathRefused(ValueError):
    """A path that the semantic layer will not read; the message says why."""


def resolve_in_root(root: Path, relative_path: str | None, *, kind: str = "any") -> tuple[Path, str]:
    """Return (real path, relative posix path) for `relative_path` confined to `root`.

    kind: "file", "dir" or "any". Refuses absolute paths, `..`, symlinks leading out, missing paths.
    """
    root_real = root.resolve()
    if relative_path is None or relative_path.strip() in ("", ".", "./"):
        if kind == "file":
            raise PathRefused("a file path relative to the project root is required")
        return root_real, "."
    raw = relative_path.strip()
    if "\x00" in raw:
        raise PathRefused("path contains a NUL byte")
    posix = raw.replace("\\", "/")
    if posix.startswith("/") or re.match(r"^[A-Za-z]:", posix) or posix.startswith("~"):
        raise PathRefused(f"absolute paths are refused ({raw!r}); give a path relative to the project root")
    parts = PurePosixPath(posix).parts
    if ".." in parts:
        raise PathRefused(f"'..' is refused in {raw!r}; paths must stay inside the project root")
    candidate = root_real.joinpath(*parts)
    real = Path(os.path.realpath(candidate))
    if real != root_real and not real.is_relative_to(root_real):
        raise PathRefused(f"{raw!r} is a symlink leading outside the project root; refused")
    if not real.exists():
        raise PathRefused(f"{raw!r} does not exist in the project")
    if kind == "file" and not real.is_file():
        raise PathRefused(f"{raw!r} is not a file")
    if kind == "dir" and not real.is_dir():
        raise PathRefused(f"{raw!r} is not a directory")
    rel = real.relative_to(root_real).as_posix() if real != root_real else "."
    return real, rel


def check_text_file(path: Path, rel: str, max_bytes: int = MAX_FILE_BYTES) -> None:
    """Refuse huge and binary files with a reason."""
    size = path.stat().st_size
    if size > max_bytes:
        raise PathRefused(f"{rel} is {size} bytes; files over {max_bytes} bytes are refused (too large to analyse)")
    with path.open("rb") as fh:
        head = fh.read(8192)
    if b"\x00" in head:
        raise PathRefused(f"{rel} looks binary (NUL bytes); only text source files are analysed")


def read_text(path: Path) -> tuple[str, bool]:
    """Read a source file as text; undecodable bytes become U+FFFD. Returns (text, was_clean)."""
    data = path.read_bytes()
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        return data.decode("utf-8"), True
    except UnicodeDecodeError:
        return data.decode("utf-8", errors="replace"), False


def walk_files(root: Path, start: Path, extensions: frozenset[str] | None = None, limit: int = 20_000):
    """Yield real files under `start` (inside `root`), skipping vendored/virtualenv/VCS folders and symlinks out."""
    root_real = root.resolve()
    count = 0
    stack = [start]
    while stack:
        d = stack.pop()
        try:
            entries = sorted(os.scandir(d), key=lambda e: e.name)
        except OSError:
            continue
        dirs = []
        for e in entries:
            name = e.name
            try:
                if e.is_dir(follow_symlinks=False):
                    if name in SKIP_DIRS or name.endswith(".egg-info") or name.startswith("."):
                        continue
                    dirs.append(e.path)
                elif e.is_file(follow_symlinks=False):
                    if extensions is not None and os.path.splitext(name)[1].lower() not in extensions:
                        continue
                    yield Path(e.path)
                    count += 1
                    if count >= limit:
                        return
                elif e.is_symlink():
                    real = Path(os.path.realpath(e.path))
                    if real.is_file() and real.is_relative_to(root_real):
                        if extensions is None or real.suffix.lower() in extensions:
                            yield Path(e.path)
            except OSError:
                continue
        stack.extend(reversed(dirs))


def stat_fingerprint(root: Path, extensions: frozenset[str], h, walked: list[Path] | None = None) -> int:
    """Feed (relative path, mtime, size) of every source file into hash `h`; return the file count. `walked`
    receives every path in walk order, for a caller that needs the files as well (one walk, not two)."""
    n = 0
    root_s = str(root.resolve())
    for p in walk_files(root, root.resolve(), extensions):
        if walked is not None:
            walked.append(p)
        try:
            st = p.stat()
        except OSError:
            continue
        h.update(f"{str(p)[len(root_s):]}\0{stamp_ns(st)}\0{st.st_size}\n".encode("utf-8", "replace"))
        n += 1
    return n


def uri_to_path(uri: str) -> str:
    """The file system path of a `file://` URI (percent-escapes decoded)."""
    from urllib.parse import unquote, urlparse

    return unquote(urlparse(uri).path)


_LIBRARY_DIRS = ("site-packages", "dist-packages", "typeshed", "node_modules")


def outside_name(path: str) -> str:
    """A definition outside the project, named without this machine's layout: the part after the last library
    folder (`json/__init__.pyi`, `starlette/routing.py`), else the file name alone."""
    parts = Path(path).parts
    for i in range(len(parts) - 1, -1, -1):
        if parts[i] in _LIBRARY_DIRS or (parts[i].startswith("python") and i > 0 and parts[i - 1] == "lib"):
            rest = parts[i + 1:]
            if rest and rest[0] in ("stdlib", "stubs"):
                rest = rest[1:]
            if rest:
                return "/".join(rest)
    return parts[-1] if parts else ""


RACY_S = 1.0


def stamp_ns(st: os.stat_result) -> int:
    """When a file last changed, as far as its metadata can say: its status-change time where the system keeps
    one (Linux: any write or `utime` moves it, and no program can set it back), else its modification time.
    `cp -p`, `rsync -t` and `tar x` restore an old modification time on new content."""
    return max(st.st_mtime_ns, st.st_ctime_ns)


def settled(st: os.stat_result) -> bool:
    """Whether `st` (taken just before reading the file) can later stand for the content read: the file had not
    been modified for RACY_S. Timestamps are coarse (a few ms), so two writes within one tick can leave the same
    size, time and even a reused inode; a file read that soon after a write is compared by content next time."""
    return time.time() - stamp_ns(st) / 1e9 > RACY_S
