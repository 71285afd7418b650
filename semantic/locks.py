"""File locks that hold across threads and server processes on one machine: flock on lock files under the data
directory (never in the project), one per edited file, taken in one global order so two edits cannot deadlock."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

LOCK_WAIT_S = 30.0


class LockTimeout(RuntimeError):
    """Another edit held a file for longer than LOCK_WAIT_S."""


class FileLocks:
    def __init__(self, lock_dir: Path, wait_s: float = LOCK_WAIT_S) -> None:
        self.lock_dir = Path(lock_dir)
        self.wait_s = wait_s

    def _lock_file(self, path: Path) -> Path:
        key = hashlib.blake2b(os.path.realpath(path).encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()
        return self.lock_dir / f"{key}.lock"

    @contextlib.contextmanager
    def hold(self, paths: Iterable[Path]) -> Iterator[None]:
        """Exclusive locks on every path (each open of a lock file is its own flock owner, so threads of one
        process exclude each other too); released on exit, and by the kernel if the process dies. A lock file
        lives only while its lock is held, so the lock folder does not grow with every file ever edited."""
        self.lock_dir.mkdir(parents=True, exist_ok=True)
        files = sorted({self._lock_file(p) for p in paths})
        held: list[tuple[Path, int]] = []
        try:
            deadline = time.monotonic() + self.wait_s
            for lock in files:
                held.append((lock, self._acquire(lock, deadline)))
            yield
        finally:
            for lock, fd in held:
                # unlinked while still held: whoever opened this file meanwhile sees it is gone once it gets the
                # lock, and opens the path again
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(lock)
                os.close(fd)  # closing releases the flock

    def _acquire(self, lock: Path, deadline: float) -> int:
        while True:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                while True:
                    try:
                        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                        break
                    except BlockingIOError:
                        if time.monotonic() > deadline:
                            raise LockTimeout(f"another edit held a file for more than {self.wait_s:.0f} s; "
                                              "nothing was changed") from None
                        time.sleep(0.01)
                try:
                    current = os.stat(lock).st_ino
                except FileNotFoundError:
                    current = None
                if current == os.fstat(fd).st_ino:
                    return fd
            except BaseException:
                os.close(fd)
                raise
            os.close(fd)  # the holder before us removed this file: lock the path's new one
