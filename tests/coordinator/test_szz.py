"""SZZ outcomes (lab/szz.py) on a repository the test writes: a later fix blames the commit whose line it changed."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from ansf_mcp.lab import replay, szz


def _commit(repo: Path, who: str, subject: str, files: dict[str, str], when: int) -> str:
    for name, text in files.items():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text(text)
    env = os.environ | {"GIT_AUTHOR_NAME": who, "GIT_AUTHOR_EMAIL": f"{who}@example.org",
                        "GIT_COMMITTER_NAME": who, "GIT_COMMITTER_EMAIL": f"{who}@example.org",
                        "GIT_AUTHOR_DATE": f"{when} +0000", "GIT_COMMITTER_DATE": f"{when} +0000"}
    subprocess.run(["git", "-C", str(repo), "add", "-A"], check=True, env=env)
    subprocess.run(["git", "-C", str(repo), "commit", "-q", "-m", subject], check=True, env=env)
    return subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True,
                          check=True).stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    shas = {
        "ann": _commit(tmp_path, "ann", "Add the parser module", {"src/a.py": "one\ntwo\nthree\n"}, 1_700_000_001),
        "ben": _commit(tmp_path, "ben", "Add the docs page", {"docs/x.md": "hello\nworld\n",
                                                                "src/b.py": "b\n"}, 1_700_000_002),
        "cat": _commit(tmp_path, "cat", "Write more parser tests", {"src/c.py": "c\n"}, 1_700_000_003),
        "fix": _commit(tmp_path, "ben", "Fix crash in parser", {"src/a.py": "one\nTWO\nthree\n"}, 1_700_000_004),
        "docfix": _commit(tmp_path, "cat", "Fix typo in docs", {"docs/x.md": "hello\nWorld\n"}, 1_700_000_005),
        "late": _commit(tmp_path, "ann", "Extend the parser again", {"src/d.py": "d\n"}, 1_700_000_006),
    }
    return tmp_path, shas


def test_fix_blames_the_commit_whose_line_it_changed_and_not_docs(repo: tuple[Path, dict[str, str]]) -> None:
    path, shas = repo
    assert szz.blamed(path, [shas["fix"], shas["docfix"]]) == {shas["ann"]: shas["fix"]}  # docs left out
    h = replay.read_history(path)
    labelled, found = szz.label(h)
    assert found == {shas["ann"]: shas["fix"]}
    marks = {c.subject: c.reverted_at for c in labelled.commits}
    # Known as a failure from the fix on: the first task handed out after it is "Fix crash in parser" itself.
    assert marks["Add the parser module"] == [c.subject for c in labelled.commits].index("Fix crash in parser")
    assert all(v is None for k, v in marks.items() if k != "Add the parser module")
    assert all(c.reverted_at is None for c in h.commits)  # the input history is left as it was


def test_scores_and_reliability_are_the_textbook_ones() -> None:
    s = szz.scores([(0.9, 1), (0.9, 0), (0.1, 0), (0.1, 0)], bins=2)
    assert s["brier"] == pytest.approx((0.01 + 0.81 + 0.01 + 0.01) / 4)
    assert s["reliability"] == [{"bin": "0.0-0.5", "n": 2, "mean_p": pytest.approx(0.1), "observed": 0.0},
                                {"bin": "0.5-1.0", "n": 2, "mean_p": pytest.approx(0.9), "observed": 0.5}]


def test_command_on_a_history_too_short_to_replay_says_so(
    repo: tuple[Path, dict[str, str]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, _ = repo
    (tmp_path / "m" / "o+r").mkdir(parents=True)
    (tmp_path / "m" / "o+r" / "repo").symlink_to(path)
    (tmp_path / "list.txt").write_text("o/r HEAD\n")
    assert szz.main(["--mirror", str(tmp_path / "m"), "--list", str(tmp_path / "list.txt")]) == 0
    assert "no replayed task" in capsys.readouterr().out


def test_fit_writes_a_success_model_and_the_table_shows_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from ansf_mcp.coordinator import success

    path = tmp_path / "r"
    subprocess.run(["git", "init", "-q", str(path)], check=True)
    people, topics = ("ann", "ben", "cat"), ("parser", "docs page", "network client")
    for k in range(150):
        who = people[k % 3]
        subject = f"Fix crash in the {topics[k % 3]} code" if k % 10 == 9 else f"Extend the {topics[k % 3]} part {k}"
        # A fix rewrites the line its topic's previous commit wrote: SZZ blames that commit.
        _commit(path, who, subject, {f"src/{k % 3}.py": f"line {k}\n"}, 1_700_000_000 + k)
    (tmp_path / "m" / "o+r").mkdir(parents=True)
    (tmp_path / "m" / "o+r" / "repo").symlink_to(path)
    (tmp_path / "list.txt").write_text("o/r HEAD\n")
    out = tmp_path / "success.json"
    common = ["--mirror", str(tmp_path / "m"), "--list", str(tmp_path / "list.txt")]
    assert szz.main([*common, "--fit", "--out", str(out)]) == 0
    model = success.load(out)
    assert "o/r" not in model.card["data"] and "32 tasks" in model.card["data"]  # one window past the warm-up
    assert model.weights.shape == (len(success.INPUTS),)
    assert "style-blind" in model.card["data"] and "64 rows (32 tasks)" in model.card["data"]  # each task twice
    assert szz.main([*common, "--no-network"]) == 0
    table = capsys.readouterr().out
    for mode in ("style kept", "style-blind"):  # both text modes in one table
        assert f"| {mode} | {szz.DEFAULT_ROW} | 32 |" in table and f"| {mode} | history | 32 |" in table
        assert f"| {mode} | base rate" in table
        assert f"{mode}: paired Δ Brier, {szz.DEFAULT_ROW} − base rate (in-sample constant): " in table
    assert szz.main([*common, "--no-network", "--text", "blind"]) == 0
    blind_only = capsys.readouterr().out
    assert "| style-blind | history | 32 |" in blind_only and "| style kept |" not in blind_only


def test_the_success_vocabulary_reads_work_not_commit_prefixes() -> None:
    from ansf_mcp.coordinator import success

    vocabulary = {"feat": 2.0, "doc": 1.0, "parser": -0.5}
    styled = ["feat(parser): add the parser cache", "[docs] Parser cache (#12)", "Add the parser cache"]
    # A prefix is the writer's habit: only the words of the work count, however it is labelled.
    assert success.text_logit(styled, vocabulary).tolist() == [-0.5, -0.5, -0.5]
    assert success.text_logit(["Update the doc of the parser"], vocabulary).tolist() == [0.5]  # a word in the text counts


@pytest.mark.slow
@pytest.mark.timeout(1800)  # labelling and fitting 95 repositories: about 10 minutes on a shared 2-core machine
@pytest.mark.skipif(not os.environ.get("ANSF_MIRROR"), reason="set ANSF_MIRROR to a folder of the listed repositories")
def test_the_shipped_success_model_is_what_its_command_produces(tmp_path: Path) -> None:
    """python -m ansf_mcp.lab.szz --mirror MIRROR --fit (a few minutes) writes exactly the shipped file."""
    from ansf_mcp.coordinator import success

    out = tmp_path / "success.json"
    assert szz.main(["--mirror", os.environ["ANSF_MIRROR"], "--fit", "--out", str(out)]) == 0
    assert out.read_text() == success.MODEL_FILE.read_text()
