"""Replaying git history: a repository we write commit by commit, then read back as coordination episodes."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from ansf_mcp.lab import replay
from ansf_mcp.lab.replay_eval import evaluate_history
from tests.conftest import ansf_command, subprocess_env
from tests.git_history import GitHistory

AUTHORS = {
    "ada": ("Ada Lovelace", "ada@example.org"),
    "ada-alias": ("Ada Lovelace", "ada.work@example.com"),  # same name, other e-mail: one person
    "bob": ("Bob Builder", "bob@example.org"),
    "bob-login": ("Bob Builder", "4242+bobbuilds@users.noreply.github.com"),  # same name: one person
    "cat": ("Cat Herder", "cat@example.org"),
    "bot": ("dependabot[bot]", "49699333+dependabot[bot]@users.noreply.github.com"),
}
FOLDERS = {"ada": "src", "bob": "docs", "cat": ".github"}
TOPICS = {
    "ada": ["parser grammar tokens", "parser error recovery", "lexer unicode escapes"],
    "bob": ["docs tutorial chapter", "docs api reference", "readme install steps"],
    "cat": ["ci workflow matrix", "release packaging wheels", "ci cache settings"],
}


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("history")
    subprocess.run(["git", "init", "-q", "--bare", str(root)], check=True)
    h = GitHistory(AUTHORS, FOLDERS)
    target = None
    for round_ in range(60):
        for who in ("ada", "ada-alias", "bob", "bob-login", "cat"):
            if who in ("ada-alias", "bob-login") and round_ % 3:
                continue
            topic = TOPICS[who.split("-")[0]][round_ % 3]
            mark = h.commit(who, f"Improve {topic} step {round_}")
            if round_ == 50 and who == "ada":
                target = (mark, f"Improve {topic} step {round_}")
        if round_ % 10 == 0:
            h.commit("bot", f"Bump dependency from 1.{round_} to 1.{round_ + 1}")
            h.commit("cat", f"Release 2.{round_}.0")
            h.commit("bob", "typo")
    assert target is not None
    revert = h.commit("cat", f'Revert "{target[1]}"', body="This reverts commit @TARGET@.")
    for k in range(40):  # more work after the revert
        who = ("ada", "bob", "cat")[k % 3]
        h.commit(who, f"Polish {TOPICS[who][k % 3]} again {k}")
    # The revert names its target's sha, which exists only once written: write, then write again with the sha
    # (the commits before the revert come out identical).
    shas = h.write(root)
    fresh = tmp_path_factory.mktemp("history-final")
    subprocess.run(["git", "init", "-q", "--bare", str(fresh)], check=True)
    h.write(fresh, {"@TARGET@": shas[target[0]]})
    assert revert
    return fresh


def test_authors_merged_bots_and_housekeeping_dropped(repo: Path) -> None:
    h = replay.read_history(repo)
    assert len(h.authors) == 3, h.authors  # Ada's two e-mails and Bob's GitHub login merged; the bot dropped
    assert h.dropped["bot"] == 6 and h.dropped["housekeeping"] == 6 and h.dropped["short subject"] == 6
    assert h.dropped["revert"] == 1
    assert all("Bump" not in c.subject and "Release" not in c.subject for c in h.commits)
    reverted = [c for c in h.commits if c.reverted_at is not None]
    assert len(reverted) == 1 and reverted[0].subject.endswith("step 50")


def test_episode_truth_capacity_and_revert_known_only_after_it_happened(repo: Path) -> None:
    h = replay.read_history(repo)
    target = next(c for c in h.commits if c.reverted_at is not None)
    before = replay.episode_at(h, target.reverted_at - 20, 16)
    after = replay.episode_at(h, target.reverted_at + 1, 16)
    assert before is not None and after is not None
    for rep in (before, after):
        caps = {a.id: a.capacity for a in rep.episode.agents}
        assert sum(caps.values()) == 16 == len(rep.truth)
        for agent_id, cap in caps.items():
            assert list(rep.truth.values()).count(agent_id) == cap
    failures = lambda rep: [h_.task for a in rep.episode.agents for h_ in a.history if not h_.success]  # noqa: E731
    assert failures(before) == []  # the revert had not happened yet when these tasks were handed out
    assert failures(after) == [target.subject]
    assert 0 < replay.random_expectation(after) < 1


def test_tags_from_folders_and_windows_are_newest_first(repo: Path) -> None:
    h = replay.read_history(repo)
    eps = list(replay.windows(h, 16, limit=3, tags="dirs"))
    assert len(eps) == 3 and eps[0].start > eps[1].start > eps[2].start
    tags = {tuple(a.capabilities) for a in eps[0].episode.agents}
    assert ("src",) in tags and ("docs",) in tags and (".github",) in tags


def test_every_strategy_measured_and_similarity_beats_random(repo: Path) -> None:
    h = replay.read_history(repo)
    report = evaluate_history(h, {}, windows=(16,), limit=8, tag_sources=("none",))
    cell = report["results"]["none"]["16"]
    assert cell["episodes"] == 8
    for method in ("auto", "similarity", "history", "tags", "round-robin", "ref: chars cosine"):
        assert 0.0 <= cell[method]["mean"] <= 1.0
    # Authors keep to their topics here, so text similarity must find them far better than chance.
    assert cell["similarity"]["mean"] > cell["random"]["mean"] + 0.3


def test_not_a_repository_gets_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(replay.ReplayError, match="not a readable git repository"):
        replay.read_history(tmp_path)


@pytest.mark.slow
def test_bench_replay_suite_from_the_command_line(repo: Path, tmp_path: Path) -> None:
    out = subprocess.run(
        [*ansf_command(), "bench", "--suite", "replay", "--repo", str(repo), "--quick", "--out", str(tmp_path / "o"),
         "--data-dir", str(tmp_path / "data")],
        capture_output=True, text=True, timeout=600, env=subprocess_env(tmp_path / "data"),
    )
    assert out.returncode == 0, out.stderr[-2000:]
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    replayed = report["results"]["replay"]
    assert replayed["authors"] == 3
    assert "neural:student" in replayed["results"]["none"]["16"], replayed.get("unavailable")
    assert "REAL data" in out.stdout and "similarity" in out.stdout
