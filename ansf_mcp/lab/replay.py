"""Real coordination episodes from a repository's git history (docs/COORDINATION.md, "Quality on real work").

A repository is a record of who did which task. Agents are its authors (aliases merged, bots dropped); an agent's
history is its earlier commit subjects, a commit that a later "Revert" undid counting as a failure; the tasks of
an episode are a window of consecutive later commits; capacity is how many of them each author really wrote;
the truth of a task is its author.

Nothing here ships other people's commit texts: episodes are built on the user's machine from the user's (or a
fetched) repository, on demand.
"""

from __future__ import annotations

import re
import subprocess
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from ansf_mcp.coordinator.episode import Episode, EpisodeAgent, EpisodeTask, HistoryItem
from ansf_mcp.coordinator.text import style_blind

TagSource = Literal["none", "dirs"]
# "kept": commit subjects as their authors wrote them; "blind": through text.style_blind, as if one person had
# filed every task (the case on a board, where tasks are not written by the agent who does them).
TextMode = Literal["kept", "blind"]
TEXT_MODES: tuple[TextMode, ...] = ("kept", "blind")
# Authors' earlier commits kept as history (the network reads at most 63; the rest says little about today).
HISTORY_KEEP = 60
MIN_WORDS = 3
# Commits before the first window, so authors have a past to be judged on.
WARMUP_COMMITS = 100

_BOT = re.compile(
    r"\[bot\]|(^|[-_. ])bot($|[-_. @])|dependabot|renovate|greenkeeper|github-actions|pre-commit-ci|"
    r"snyk|imgbot|codecov|mergify|semantic-release|allcontributors|weblate|transifex|travis|jenkins|"
    r"web-flow|copilot|auto-?merge",
    re.IGNORECASE,
)
_HOUSEKEEPING = re.compile(
    r"^\s*(merge\b|bump\b|release\b|prepare\b.*\brelease|version\b|v?\d+(\.\d+)+\b|update changelog|"
    r"changelog\b|back to development|post-release|pre-release|\[?ci skip\]?$)",
    re.IGNORECASE,
)
_REVERT_SUBJECT = re.compile(r'^\s*revert\s*[:"]?\s*"?(?P<subject>.*?)"?\s*$', re.IGNORECASE)
_REVERT_BODY = re.compile(r"This reverts commit ([0-9a-f]{7,40})")
# Names too generic to merge identities on.
_GENERIC_NAMES = frozenset({"root", "unknown", "user", "admin", "github", "none", "ubuntu", "localhost"})
_FIELD, _RECORD = "\x1f", "\x1e"


@dataclass
class Commit:
    sha: str
    author: str  # canonical author key after alias merging
    name: str
    time: int
    subject: str
    files: list[str] = field(default_factory=list)
    reverted_at: int | None = None  # index (in the full commit list) of the commit that reverted this one


@dataclass
class History:
    """A repository's usable commits in order, and the reverts, ready to be cut into episodes."""

    repo: str
    name: str
    head: str
    commits: list[Commit]  # tasks: no merges, bots, housekeeping, reverts or subjects under MIN_WORDS
    authors: dict[str, str]  # canonical key -> display name
    dropped: Counter = field(default_factory=Counter)
    # canonical key -> every identity merged into it ("e:" e-mails, "n:" names and GitHub logins), and how many
    # non-merge commits (any subject, bots left out) it wrote: who a repository's most active people are.
    identities: dict[str, set[str]] = field(default_factory=dict)
    commit_counts: Counter = field(default_factory=Counter)


class ReplayError(RuntimeError):
    """The path is not a readable git repository, or it has too little history to replay."""


