"""All-or-none commits of multi-file edits, across a crash.

A transaction is a folder `<data_dir>/edits/<id>/` holding each file's before- and after-image and a manifest,
all fsynced before the first project file is touched, and a lock file `<id>.lock` its owner holds (flock) for
the whole transaction. Files are replaced by rename from the after-images (temporary files outside the project;
only when the data directory is on another file system is a temporary file made beside the target, and the
manifest names it first). The next start (`recover`) rolls back any transaction whose owner is gone: every file
that holds its after-image gets its before-image back, and the temporary files go.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import json
import logging
import os
import secrets
import shutil
import stat
import time
from pathlib import Path

from ansf_mcp.semantic.editing import ChangedOnDisk, EditError, FileChange, digest

log = logging.getLogger(__name__)

JOURNAL = "edits"


def _write_synced(path: Path, data: bytes, mode: int = 0o600) -> None:
    with open(path, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.chmod(path, mode)


def _sync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _mode(path: Path) -> int:
    try:
        return stat.S_IMODE(path.stat().st_mode)
    except OSError:
        return 0o644


def _same_device(a: Path, b: Path) -> bool:
    try:
        return a.stat().st_dev == b.stat().st_dev
    except OSError:
        return False


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100
_libc = None


def _exchange(a: Path, b: Path) -> bool:
    """Swap two names atomically (renameat2 RENAME_EXCHANGE); False where the system cannot."""
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    func = getattr(_libc, "renameat2", None)
    if func is None:
        return False
    if func(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(b))


def _replace_from(image: Path, target: Path, side_tmp: str | None, expected: bytes | None = None) -> None:
    """`target` becomes `image`'s bytes by one rename: from the image itself when both are on one file system,
    else through `side_tmp` (a name beside the target that the manifest already lists).

    With `expected` (what the target must hold), the names are swapped atomically and what was swapped out is
    compared: a save another program made in the last moment is put back and ChangedOnDisk raised, never lost.
    """
    source = image
    if side_tmp is not None:
        source = Path(side_tmp)
        shutil.copyfile(image, source)
        os.chmod(source, _mode(image))
        with open(source, "rb") as fh:
            os.fsync(fh.fileno())
    if expected is None or not _exchange(source, target):
        os.replace(source, target)
        return
    try:
        if source.read_bytes() != expected:  # what the target held at the instant of the swap
            _exchange(source, target)  # theirs goes back
            raise ChangedOnDisk(f"{target.name} was saved by another program at the moment of writing; their save "
                                "is kept and nothing was changed")
    finally:
        with contextlib.suppress(OSError):
            os.unlink(source)


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None


def commit(changes: list[FileChange], data_dir: Path) -> None:
    """Write every change or none; the caller holds the files' locks. Raises ChangedOnDisk when a file is not
    what the plan read (checked for all files first, and again for each just before its rename)."""
    changes = [ch for ch in changes if ch.new_bytes != ch.old]
    if not changes:
        return
    for ch in changes:
        if _read(ch.path) != ch.old:
            raise ChangedOnDisk(f"{ch.rel} changed on disk while the edit was prepared; nothing was changed")
    root = Path(data_dir) / JOURNAL
    root.mkdir(parents=True, exist_ok=True)
    tid = f"{time.time_ns()}-{os.getpid()}-{secrets.token_hex(4)}"
    owner = os.open(root / f"{tid}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(owner, fcntl.LOCK_EX)  # before the folder exists: recovery never takes a live transaction
    txn = root / tid
    keep = False  # the journal stays for the next start only when a roll-back itself failed
    try:
        try:
            txn.mkdir()
            entries = []
            for i, ch in enumerate(changes):
                mode = _mode(ch.path)
                _write_synced(txn / f"{i}.before", ch.old, mode)
                _write_synced(txn / f"{i}.after", ch.new_bytes, mode)
                side = None if _same_device(txn, ch.path.parent) else \
                    str(ch.path.with_name(f".{ch.path.name}.ansf-{secrets.token_hex(4)}.tmp"))
                entries.append({"path": str(ch.path), "rel": ch.rel, "before": digest(ch.old),
                                "after": digest(ch.new_bytes), "side_tmp": side})
            _write_synced(txn / "manifest.json", json.dumps({"files": entries}).encode())
            _sync_dir(txn)
        except OSError as exc:
            raise EditError(f"the edit journal could not be written under {root} ({exc}); nothing was "
                            "changed") from exc
        done: list[int] = []
        try:
            for i, ch in enumerate(changes):
                if _read(ch.path) != ch.old:  # compare-and-swap: the last look before the rename...
                    raise ChangedOnDisk(f"{ch.rel} changed on disk while the edit was being written; nothing was "
                                        "changed")
                done.append(i)  # before the swap: a failure after it still puts this file back
                # ...and, where the system can swap names, what the swap took out is compared too
                _replace_from(txn / f"{i}.after", ch.path, entries[i]["side_tmp"], ch.old)
        except (OSError, ChangedOnDisk) as exc:
            failed = _roll_back(txn, [entries[i] for i in done], list(done))
            if failed:
                keep = True
                raise EditError(f"writing failed ({exc}) and {', '.join(failed)} could not be restored (the next "
                                "start tries again)") from exc
            if isinstance(exc, ChangedOnDisk):
                raise
            raise EditError(f"writing failed ({exc}); every file was restored, nothing was changed") from exc
        for parent in {ch.path.parent for ch in changes}:
            _sync_dir(parent)
    finally:
        if not keep:
            _discard(txn)
            with contextlib.suppress(OSError):
                os.unlink(root / f"{tid}.lock")
        os.close(owner)


def _discard(txn: Path) -> None:
    """Forget a transaction: the manifest goes first, so a crash while the images are deleted (in any order)
    never leaves a manifest whose before-images are gone."""
    with contextlib.suppress(OSError):
        os.unlink(txn / "manifest.json")
    _sync_dir(txn)
    shutil.rmtree(txn, ignore_errors=True)


def _roll_back(txn: Path, entries: list[dict], indexes: list[int]) -> list[str]:
    """Put back the before-image of every listed file that holds its after-image; the files that could not be."""
    failed = []
    for i, entry in zip(indexes, entries, strict=True):
        target = Path(entry["path"])
        current = _read(target)
        if current is not None and digest(current) == entry["after"]:
            try:
                image = txn / f"{i}.before"
                keep = txn / f"{i}.restore"
                shutil.copyfile(image, keep)
                os.chmod(keep, _mode(image))
                side = entry["side_tmp"]
                _replace_from(keep, target, side)
            except OSError as exc:
                log.error("could not restore %s from %s: %s", entry["rel"], txn, exc)
                failed.append(entry["rel"])
                continue
        side = entry.get("side_tmp")
        if side:
            with contextlib.suppress(OSError):
                os.unlink(side)
        _sync_dir(target.parent)
    return failed


def recover(data_dir: Path) -> int:
    """Roll back every transaction whose owner died part-way (a crash, SIGKILL); returns how many. Transactions
    of live owners (another server on this data directory) are left alone."""
    root = Path(data_dir) / JOURNAL
    if not root.is_dir():
        return 0
    rolled = 0
    for lock in sorted(root.glob("*.lock")):
        tid = lock.stem
        try:
            fd = os.open(lock, os.O_RDWR)
        except OSError:
            continue
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # its owner is alive
            txn = root / tid
            manifest = _read(txn / "manifest.json")
            if manifest is not None:
                try:
                    entries = json.loads(manifest)["files"]
                except (ValueError, KeyError):
                    entries = None
                if entries is not None:
                    failed = _roll_back(txn, entries, list(range(len(entries))))
                    if failed:
                        log.error("edit journal %s: could not restore %s; the journal is kept", tid, failed)
                        continue
                    rolled += 1
                    log.warning("rolled back an edit that a crash interrupted (%d file(s))", len(entries))
            _discard(txn)
            with contextlib.suppress(OSError):
                os.unlink(lock)
        finally:
            os.close(fd)
    return rolled
