"""The cheap text inputs the combiner can weigh: word-internal character n-grams, BM25 and the best-matching past
success (coordinator/text.py, coordinator/comparisons.py)."""

from __future__ import annotations

import numpy as np

from ansf_mcp.coordinator import combiner
from ansf_mcp.coordinator.comparisons import Comparisons
from ansf_mcp.coordinator.episode import Episode
from ansf_mcp.coordinator.text import wordgram_bag


def _episode(histories: dict[str, list[tuple[str, bool]]], tasks: list[str]) -> Episode:
    return Episode.model_validate({
        "agents": [{"id": a, "history": [{"task": t, "success": ok} for t, ok in h]} for a, h in histories.items()],
        "tasks": [{"id": f"t{j}", "description": d} for j, d in enumerate(tasks)],
    })


def test_word_grams_meet_across_word_forms_and_ignore_case_and_punctuation() -> None:
    parser, parsing, socket = (set(wordgram_bag(t).tolist()) for t in ("parser", "parsing", "socket"))
    assert parser & parsing and not parser & socket
    assert np.array_equal(wordgram_bag("Fix: the Parser!"), wordgram_bag("fix the parser"))
    # " parser " has 6 + 5 + 4 grams of 3, 4 and 5 characters
    assert len(wordgram_bag("parser")) == 15


def test_word_gram_cosine_sees_a_word_form_that_words_do_not() -> None:
    ep = _episode({"a": [("parsing grammar rules", True)], "b": [("socket timeouts", True)]}, ["parsers"])
    x = combiner.inputs(ep, Comparisons(ep), np.full((2, 1), 0.5),
                        ("word-gram cosine to successes", "tf-idf cosine to successes"))
    assert x[0, 0, 0] > 0.1 and x[1, 0, 0] == 0.0
    assert x[:, 0, 1].tolist() == [0.0, 0.0]  # no word in common


def test_bm25_counts_successes_only_and_rare_terms_most() -> None:
    ep = _episode(
        {
            "a": [("socket timeout handling", True), ("docs typo", True)],
            "b": [("socket timeout handling", False), ("docs typo", True)],
            "c": [("docs chapter", True)],
            "d": [],
        },
        ["socket timeout", "docs"],
    )
    bm25 = Comparisons(ep).bm25("words")
    assert bm25.shape == (4, 2)
    assert bm25[0, 0] > 0 and bm25[1, 0] == 0.0  # b's socket work failed: it is not in its document
    assert bm25[3].tolist() == [0.0, 0.0]  # no history, no score
    # "docs" is in every document with successes: its IDF is the floor log(1 + 0.5 / 3.5)
    assert bm25[0, 1] < bm25[0, 0]


def test_best_match_to_successes_ignores_failures_and_history_share_sums_to_one() -> None:
    ep = _episode(
        {"a": [("socket timeout handling", True), ("grammar", True)], "b": [("socket timeout handling", False)]},
        ["socket timeout handling"],
    )
    x = combiner.inputs(ep, Comparisons(ep), np.full((2, 1), 0.5), ("best-match cosine to successes", "history share"))
    np.testing.assert_allclose(x[:, 0, 0], [1.0, 0.0])
    np.testing.assert_allclose(x[:, 0, 1], [2 / 3, 1 / 3])
