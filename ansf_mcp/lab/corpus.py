"""The training corpus: which repositories' histories the coordinator learns from, and how they are sampled.

`training_repos.txt` and `heldout_repos.txt` (beside this file) list `owner/name commit`; docs/MODEL.md prints
them. The repositories themselves are not shipped: `ansf train --mirror DIR` reads them from DIR, where each is a
git directory at `DIR/owner+name/repo`, `DIR/owner+name` or `DIR/owner/name` (a clone or a bare mirror).
Never listed, trained, tuned or evaluated on: RESERVED, kept for independent checks.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ansf_mcp.lab import replay

HERE = Path(__file__).resolve().parent
TRAINING_LIST = HERE / "training_repos.txt"
HELDOUT_LIST = HERE / "heldout_repos.txt"
VALIDATION_LIST = HERE / "validation_repos.txt"
RESERVED = frozenset(
    {
        "pallets/click",
        "pallets/flask",
        "psf/requests",
        "encode/httpx",
        "pytest-dev/pytest",
        "python-poetry/poetry",
    }
)


@dataclass(frozen=True)
class RepoRef:
    name: str  # owner/name
    commit: str


def read_list(path: Path) -> list[RepoRef]:
    refs = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, commit = line.split()[:2]
        if name.lower() in RESERVED:
            raise ValueError(f"{name} is reserved for independent checks and may not be used")
        refs.append(RepoRef(name, commit))
    return refs


def locate(mirror: Path, name: str) -> Path:
    owner, repo = name.split("/", 1)
    for candidate in (mirror / f"{owner}+{repo}" / "repo", mirror / f"{owner}+{repo}", mirror / owner / repo):
        if candidate.exists():
            return candidate
    raise FileNotFoundError(f"{name} is not under {mirror} (looked for {owner}+{repo}/repo, {owner}/{repo})")


def histories(mirror: Path, refs: list[RepoRef]) -> list[replay.History]:
    return [replay.read_history(locate(mirror, r.name), name=r.name, rev=r.commit) for r in refs]


def sample_windows(
    history: replay.History,
    rng: np.random.Generator,
    count: int,
    *,
    sizes: tuple[int, int] = (8, 48),
    max_agents: int = 16,
) -> list[replay.ReplayEpisode]:
    """Up to `count` training episodes from random windows (random sizes, tags from folders half of the time)."""
    out: list[replay.ReplayEpisode] = []
    n = len(history.commits)
    tries = 0
    while len(out) < count and tries < count * 4:
        tries += 1
        size = int(rng.integers(sizes[0], sizes[1] + 1))
        if n - size <= replay.WARMUP_COMMITS:
            break
        start = int(rng.integers(replay.WARMUP_COMMITS, n - size + 1))
        ep = replay.episode_at(history, start, size, tags="dirs" if rng.random() < 0.5 else "none")
        if ep is not None and len(ep.episode.agents) <= max_agents:
            out.append(ep)
    return out
