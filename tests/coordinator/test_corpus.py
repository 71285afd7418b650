"""A held-out list that is held out from the people too (lab/corpus.py): small repositories written here."""

from __future__ import annotations

import lzma
import pickle
import subprocess
from pathlib import Path

import pytest

from ansf_mcp.lab import corpus, replay
from tests.git_history import GitHistory

PEOPLE = {
    "hy": ("Hynek S", "hynek@example.org"),
    "hy-work": ("hynek s", "hs@work.example.com"),  # same person, another e-mail: one identity after merging
    **{f"p{i}": (f"Person {i}", f"p{i}@example.org") for i in range(8)},
}


def _repo(root: Path, counts: dict[str, int]) -> replay.History:
    """A repository where each author writes the given number of commits (interleaved)."""
    subprocess.run(["git", "init", "-q", "--bare", str(root)], check=True)
    h = GitHistory(PEOPLE, {})
    left = dict(counts)
    n = 0
    while any(left.values()):
        for who in counts:
            if left[who]:
                left[who] -= 1
                n += 1
                h.commit(who, f"Change number {n} of the code")
    h.write(root)
    return replay.read_history(root, name=root.name, with_files=False)


def test_top_authors_merge_aliases_and_rank_by_commits(tmp_path: Path) -> None:
    h = _repo(tmp_path / "a", {"p0": 9, "hy": 4, "hy-work": 4, "p1": 7, "p2": 1})
    top = corpus.top_authors(h, 2)
    assert [name for name, _ in top] == ["Person 0", "Hynek S"]  # 4 + 4 under two e-mails beats p1's 7
    assert {"e:hynek@example.org", "e:hs@work.example.com"} <= top[1][1]


def test_a_shared_top_author_fails_the_check_and_names_the_person(tmp_path: Path) -> None:
    held = _repo(tmp_path / "held", {"hy": 10, "p0": 8, "p1": 6})
    # In the training repository the same person commits under the work e-mail: merged by name, still shared.
    train = _repo(tmp_path / "train", {"p2": 10, "hy-work": 5, "p3": 3})
    assert corpus.author_overlaps([held], [train]) == [
        "held shares a top-5 author with train: Hynek S (hynek s there)"
    ]
    with pytest.raises(ValueError, match="the held-out list is not held out: held shares a top-5 author"):
        corpus.check_held_out([held], [train])


def test_an_author_outside_either_top_five_is_not_an_overlap(tmp_path: Path) -> None:
    held = _repo(tmp_path / "held", {"p0": 9, "p1": 8, "p2": 7, "p3": 6, "p4": 5, "hy": 1})  # hy is sixth here
    train = _repo(tmp_path / "train", {"hy": 20, "p5": 3, "p6": 2})
    assert corpus.author_overlaps([held], [train]) == []
    corpus.check_held_out([held], [train])
    assert corpus.author_overlaps([held], [train], k=6) == [
        "held shares a top-6 author with train: Hynek S (Hynek S there)"
    ]


def test_the_command_checks_the_lists_it_is_given(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    mirror = tmp_path / "mirror"
    held = _repo(mirror / "o+held" / "repo", {"hy": 10, "p0": 2})
    _repo(mirror / "o+train" / "repo", {"hy-work": 10, "p1": 2})
    _repo(mirror / "o+clean" / "repo", {"p2": 10, "p3": 2})
    (tmp_path / "held.txt").write_text(f"o/held {held.head}\n")
    (tmp_path / "train.txt").write_text("o/train HEAD\n")
    (tmp_path / "clean.txt").write_text("o/clean HEAD\n")
    base = ["--mirror", str(mirror), "--heldout", str(tmp_path / "held.txt")]
    assert corpus.main([*base, "--against", str(tmp_path / "train.txt")]) == 1
    assert "o/held shares a top-5 author with o/train: Hynek S" in capsys.readouterr().err
    assert corpus.main([*base, "--against", str(tmp_path / "clean.txt")]) == 0
    assert "0 shared author(s) between 1 held-out and 1 other repositories" in capsys.readouterr().out


def test_an_export_trains_on_the_same_blocks_as_the_mirror(tmp_path: Path) -> None:
    """`--histories` (a GPU host has no mirror) and `--workers` must not change a single training block."""
    import numpy as np

    from ansf_mcp.coordinator.profiles import STUDENT
    from ansf_mcp.lab import train

    mirror = tmp_path / "mirror"
    a = _repo(mirror / "o+a" / "repo", {"p0": 80, "p1": 70, "p2": 50})  # past the 100-commit warm-up
    _repo(mirror / "o+b" / "repo", {"p3": 90, "hy": 90})
    (tmp_path / "list.txt").write_text(f"o/a {a.head}\no/b HEAD\n")
    refs = corpus.read_list(tmp_path / "list.txt")
    export = tmp_path / "h.pkl.xz"
    assert corpus.export_histories(mirror, refs, export) > 0
    assert [h.commits for h in corpus.load_histories(export, refs)] == [h.commits for h in corpus.histories(mirror, refs)]

    def blocks(**where):
        out, _ = train.replay_data(STUDENT.training, 0, per_repo=6, keep=8, repos=tmp_path / "list.txt", **where)
        return out

    direct = blocks(mirror=mirror)
    assert len(direct) > 6
    for other in (blocks(mirror=None, histories=export), blocks(mirror=mirror, workers=2)):
        assert len(other) == len(direct)
        for x, y in zip(direct, other, strict=True):
            assert x.texts == y.texts and np.array_equal(x.pair, y.pair) and np.array_equal(x.target, y.target)

    (tmp_path / "other.txt").write_text("o/c HEAD\n")
    with pytest.raises(ValueError, match="lacks o/c"):
        corpus.load_histories(export, corpus.read_list(tmp_path / "other.txt"))
    (tmp_path / "moved.txt").write_text("o/a 0123456789abcdef\n")
    with pytest.raises(ValueError, match="holds o/a at"):
        corpus.load_histories(export, corpus.read_list(tmp_path / "moved.txt"))
    (tmp_path / "junk.pkl.xz").write_bytes(lzma.compress(pickle.dumps([1])))
    with pytest.raises(ValueError, match="is not a history export"):
        corpus.load_histories(tmp_path / "junk.pkl.xz", refs)
