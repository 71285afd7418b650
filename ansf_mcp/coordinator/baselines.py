"""Non-learned estimators of p(agent succeeds at task): round-robin, tag matching, history, similarity.

Each returns an (agents x tasks) matrix; the exact solver turns it into an assignment. `history` and `similarity`
produce probabilities; `tags` and `round-robin` produce scores that only order the pairs, so no `p_success` is
reported for them (PROBABILISTIC says which is which).
"""

from __future__ import annotations

import numpy as np

from ansf_mcp.coordinator.comparisons import Comparisons
from ansf_mcp.coordinator.episode import Episode
from ansf_mcp.coordinator.text import words

# What an agent with no evidence is assumed to achieve.
PRIOR = 0.5
# Pseudo-count of the prior in the history estimate: how many similar past tasks outweigh it.
PRIOR_WEIGHT = 1.0
# Past tasks less similar than this say nothing about the new task.
MIN_SIMILARITY = 0.05
# similarity: p = sigmoid(BIAS + GAIN_OK * cos(task, successes) - GAIN_FAIL * cos(task, failures)), a logistic fit
# of success on these two cosines over SIMULATED training episodes: exactly what `python -m ansf_mcp.lab.calibrate`
# prints (2 000 episodes, seed 3), which tests/coordinator/test_train.py checks to the third decimal.
SIMILARITY_BIAS = -0.142
SIMILARITY_GAIN_OK = 1.638
SIMILARITY_GAIN_FAIL = 1.117


def round_robin(episode: Episode, comparisons: Comparisons | None = None) -> np.ndarray:
    """No estimate at all: every pair looks the same, ties are broken by order (agent i gets task i mod n)."""
    n_a, n_t = len(episode.agents), len(episode.tasks)
    p = np.full((n_a, n_t), PRIOR)
    # A tiny order-based tilt makes the solver deal tasks out in turn instead of arbitrarily.
    for t in range(n_t):
        p[t % n_a, t] += 1e-6
    return p


def tags(episode: Episode, comparisons: Comparisons | None = None) -> np.ndarray:
    """Match task words against what agents claim: role and capability tags (which may be stale). A score."""
    task_words = [set(words(t.description)) for t in episode.tasks]
    p = np.full((len(episode.agents), len(episode.tasks)), PRIOR)
    for i, agent in enumerate(episode.agents):
        claimed = set(words(agent.role))
        for cap in agent.capabilities:
            claimed.update(words(cap))
        if not claimed:
            continue
        for j, tw in enumerate(task_words):
            hits = len(claimed & tw)
            # Saturating: one matching tag is strong evidence, more add a little.
            p[i, j] = PRIOR + 0.4 * (1.0 - 0.5**hits) if hits else PRIOR - 0.1
    return p


def history(episode: Episode, comparisons: Comparisons | None = None) -> np.ndarray:
    """Similarity-weighted success rate of each agent's past tasks, shrunk toward the prior."""
    cmp = comparisons or Comparisons(episode)
    hits, mass = cmp.weighted_success("words", MIN_SIMILARITY)
    return (hits + PRIOR_WEIGHT * PRIOR) / (mass + PRIOR_WEIGHT)


def similarity(episode: Episode, comparisons: Comparisons | None = None) -> np.ndarray:
    """TF-IDF cosine of the task with the agent's past successes, against its past failures."""
    cmp = comparisons or Comparisons(episode)
    z = (
        SIMILARITY_BIAS
        + SIMILARITY_GAIN_OK * cmp.centroid_cosine("words", success=True)
        - SIMILARITY_GAIN_FAIL * cmp.centroid_cosine("words", success=False)
    )
    return 1.0 / (1.0 + np.exp(-z))


ESTIMATORS = {"similarity": similarity, "history": history, "tags": tags, "round-robin": round_robin}
PROBABILISTIC = frozenset({"similarity", "history"})
