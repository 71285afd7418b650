"""lab/ablate.py: every input set fitted leaving one repository out, scored on it, in one table."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from ansf_mcp.lab import ablate


def test_ablate_scores_every_set_on_the_repository_it_left_out(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from tests.git_history import GitHistory

    lines = []
    for name, (topic_a, topic_b) in {"o/r": ("parser grammar", "docs chapter"), "o/s": ("socket timeout",
                                                                                          "readme typo")}.items():
        repo = tmp_path / "mirror" / name.replace("/", "+") / "repo"
        subprocess.run(["git", "init", "-q", "--bare", str(repo)], check=True)
        h = GitHistory({"a": ("Ann", f"a@{name[2]}.org"), "b": ("Ben", f"b@{name[2]}.org")}, {"a": "src", "b": "docs"})
        for k in range(180):
            h.commit("a" if k % 2 else "b", f"{topic_a if k % 2 else topic_b} change {k}")
        h.write(repo)
        lines.append(f"{name} HEAD")
    (tmp_path / "repos.txt").write_text("\n".join(lines) + "\n")
    assert ablate.main(["--mirror", str(tmp_path / "mirror"), "--repos", str(tmp_path / "repos.txt"), "--windows",
                        "1", "--episodes", "4", "--simulated", "3", "--cache", str(tmp_path / "cache")]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("| ")]
    assert rows[0].startswith("| inputs | kept W16 | blind W16 | kept W32 | blind W32 | kept W64 | blind W64 | outcome-driven family |")
    assert len(rows) == 2 + len(ablate.SETS) + len(ablate.SHARES)
    assert "Δ +0.0 ± 0.0" in rows[2]  # the first set against itself
    assert (tmp_path / "cache" / "ablate-inputs.pkl").is_file()
