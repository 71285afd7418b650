"""The training corpus: which repositories' histories the coordinator learns from, and how they are sampled.

`training_repos.txt` and `heldout_repos.txt` (beside this file) list `owner/name commit`; docs/MODEL.md prints
them. The repositories themselves are not shipped: `ansf train --mirror DIR` reads them from DIR, where each is a
git directory at `DIR/owner+name/repo`, `DIR/owner+name` or `DIR/owner/name` (a clone or a bare mirror).
Never listed, trained, tuned or evaluated on: RESERVED, kept for independent checks.

A held-out repository must be held out from the people too: none of its TOP_AUTHORS most active authors (by
commits, aliases merged) may be among the TOP_AUTHORS of a training or validation repository, or a model could
win on it by recognising someone it learned elsewhere (`check_held_out`; `python -m ansf_mcp.lab.corpus --mirror
DIR` runs it on the shipped lists).

    python -m ansf_mcp.lab.corpus --mirror DIR [--heldout FILE] [--against FILE ...]
    python -m ansf_mcp.lab.corpus --mirror DIR --export FILE   # the training histories, for --histories
"""

from __future__ import annotations

import argparse
import re
import sys
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
# How many of a repository's most active authors must not be shared between held-out and other repositories.
TOP_AUTHORS = 5
EXPORT_FORMAT = "ansf-histories/1"


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


def export_histories(mirror: Path, refs: list[RepoRef], path: Path) -> int:
    """Write the histories `histories` reads to one compressed file (a machine without the mirror, such as a GPU
    host, trains on exactly the same data); returns its size in bytes."""
    import lzma
    import pickle

    found = histories(mirror, refs)
    for h in found:
        for c in h.commits:  # one copy of each path and name in the file: 95 repositories fit in ~28 MB
            c.files = [sys.intern(f) for f in c.files]
            c.author, c.name = sys.intern(c.author), sys.intern(c.name)
    with lzma.open(path, "wb", preset=6) as fh:
        pickle.dump({"format": EXPORT_FORMAT, "histories": found}, fh, protocol=pickle.HIGHEST_PROTOCOL)
    return path.stat().st_size


def load_histories(path: Path, refs: list[RepoRef]) -> list[replay.History]:
    """The histories of `refs`, in order, from an export; refuses one that lacks a repository or holds it at
    another commit. A pickle runs code when loaded: read only exports you wrote."""
    import lzma
    import pickle

    with lzma.open(path, "rb") as fh:
        data = pickle.load(fh)  # our own export: see the docstring
    if not isinstance(data, dict) or data.get("format") != EXPORT_FORMAT:
        raise ValueError(f"{path} is not a history export ({EXPORT_FORMAT})")
    by_name = {h.name: h for h in data["histories"]}
    out = []
    for r in refs:
        h = by_name.get(r.name)
        if h is None:
            raise ValueError(f"{path} lacks {r.name}")
        if re.fullmatch(r"[0-9a-f]{7,40}", r.commit or "") and not h.head.startswith(r.commit):
            raise ValueError(f"{path} holds {r.name} at {h.head[:12]}, the list pins {r.commit[:12]}")
        out.append(h)
    return out


def top_authors(history: replay.History, k: int = TOP_AUTHORS) -> list[tuple[str, set[str]]]:
    """The k most active authors (display name, every identity merged into them), most commits first."""
    ranked = sorted(history.commit_counts.items(), key=lambda kv: (-kv[1], kv[0]))[:k]
    return [(history.authors.get(key, key), history.identities.get(key, {key})) for key, _ in ranked]


def author_overlaps(held_out: list[replay.History], others: list[replay.History], k: int = TOP_AUTHORS) -> list[str]:
    """One line per (held-out repository, other repository, person) where a top-k author of both is one person
    (any shared e-mail, name or GitHub login); empty when the held-out list is held out."""
    found = []
    for h in held_out:
        mine = top_authors(h, k)
        for o in others:
            if o.name == h.name:
                found.append(f"{h.name} is on both lists")
                continue
            theirs = top_authors(o, k)
            for name, keys in mine:
                shared = next((other for other, their_keys in theirs if keys & their_keys), None)
                if shared is not None:
                    found.append(f"{h.name} shares a top-{k} author with {o.name}: {name} ({shared} there)")
    return found


def check_held_out(held_out: list[replay.History], others: list[replay.History], k: int = TOP_AUTHORS) -> None:
    """Raise ValueError naming every shared author, like read_list refuses a reserved repository."""
    found = author_overlaps(held_out, others, k)
    if found:
        raise ValueError("the held-out list is not held out: " + "; ".join(found))


def authors_only(mirror: Path, refs: list[RepoRef]) -> list[replay.History]:
    """The histories without the files each commit touched: enough to rank authors, and quick."""
    return [replay.read_history(locate(mirror, r.name), name=r.name, rev=r.commit, with_files=False) for r in refs]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ansf_mcp.lab.corpus", description="Check that the held-out "
                                     "repositories share none of their most active authors with the others.")
    parser.add_argument("--mirror", type=Path, required=True)
    parser.add_argument("--heldout", type=Path, default=HELDOUT_LIST)
    parser.add_argument("--against", type=Path, action="append", help="default: the training and validation lists")
    parser.add_argument("--top", type=int, default=TOP_AUTHORS)
    parser.add_argument(
        "--export", type=Path, metavar="FILE", help="instead: write the training list's histories to FILE (for "
        "`ansf train --histories FILE` on a machine without the mirror)"
    )
    args = parser.parse_args(argv)
    if args.export:
        refs = read_list(TRAINING_LIST)
        size = export_histories(args.mirror, refs, args.export)
        print(f"wrote {len(refs)} histories to {args.export} ({size} bytes)")
        return 0
    held = authors_only(args.mirror, read_list(args.heldout))
    others = [h for path in (args.against or [TRAINING_LIST, VALIDATION_LIST])
              for h in authors_only(args.mirror, read_list(path))]
    for h in held:
        print(f"{h.name}: " + ", ".join(name for name, _ in top_authors(h, args.top)))
    found = author_overlaps(held, others, args.top)
    for line in found:
        print(line, file=sys.stderr)
    print(f"{len(found)} shared author(s) between {len(held)} held-out and {len(others)} other repositories")
    return 1 if found else 0



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


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
