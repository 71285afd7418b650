"""The decision path's shortcuts give exactly what the plain constructions give (issue 16: faster, same decision):
sparse texts from cached distinct ids, membership matrices built as CSR, margins in one pass."""

from __future__ import annotations

import random

import numpy as np
import pytest
from scipy import sparse

from ansf_mcp.coordinator import text
from ansf_mcp.coordinator.comparisons import Comparisons
from ansf_mcp.coordinator.episode import Episode
from ansf_mcp.coordinator.features import _token_words
from ansf_mcp.coordinator.solver import margins

WORDS = "Parser parsing socket the a fix: [docs] Tests tested 42 x naïve CamelCase path/to/file.py".split()


def _texts(rng: random.Random, n: int, long: bool = False) -> list[str]:
    if long:  # enough distinct ids to take the pass over the hashed space instead of the sort
        return [" ".join(f"w{rng.randint(0, 5000)}x" for _ in range(300)) for _ in range(n)]
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(0, 12))) or rng.choice(["-", ""]) for _ in range(n)]


def _reference(texts: list[str], kind: str) -> tuple[sparse.csr_matrix, sparse.csr_matrix]:
    """Counts and TF-IDF rows the plain way: every id of every bag as a COO entry, summed by scipy."""
    bag, cap = text.BAGS[kind]
    cap = max(100, min(cap, text.DECISION_BUDGET // max(len(texts), 1)))
    bags = [bag(t[:cap]) for t in texts]
    flat = np.concatenate(bags) if bags else np.zeros(0, dtype=np.int64)
    used, cols = np.unique(flat, return_inverse=True)
    rows = np.repeat(np.arange(len(bags)), [len(b) for b in bags])
    counts = sparse.coo_matrix((np.ones(flat.size), (rows, cols)), shape=(len(bags), used.size)).tocsr()
    counts.sum_duplicates()
    n = max(len(bags), 1)
    idf = np.log((1.0 + n) / (1.0 + np.bincount(counts.indices, minlength=used.size))) + 1.0
    row = np.repeat(np.arange(len(bags)), np.diff(counts.indptr))
    data = (1.0 + np.log(counts.data)) * idf[counts.indices]
    norms = np.sqrt(np.bincount(row, weights=data * data, minlength=len(bags)))
    norms[norms == 0] = 1.0
    data *= (1.0 / norms)[row]
    return counts, sparse.csr_matrix((data, counts.indices.copy(), counts.indptr.copy()), shape=counts.shape)


def _same(a: sparse.csr_matrix, b: sparse.csr_matrix) -> None:
    assert a.shape == b.shape
    assert np.array_equal(a.indptr, b.indptr) and np.array_equal(a.indices, b.indices)
    assert np.array_equal(a.data, b.data)  # bit for bit


@pytest.mark.parametrize("kind", list(text.BAGS))
def test_sparse_texts_are_the_plain_construction_bit_for_bit(kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(text, "_SORT_IDS_MAX", 8_192)  # so that long decisions take the pass over the hashed space
    rng = random.Random(kind)
    for trial in range(12):
        long = trial % 4 == 3
        texts = _texts(rng, 40 if long else rng.randint(1, 30), long=long)
        texts += texts[: rng.randint(0, 3)]  # a text twice in one decision
        got = text.SparseTexts(texts, kind)
        if long:
            assert got.counts.nnz > text._SORT_IDS_MAX
        counts, tfidf = _reference(texts, kind)
        _same(got.counts, counts)
        _same(got.tfidf, tfidf)
        assert np.array_equal(got.lengths, np.asarray(counts.sum(axis=1)).ravel().astype(np.int64))
    empty = text.SparseTexts([], kind)
    assert empty.counts.shape == (0, 0) and empty.lengths.size == 0


def test_distinct_ids_are_kept_for_the_least_recently_used_texts_only() -> None:
    cache = text._DistinctIds(3, 1 << 20)
    first = cache.of("words", ["alpha beta beta", "gamma"])
    np.testing.assert_array_equal(first[0][1], [1, 2] if first[0][0][0] == text._hash("alpha") else [2, 1])
    assert cache.of("words", ["gamma"])[0] is first[1]  # kept: the same array, not recounted
    cache.of("words", ["delta", "epsilon"])  # four texts held: "alpha beta beta", the least recently used, goes
    held = {t for _, t in cache._held}
    assert held == {"gamma", "delta", "epsilon"}
    again = cache.of("words", ["alpha beta beta", "alpha beta beta"])
    assert again[0] is again[1] and np.array_equal(again[0], first[0])


def test_distinct_ids_stay_within_their_bytes_and_own_their_arrays() -> None:
    """The budget counts what an entry really holds (array header, the text, the key), not the ids alone: the
    ids alone are under half of it on 16 x 64 decisions, and a busy server kept growing past the budget."""
    cache = text._DistinctIds(1_000, 8_000)
    texts = [" ".join(f"w{k}x{j}" for j in range(20)) for k in range(40)]  # 20 distinct ids each: 160 bytes
    got = cache.of("words", texts)
    assert all(ids.flags.owndata for ids in got)  # a view would keep the whole batch's array alive
    entry = text._held_bytes(texts[0], got[0])
    assert entry > got[0].nbytes + len(texts[0])
    assert cache._bytes == sum(text._held_bytes(t, ids) for (_, t), ids in cache._held.items()) <= 8_000
    kept = len(cache._held)
    assert {t for _, t in cache._held} == set(texts[-kept:])  # the newest that fit; the rest went, oldest first
    assert cache._bytes + text._held_bytes(texts[-kept - 1], got[-kept - 1]) > 8_000 >= entry * (kept - 1)


def test_membership_is_what_a_coo_construction_gives() -> None:
    rng = np.random.default_rng(3)
    episode = Episode.model_validate({
        "agents": [{"id": f"a{i}", "history": [{"task": f"t {i} {h}", "success": bool(rng.random() < 0.6)}
                                               for h in range(int(rng.integers(0, 6)))]} for i in range(7)],
        "tasks": [{"id": "t", "description": "x"}],
    })
    cmp = Comparisons(episode)
    owner = np.repeat(np.arange(cmp.n_agents), cmp.hist_len)
    for success in (True, False):
        keep = cmp.ok if success else ~cmp.ok
        want = sparse.csr_matrix((np.ones(int(keep.sum())), (owner[keep], np.flatnonzero(keep))),
                                 shape=(cmp.n_agents, int(cmp.starts[-1])))
        _same(cmp._membership(success), want)


def test_margins_are_each_agent_against_the_best_other() -> None:
    rng = np.random.default_rng(5)
    for trial in range(200):
        shape = (int(rng.integers(1, 6)), int(rng.integers(1, 6)))
        p = rng.random(shape) if trial % 2 else rng.integers(0, 3, shape) / 2.0  # ties, 0 and 1
        m = margins(p)
        for i in range(shape[0]):
            for j in range(shape[1]):
                others = np.delete(p[:, j], i)
                alternative = float(others.max()) if others.size else 0.5
                assert m[i, j] == float(np.clip(0.5 + p[i, j] - alternative, 0.0, 1.0))


def test_token_words_follow_the_words_in_order_even_when_ids_collide() -> None:
    def plain(ids: list[int], word_level: list[int]) -> list[int]:
        out, k = [], -1
        for tok in ids:
            if k + 1 < len(word_level) and tok == word_level[k + 1]:
                k += 1
            out.append(word_level[max(k, 0)])
        return out

    rng = random.Random(7)
    for _ in range(5_000):  # ids from a tiny range: trigrams that equal a later word's id, repeated words
        word_level = [rng.randint(0, 6) for _ in range(rng.randint(1, 8))]
        ids = [rng.randint(0, 6) for _ in range(rng.randint(0, 30))]
        assert _token_words(ids, word_level) == plain(ids, word_level)
