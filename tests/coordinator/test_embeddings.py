"""Word embeddings trained on the training corpus (coordinator/embeddings.py, lab/embed.py)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from ansf_mcp.coordinator import embeddings
from ansf_mcp.coordinator.ckpt import sha256
from ansf_mcp.coordinator.comparisons import Comparisons
from ansf_mcp.coordinator.episode import Episode, ModelUnavailable
from ansf_mcp.lab import embed

# Two topics whose words never meet across topics; "crash" and "panic" never share a subject, only neighbours.
_TOPICS = (
    ["parser grammar token crash", "parser token lexer panic", "grammar lexer token crash", "lexer parser panic"],
    ["docs chapter page tutorial", "tutorial page guide index", "chapter guide docs index", "guide tutorial page"],
)


def _corpus(repeat: int = 20) -> list[str]:
    # Topics of unequal frequency: equal ones would make the leading singular values tie (any rotation fits).
    return [s for _ in range(repeat) for s in _TOPICS[0]] + [s for _ in range(repeat // 2) for s in _TOPICS[1]]


def _built(tmp_path: Path, name: str = "e.safetensors") -> Path:
    vocab, vectors, weight = embed.build(_corpus(), dim=2, min_count=2, power=0.5, drop=0)
    path = tmp_path / name
    embed.save(path, vocab, vectors, weight, {"data": "test corpus"})
    return path


def test_shipped_embeddings_load_verified_and_small() -> None:
    emb = embeddings.load()
    card = json.loads(embeddings.card_path(embeddings.DEFAULT_PATH).read_text())
    assert emb.sha256 == card["sha256"] == sha256(embeddings.DEFAULT_PATH)
    assert emb.vectors.shape == (len(card["vocabulary"]), card["dim"])
    assert embeddings.DEFAULT_PATH.stat().st_size < 3_000_000
    assert "training_repos" in card["data"] and card["command"].startswith("python -m ansf_mcp.lab.embed")


def test_build_is_deterministic_and_learns_what_words_share(tmp_path: Path) -> None:
    a, b = _built(tmp_path, "a.safetensors"), _built(tmp_path, "b.safetensors")
    assert sha256(a) == sha256(b)
    emb = embeddings.load(a)
    v = emb.matrix(["crash", "panic", "tutorial"])
    # crash and panic never occur together, but their neighbours do: closer to each other than to the docs topic.
    assert v[0] @ v[1] > 0.9 and abs(v[0] @ v[2]) < 0.1


def test_vectors_ignore_style_and_unknown_words(tmp_path: Path) -> None:
    emb = embeddings.load(_built(tmp_path))
    v = emb.matrix(["fix(parser): Crash in Lexer (#123)", "crash in lexer", "zzz qqq", ""])
    np.testing.assert_allclose(v[0], v[1])
    assert np.linalg.norm(v[0]) == pytest.approx(1.0)
    assert not v[2].any() and not v[3].any()  # no known word: no direction, not an error
    assert emb.matrix([]).shape == (0, emb.dim)


def test_damaged_or_mismatched_files_are_refused(tmp_path: Path) -> None:
    path = _built(tmp_path)
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ModelUnavailable, match="fail their checksum"):
        embeddings.load(path)
    with pytest.raises(ModelUnavailable, match="are missing"):
        embeddings.load(tmp_path / "none.safetensors")
    other = _built(tmp_path, "c.safetensors")
    card = embeddings.card_path(other)
    card.write_text(json.dumps(json.loads(card.read_text()) | {"vocabulary": ["x"]}))
    with pytest.raises(ModelUnavailable, match="do not match their card's vocabulary"):
        embeddings.load(other)
    card.write_text("{")
    with pytest.raises(ModelUnavailable, match=r"card c\.json is unreadable"):
        embeddings.load(other)


def test_a_corpus_too_small_for_the_dimensions_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="too small for 64 dimensions"):
        embed.build(["one two three"], dim=64, min_count=1)


def test_pair_cosines_prefer_the_agent_who_did_that_kind_of_work(tmp_path: Path) -> None:
    emb = embeddings.load(_built(tmp_path))
    ep = Episode.model_validate({
        "agents": [
            {"id": "p", "history": [{"task": "parser token crash", "success": True},
                                    {"task": "docs page", "success": False}]},
            {"id": "d", "history": [{"task": "chapter tutorial index", "success": True}]},
            {"id": "new"},
        ],
        "tasks": [{"id": "t1", "description": "lexer panic"}, {"id": "t2", "description": "guide page"}],
    })
    centroid, best, recent = embeddings.pair_cosines(emb, Comparisons(ep), half_life=10.0)
    assert centroid.shape == best.shape == recent.shape == (3, 2)
    assert centroid[0, 0] > centroid[1, 0] and centroid[1, 1] > centroid[0, 1]
    assert best[0, 1] > centroid[0, 1]  # its failed docs task is its best match for docs work, not its profile
    assert not centroid[2].any() and not best[2].any() and not recent[2].any()


def test_recency_weights_halve_every_half_life() -> None:
    np.testing.assert_allclose(embeddings.recency_weights(3, 1.0), [0.25, 0.5, 1.0])


def test_embed_command_builds_from_a_list_of_repositories(tmp_path: Path) -> None:
    from tests.git_history import GitHistory

    repo = tmp_path / "mirror" / "o+r" / "repo"
    subprocess.run(["git", "init", "-q", "--bare", str(repo)], check=True)
    h = GitHistory({"a": ("Ann", "a@example.org"), "b": ("Ben", "b@example.org")}, {"a": "src", "b": "docs"})
    for k, s in enumerate(_corpus(8)):
        h.commit("ab"[k % 2], s)
    h.write(repo)
    (tmp_path / "repos.txt").write_text("o/r HEAD\n")
    out = tmp_path / "emb.safetensors"
    assert embed.main(["--mirror", str(tmp_path / "mirror"), "--repos", str(tmp_path / "repos.txt"), "--out",
                       str(out), "--dim", "4", "--min-count", "2"]) == 0
    card = json.loads(embeddings.card_path(out).read_text())
    assert card["sha256"] == sha256(out) and "--dim 4 --min-count 2" in card["command"]
    assert set(card["vocabulary"]) >= {"parser", "crash", "tutorial"}
    shutil.rmtree(tmp_path / "mirror")


@pytest.mark.slow
def test_shipped_embeddings_are_what_the_command_builds(tmp_path: Path) -> None:
    """Where the training mirrors are at hand (ANSF_MIRROR, a folder of owner+name git directories), rebuilding
    gives the shipped bytes."""
    import os

    mirror = os.environ.get("ANSF_MIRROR")
    if not mirror or not Path(mirror).is_dir():
        pytest.skip("set ANSF_MIRROR to a folder holding the training repositories")
    out = tmp_path / "embeddings.safetensors"
    card = json.loads(embeddings.card_path(embeddings.DEFAULT_PATH).read_text())
    args = card["command"].removeprefix("python -m ansf_mcp.lab.embed ").replace("--mirror DIR", f"--mirror {mirror}")
    assert embed.main([*args.split(), "--out", str(out)]) == 0
    assert sha256(out) == card["sha256"]
