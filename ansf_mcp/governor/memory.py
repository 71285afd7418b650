"""Memory as the process's container sees it: cgroup v2, cgroup v1, else the host (psutil).

Inside a container psutil reports the host's memory, which says nothing about the limit we will be killed at,
so cgroup files win whenever they hold a real limit. A cgroup limit above the machine's memory is no bound at all:
the machine runs out first, so the bound in force is the smaller of the two, and the reading says which.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import psutil

# cgroup v1 reports "no limit" as a huge page-aligned number; anything above this is treated as unlimited.
UNLIMITED_V1 = 1 << 60


# Which bound `limit_bytes` is: the one the process meets first.
BOUND_CGROUP = "cgroup limit"
BOUND_MACHINE = "physical memory"


@dataclass(frozen=True)
class MemoryReading:
    used_bytes: int
    limit_bytes: int
    fraction: float
    source: str
    bound: str = BOUND_MACHINE


def _own_cgroup_paths() -> tuple[str | None, str | None]:
    """(v2 path, v1 memory-controller path) of this process, from /proc/self/cgroup."""
    v2 = v1 = None
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None, None
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        if parts[0] == "0" and parts[1] == "":
            v2 = parts[2]
        elif "memory" in parts[1].split(","):
            v1 = parts[2]
    return v2, v1


def _read_int(path: Path) -> int | None:
    try:
        raw = path.read_text().strip()
    except OSError:
        return None
    if raw == "max":
        return None
    try:
        return int(raw)
    except ValueError:
        return None


def _stat(path: Path, key: str) -> int:
    try:
        for line in path.read_text().splitlines():
            name, _, value = line.partition(" ")
            if name == key:
                return int(value)
    except (OSError, ValueError):
        pass
    return 0


def _candidates(root: Path, own: str | None) -> list[Path]:
    """This process's group and each group enclosing it, innermost first, then `root` itself (a container that
    mounts its own group at the root while /proc/self/cgroup names the host's path)."""
    dirs = []
    if own and own != "/":
        d = root / own.lstrip("/")
        while d != root and root in d.parents:
            dirs.append(d)
            d = d.parent
    dirs.append(root)
    return dirs


def _binding(groups: list[tuple[int, int | None]], total: int) -> tuple[int, int | None, int]:
    """(used, limit, index) of the group whose limit is nearest to being reached; the innermost group with no
    limit anywhere. A limit on an enclosing group binds its members as much as their own: a service in a scope
    without a limit, under a slice with one, is killed at the slice's. Each limit counts as at most `total` (the
    machine's memory) when groups are compared: a slice allowed more than the machine has binds no earlier than
    the machine, and a smaller limit elsewhere may bind first."""
    limited = [(used / min(limit, total or limit), i) for i, (used, limit) in enumerate(groups) if limit]
    i = max(limited)[1] if limited else 0
    return groups[i][0], groups[i][1], i


def _gib(n: int) -> str:
    return f"{n / 2**30:.1f} GiB"


def _reading(used: int, limit: int | None, total: int, version: str, enclosing: str) -> MemoryReading:
    """The reading against the bound in force: the cgroup's limit, or the machine's memory when there is no limit
    or the limit is above it (then the source says both figures)."""
    if limit is None:
        bound, source = total, f"{version} (no limit set; host memory as the limit)"
    elif total and limit > total:
        bound = total
        source = (f"{version}{enclosing} (its limit, {_gib(limit)}, is above the machine's {_gib(total)} of memory; "
                  "the machine's memory is the bound in force)")
    else:
        return MemoryReading(used, limit, used / limit if limit else 0.0, version + enclosing, BOUND_CGROUP)
    return MemoryReading(used, bound, used / bound if bound else 0.0, source, BOUND_MACHINE)


def _enclosing(where: list[Path], i: int, dirs: list[Path]) -> str:
    """How the source names a binding limit that is not this process's own group's."""
    if i == 0:
        return ""
    return f" (the limit of an enclosing group, /{where[i].relative_to(dirs[-1]).as_posix().lstrip('.')})"


def _host_total() -> int:
    return psutil.virtual_memory().total


def read_memory(cgroup_root: Path) -> MemoryReading:
    """Used memory excludes reclaimable page cache (inactive files), as the kernel's OOM decisions do."""
    own_v2, own_v1 = _own_cgroup_paths()
    found: list[tuple[int, int | None]] = []
    where: list[Path] = []
    v2_dirs = _candidates(cgroup_root, own_v2)
    for d in v2_dirs:
        current = _read_int(d / "memory.current")
        if current is None or not (d / "memory.max").exists():
            continue
        found.append((max(0, current - _stat(d / "memory.stat", "inactive_file")), _read_int(d / "memory.max")))
        where.append(d)
    if found:
        total = _host_total()
        used, limit, i = _binding(found, total)
        return _reading(used, limit, total, "cgroup v2", _enclosing(where, i, v2_dirs))
    v1_dirs = _candidates(cgroup_root / "memory", own_v1)
    for d in v1_dirs:
        usage = _read_int(d / "memory.usage_in_bytes")
        limit = _read_int(d / "memory.limit_in_bytes")
        if usage is None or limit is None:
            continue
        stat = d / "memory.stat"
        inactive = _stat(stat, "total_inactive_file") or _stat(stat, "inactive_file")
        found.append((max(0, usage - inactive), limit if limit < UNLIMITED_V1 else None))
        where.append(d)
    if found:
        total = _host_total()
        used, limit, i = _binding(found, total)
        return _reading(used, limit, total, "cgroup v1", _enclosing(where, i, v1_dirs))
    vm = psutil.virtual_memory()
    used = vm.total - vm.available
    return MemoryReading(used, vm.total, used / vm.total, "psutil (host memory)", BOUND_MACHINE)
