"""The simulator, the metric and the tokenizer (no torch needed)."""

from __future__ import annotations

import numpy as np
import pytest

from ansf_mcp.coordinator import baselines, tokenizer
from ansf_mcp.coordinator.episode import Assignment, CoordinationResult
from ansf_mcp.coordinator.strategies import coordinate
from ansf_mcp.lab import evaluate, simulator


def test_generate_is_reproducible_and_splits_differ():
    a = simulator.generate("heldout", 5, 3)
    b = simulator.generate("heldout", 5, 3)
    assert [s.episode.model_dump() for s in a] == [s.episode.model_dump() for s in b]
    assert all(np.array_equal(x.p_true, y.p_true) for x, y in zip(a, b, strict=True))
    train = simulator.generate("train", 5, 3)
    assert [s.episode.model_dump() for s in train] != [s.episode.model_dump() for s in a]


def test_episode_shapes_and_probabilities():
    for s in simulator.generate("train", 10, 0, n_agents=(2, 16), n_tasks=(1, 30)):
        n_a, n_t = len(s.episode.agents), len(s.episode.tasks)
        assert s.p_true.shape == (n_a, n_t)
        assert np.all((s.p_true > 0) & (s.p_true < 1))
        assert all(4 <= len(a.history) <= 16 for a in s.episode.agents)


def test_shifted_vocabulary_is_disjoint_from_training():
    train_v, shift_v = simulator.vocab("train"), simulator.vocab("shifted")
    train_words = {w for ws in train_v.domain_words for w in ws} | set(train_v.filler)
    shift_words = {w for ws in shift_v.domain_words for w in ws} | set(shift_v.filler)
    assert not train_words & shift_words
    assert not set(train_v.templates) & set(shift_v.templates)
    text = " ".join(
        t.description.lower() for s in simulator.generate("shifted", 20, 1) for t in s.episode.tasks
    )
    assert not any(f" {w} " in f" {text} " for w in train_words)


def test_oracle_scores_one_and_a_worse_assignment_less():
    s = simulator.generate("heldout", 1, 7, n_agents=4, n_tasks=6)[0]
    best = coordinate(s.episode, "history")
    # Build the oracle through the same path: solving on p* itself.
    assert evaluate.ratio_of_estimate(s.episode, s.p_true, s.p_true) == pytest.approx(1.0)
    worst = evaluate.ratio_of_estimate(s.episode, s.p_true, 1.0 - s.p_true)
    assert worst < 1.0
    assert 0.0 < evaluate.value_ratio(s.episode, s.p_true, best) <= 1.0 + 1e-9


def test_value_ratio_rejects_invalid_results():
    s = simulator.generate("heldout", 1, 8, n_agents=2, n_tasks=3)[0]
    ep = s.episode
    twice = CoordinationResult(
        id=ep.id,
        strategy="x",
        elapsed_ms=0.0,
        unassigned=[],
        assignments=[Assignment(task=ep.tasks[0].id, agent=ep.agents[0].id, p_success=0.5, confidence=0.5)]
        * 2,
    )
    with pytest.raises(ValueError, match="twice"):
        evaluate.value_ratio(ep, s.p_true, twice)
    missing = CoordinationResult(id=ep.id, strategy="x", elapsed_ms=0.0, unassigned=[], assignments=[])
    with pytest.raises(ValueError, match="capacity allowed"):
        evaluate.value_ratio(ep, s.p_true, missing)


def test_ceiling_beats_history_and_round_robin():
    sims = simulator.generate("heldout", 60, 11)
    ceiling = np.mean([evaluate.ratio_of_estimate(s.episode, s.p_true, simulator.ceiling_estimate(s)) for s in sims])
    history = np.mean(evaluate.evaluate_estimator(sims, baselines.history))
    rr = np.mean(evaluate.evaluate_estimator(sims, baselines.round_robin))
    assert ceiling > history > rr - 0.02
    assert ceiling > 0.8


def test_mean_ci():
    m, c = evaluate.mean_ci([1.0, 0.0, 1.0, 0.0])
    assert m == 0.5 and 0.4 < c < 0.7


def test_tokenizer_ids_in_range_stable_and_graceful():
    ids = tokenizer.encode("Refactor the zyxwvut frobnicator quickly")
    assert ids and all(tokenizer.N_RESERVED <= i < tokenizer.VOCAB_SIZE for i in ids)
    assert ids == tokenizer.encode("refactor THE zyxwvut, frobnicator quickly!")
    # Words spelled alike share trigram ids; an empty text still encodes.
    assert set(tokenizer.word_ids("deploy")[1:]) & set(tokenizer.word_ids("deployment")[1:])
    assert tokenizer.encode("") == [tokenizer.PAD]
    assert len(tokenizer.encode("word " * 500)) == tokenizer.MAX_IDS_PER_TEXT


def test_outcome_driven_family_hides_skills_everywhere_but_in_outcomes() -> None:
    import numpy as np

    from ansf_mcp.lab import family

    eps = family.generate(40, 1, sources=family.HELDOUT_SOURCES, outcome_driven=True)
    assert eps != family.generate(40, 1, sources=family.HELDOUT_SOURCES)
    for fe in eps:
        for agent in fe.episode.agents:
            assert agent.role and 20 <= len(agent.history) <= 60  # everyone declares; histories are long
        assert fe.p_true.shape == (len(fe.episode.agents), len(fe.episode.tasks))
    src = family.outcome_source(1_000_003)
    assert src.hist_focus == 0.0 and 0.2 <= src.role_true <= 0.6 and 0.2 <= src.tag_true <= 0.6
    # Outcomes carry the signal: some past tasks fail, some succeed.
    outcomes = np.array([h.success for fe in eps for a in fe.episode.agents for h in a.history])
    assert 0.2 < outcomes.mean() < 0.8
