"""Style-blind text: the writer's habits washed out, the words and their order kept (coordinator/text.py), and
the replay tables that measure every method both ways (lab/replay_eval.py)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from ansf_mcp.coordinator.comparisons import Comparisons
from ansf_mcp.coordinator.episode import Episode
from ansf_mcp.coordinator.text import style_blind
from ansf_mcp.lab import replay
from ansf_mcp.lab.replay_eval import cell_key, evaluate_history, side_by_side
from tests.git_history import GitHistory


@pytest.mark.parametrize(
    ("written", "blind"),
    [
        ("fix: Handle None in the parser (#123)", "handle none in the parser"),
        ("feat(api)!: Add paging GH-12", "add paging"),
        ("[docs] Update README.md for v2.0", "update readme md for v"),
        ("[DOCS][ci] tests: cover the CLI", "cover the cli"),
        ("net/http: fix JIRA-1 crash :bug:", "fix crash"),
        ("Fix #45, crash on 3 inputs!", "fix crash on inputs"),
        ("Support utf-8 names", "support utf names"),  # not a ticket: ticket keys are upper case
        ("Use x: y as the default", "use x y as the default"),  # a colon later on is not a prefix
        ("Handle   tabs\tand\nnewlines", "handle tabs and newlines"),
        ("1.2.3", ""),
    ],
)
def test_style_blind_strips_style_and_keeps_words_in_order(written: str, blind: str) -> None:
    assert style_blind(written) == blind


def test_plain_tfidf_reference_reads_every_word_unstemmed() -> None:
    ep = Episode.model_validate({
        "agents": [
            {"id": "a", "history": [{"task": "the parser tokens", "success": True},
                                    {"task": "docs pages", "success": False}]},
            {"id": "b", "history": [{"task": "docs pages", "success": True}]},
        ],
        "tasks": [{"id": "t0", "description": "the parser tokens"}, {"id": "t1", "description": "docs page"}],
    })
    cos = Comparisons(ep).centroid_cosine("plain", True)
    assert cos[0, 0] == pytest.approx(1.0)  # same text, successes only
    assert cos[0, 1] == 0.0  # a's "docs pages" was a failure: not in its success centroid
    assert 0.0 < cos[1, 1] < 1.0  # "page" and "pages" are different words to a plain TF-IDF


@pytest.fixture(scope="module")
def styled_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two authors who work on the SAME topics and differ only in how they write their subjects."""
    root = tmp_path_factory.mktemp("styled")
    subprocess.run(["git", "init", "-q", "--bare", str(root)], check=True)
    h = GitHistory({"ada": ("Ada", "ada@example.org"), "bob": ("Bob", "bob@example.org")}, {})
    rng = np.random.default_rng(0)
    topics = ["parser grammar tokens", "docs tutorial chapter", "ci workflow matrix", "cache eviction policy"]
    for k in range(260):
        topic = topics[int(rng.integers(len(topics)))]
        if rng.random() < 0.5:
            h.commit("ada", f"fix(core): Improve {topic} now (#{k})")
        else:
            h.commit("bob", f"[misc] improve {topic} now GH-{k}")
    h.write(root)
    return root


def test_style_blind_mode_takes_away_what_only_style_told(styled_repo: Path) -> None:
    h = replay.read_history(styled_repo)
    report = evaluate_history(h, {}, windows=(16,), limit=6, tag_sources=("none",))
    kept, blind = report["results"][cell_key("none", "kept")]["16"], report["results"][cell_key("none", "blind")]["16"]
    assert set(report["results"]) == {"none", "none, style-blind"}
    assert kept["episodes"] == blind["episodes"] == 6
    # With style kept, character n-grams recognise each writer; washed out, the two are indistinguishable.
    assert kept["ref: chars language model"]["mean"] == 1.0
    assert blind["ref: chars language model"]["mean"] < kept["random"]["mean"] + 0.25
    rep = next(replay.windows(h, 16, limit=1))
    washed = replay.restyle(rep, "blind")
    assert washed.truth == rep.truth and [a.capacity for a in washed.episode.agents] == [
        a.capacity for a in rep.episode.agents]
    assert {t.description.split(" now")[0].split()[0] for t in washed.episode.tasks} == {"improve"}
    table = side_by_side([report])
    assert "W16 style kept | W16 style-blind" in table and "| ref: TF-IDF |" in table


def test_replay_eval_command_prints_both_modes_side_by_side(
    styled_repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    from ansf_mcp.lab import replay_eval

    (tmp_path / "m" / "o+styled").mkdir(parents=True)
    (tmp_path / "m" / "o+styled" / "repo").symlink_to(styled_repo)
    (tmp_path / "list.txt").write_text("o/styled HEAD\n")
    out = tmp_path / "r.json"
    assert replay_eval.main(["--mirror", str(tmp_path / "m"), "--list", str(tmp_path / "list.txt"), "--limit", "2",
                             "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "| method | W16 style kept | W16 style-blind | W32 style kept |" in printed
    assert "**Window 16 tasks, tags: dirs, style-blind**" in printed
    report = json.loads(out.read_text())[0]
    assert set(report["results"]) == {"none", "dirs", "none, style-blind", "dirs, style-blind"}
    assert "network alone:student" in report["results"]["none"]["16"]  # the shipped network carries a combiner