def _git(repo: Path, *args: str) -> str:
    try:
        out = subprocess.run(
            ["git", "-C", str(repo), *args], capture_output=True, text=True, errors="replace", timeout=600
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise ReplayError(f"cannot run git on {repo}: {exc}") from exc
    if out.returncode != 0:
        raise ReplayError(f"{repo} is not a readable git repository: {out.stderr.strip()[:300]}")
    return out.stdout


class _Aliases:
    """Union-find over author identities: one person whether they commit with another e-mail or name."""

    def __init__(self) -> None:
        self.parent: dict[str, str] = {}

    def find(self, key: str) -> str:
        self.parent.setdefault(key, key)
        while self.parent[key] != key:
            self.parent[key] = self.parent[self.parent[key]]
            key = self.parent[key]
        return key

    def union(self, a: str, b: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def _identity_keys(name: str, email: str) -> list[str]:
    keys = []
    email = email.strip().lower()
    if email and "@" in email:
        keys.append("e:" + email)
        m = re.match(r"^(?:\d+\+)?([^@]+)@users\.noreply\.github\.com$", email)
        if m:
            keys.append("n:" + m.group(1))  # a GitHub login is often also the commit name
    norm = " ".join(name.lower().split())
    if norm and norm not in _GENERIC_NAMES:
        keys.append("n:" + norm)
    return keys or ["n:" + (norm or "unknown")]


def is_bot(name: str, email: str) -> bool:
    return bool(_BOT.search(name) or _BOT.search(email))


def read_history(
    repo: Path,
    *,
    name: str | None = None,
    rev: str = "HEAD",
    max_commits: int | None = None,
    with_files: bool = True,
) -> History:
    """Parse `git log` of `rev`, oldest first, and prepare the commits that can serve as tasks."""
    repo = Path(repo)
    label = name or (repo.parent.name if repo.name in ("repo", ".git") else repo.name)
    try:
        head = _git(repo, "rev-parse", "--verify", f"{rev}^{{commit}}").strip()
    except ReplayError:
        # A repository with no commit yet answered "is not a readable git repository: fatal: Needed a single
        # revision", which sends a user looking for a broken clone.
        if rev == "HEAD" and subprocess.run(["git", "-C", str(repo), "rev-parse", "--git-dir"],
                                            capture_output=True).returncode == 0:
            raise ReplayError(f"{repo} has no commits yet; replay needs its history") from None
        raise
    fmt = _RECORD + _FIELD.join(["%H", "%an", "%ae", "%at", "%s", "%b"]) + _FIELD
    args = ["log", "--no-merges", "--date-order", "--reverse", f"--format={fmt}", head]
    if with_files:
        # --no-renames: rename detection reads blobs, and shallow or partial copies may lack some.
        args[1:1] = ["--name-only", "--no-renames"]
    try:
        raw = _git(repo, *args)
    except ReplayError:
        if not with_files:
            raise
        with_files = False  # a tree is missing: go on without the folders an author touched
        raw = _git(repo, *[a for a in args if a not in ("--name-only", "--no-renames")])
    rows = []
    aliases = _Aliases()
    for record in raw.split(_RECORD)[1:]:
        parts = record.split(_FIELD)
        if len(parts) < 7:
            continue
        sha, name, email, when, subject, body, files = parts[:7]
        keys = _identity_keys(name, email)
        for k in keys[1:]:
            aliases.union(keys[0], k)
        rows.append((sha, name.strip(), email.strip(), int(when or 0), subject.strip(), body, keys[0], files))
    if max_commits is not None:
        rows = rows[-max_commits:]

    dropped: Counter = Counter()
    commits: list[Commit] = []
    by_sha: dict[str, Commit] = {}
    by_subject: dict[str, Commit] = {}
    names: dict[str, Counter] = {}
    identities: dict[str, set[str]] = {}
    commit_counts: Counter = Counter()
    for sha, name, email, when, subject, body, key, files in rows:
        if is_bot(name, email):
            dropped["bot"] += 1
            continue
        author = aliases.find(key)
        identities.setdefault(author, set()).update(_identity_keys(name, email))
        commit_counts[author] += 1
        revert = _REVERT_SUBJECT.match(subject) if subject.lower().startswith("revert") else None
        if revert:
            target = None
            m = _REVERT_BODY.search(body)
            if m:
                target = next((c for s, c in by_sha.items() if s.startswith(m.group(1))), None) if len(
                    m.group(1)
                ) < 40 else by_sha.get(m.group(1))
            if target is None:
                target = by_subject.get(revert.group("subject").strip())
            if target is not None and target.reverted_at is None:
                target.reverted_at = len(commits)  # reverted before the task at this index
            dropped["revert"] += 1
            continue
        if _HOUSEKEEPING.match(subject):
            dropped["housekeeping"] += 1
            continue
        if len(subject.split()) < MIN_WORDS:
            dropped["short subject"] += 1
            continue
        c = Commit(
            sha=sha,
            author=author,
            name=name,
            time=when,
            subject=subject,
            files=[f for f in files.strip().splitlines() if f] if with_files else [],
        )
        commits.append(c)
        by_sha[sha] = c
        by_subject[subject] = c
        names.setdefault(author, Counter())[name] += 1
    authors = {k: v.most_common(1)[0][0] for k, v in names.items()}
    return History(
        repo=str(repo),
        name=label,
        head=head,
        commits=commits,
        authors=authors,
        dropped=dropped,
        identities=identities,
        commit_counts=commit_counts,
    )


def _tags(commits: Sequence[Commit], k: int = 3) -> list[str]:
    """The top-level folders an author touched most: what a team lead would write as their capabilities."""
    counts: Counter = Counter()
    for c in commits:
        for f in c.files:
            parts = f.split("/")
            counts[parts[0] if len(parts) > 1 else "(root)"] += 1
    return [d for d, _ in counts.most_common(k)]


@dataclass
class ReplayEpisode:
    episode: Episode
    truth: dict[str, str]  # task id -> agent id (its real author)
    repo: str
    start: int  # index of the window's first commit
    window: int


def episode_at(history: History, start: int, window: int, *, tags: TagSource = "none") -> ReplayEpisode | None:
    """The episode whose tasks are commits [start, start + window); None when fewer than two authors wrote them."""
    commits = history.commits
    tasks = commits[start : start + window]
    if len(tasks) < window:
        return None
    counts = Counter(c.author for c in tasks)
    if len(counts) < 2:
        return None
    past: dict[str, list[Commit]] = {a: [] for a in counts}
    for idx in range(start - 1, -1, -1):
        c = commits[idx]
        bucket = past.get(c.author)
        if bucket is not None and len(bucket) < HISTORY_KEEP:
            bucket.append(c)
        if all(len(v) >= HISTORY_KEEP for v in past.values()):
            break
    ids = {a: f"agent-{k}" for k, a in enumerate(sorted(counts, key=lambda a: (-counts[a], a)))}
    agents = []
    for author, agent_id in ids.items():
        earlier = list(reversed(past[author]))
        agents.append(
            EpisodeAgent(
                id=agent_id,
                capabilities=_tags(earlier) if tags == "dirs" else [],
                capacity=counts[author],
                history=[
                    # Only a revert that happened before the window is known at decision time.
                    HistoryItem(task=c.subject, success=not (c.reverted_at is not None and c.reverted_at <= start))
                    for c in earlier
                ],
            )
        )
    ep_tasks = [EpisodeTask(id=f"task-{j}", description=c.subject[:8000]) for j, c in enumerate(tasks)]
    truth = {f"task-{j}": ids[c.author] for j, c in enumerate(tasks)}
    episode = Episode(id=f"{history.name}@{start}+{window}", agents=agents, tasks=ep_tasks)
    return ReplayEpisode(episode=episode, truth=truth, repo=history.repo, start=start, window=window)


def _blind(text: str) -> str:
    # A subject that is all prefix and digits ("[docs] 1.2") keeps a placeholder: a task needs a description.
    return style_blind(text) or "untitled"


def restyle(ep: ReplayEpisode, mode: TextMode) -> ReplayEpisode:
    """The same episode with its tasks, histories and roles in the given text mode (folder tags are not prose)."""
    if mode == "kept":
        return ep
    agents = [
        a.model_copy(
            update={
                "role": style_blind(a.role),
                "history": [h.model_copy(update={"task": _blind(h.task)}) for h in a.history],
            }
        )
        for a in ep.episode.agents
    ]
    tasks = [t.model_copy(update={"description": _blind(t.description)}) for t in ep.episode.tasks]
    episode = ep.episode.model_copy(update={"agents": agents, "tasks": tasks})
    return ReplayEpisode(episode=episode, truth=ep.truth, repo=ep.repo, start=ep.start, window=ep.window)


def windows(
    history: History,
    window: int,
    *,
    stride: int | None = None,
    limit: int | None = None,
    recent_first: bool = True,
    tags: TagSource = "none",
    warmup: int = WARMUP_COMMITS,
) -> Iterator[ReplayEpisode]:
    """Episodes of `window` tasks, non-overlapping by default, newest first (the history a user cares about)."""
    step = stride or window
    n = len(history.commits)
    starts = list(range(warmup, n - window + 1, step))
    if recent_first:
        starts.reverse()
    made = 0
    for s in starts:
        if limit is not None and made >= limit:
            return
        ep = episode_at(history, s, window, tags=tags)
        if ep is not None:
            made += 1
            yield ep


def random_expectation(ep: ReplayEpisode) -> float:
    """Expected top-1 accuracy of a uniformly random assignment under the same capacities: Σ c² / n²."""
    caps = [a.capacity for a in ep.episode.agents]
    n = sum(caps)
    return sum(c * c for c in caps) / (n * n) if n else 0.0


def top1(ep: ReplayEpisode, assignments: Sequence[tuple[str, str]]) -> float:
    """Share of the episode's tasks assigned to their real author."""
    hits = sum(1 for task, agent in assignments if ep.truth.get(task) == agent)
    return hits / len(ep.truth) if ep.truth else 0.0
