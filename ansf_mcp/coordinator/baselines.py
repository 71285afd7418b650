"""Non-learned estimators of p(agent succeeds at task): round-robin, tag matching, history estimate.

Each returns an (agents x tasks) matrix of probabilities; the exact solver turns it into an assignment.
"""

from __future__ import annotations

import numpy as np

from ansf_mcp.coordinator.episode import Episode
from ansf_mcp.coordinator.text import TfIdf, words

# What an agent with no evidence is assumed to achieve; also the round-robin "estimate".
PRIOR = 0.5
# Pseudo-count of the prior in the history estimate: how many similar past tasks outweigh it.
PRIOR_WEIGHT = 1.0
# Past tasks less similar than this say nothing about the new task.
MIN_SIMILARITY = 0.05


def round_robin(episode: Episode) -> np.ndarray:
    """No estimate at all: every pair looks the same, ties are broken by order (agent i gets task i mod n)."""
    n_a, n_t = len(episode.agents), len(episode.tasks)
    p = np.full((n_a, n_t), PRIOR)
    # A tiny order-based tilt makes the solver deal tasks out in turn instead of arbitrarily.
    for t in range(n_t):
        p[t % n_a, t] += 1e-6
    return p


def tags(episode: Episode) -> np.ndarray:
    """Match task words against what agents claim: role and capability tags (which may be stale)."""
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


def history(episode: Episode) -> np.ndarray:
    """Similarity-weighted success rate of each agent's past tasks, shrunk toward the prior."""
    task_docs = [words(t.description) for t in episode.tasks]
    hist_docs = [[words(h.task) for h in a.history] for a in episode.agents]
    all_docs = task_docs + [d for docs in hist_docs for d in docs]
    if not all_docs:
        return np.full((len(episode.agents), 0), PRIOR)
    tfidf = TfIdf(all_docs)
    tasks_m = tfidf.matrix(task_docs)
    p = np.full((len(episode.agents), len(episode.tasks)), PRIOR)
    for i, agent in enumerate(episode.agents):
        if not agent.history:
            continue
        sim = tfidf.matrix(hist_docs[i]) @ tasks_m.T  # (history, tasks)
        sim = np.where(sim >= MIN_SIMILARITY, sim, 0.0)
        outcomes = np.array([1.0 if h.success else 0.0 for h in agent.history])
        weight = sim.sum(axis=0)
        p[i] = (sim.T @ outcomes + PRIOR_WEIGHT * PRIOR) / (weight + PRIOR_WEIGHT)
    return p


ESTIMATORS = {"history": history, "tags": tags, "round-robin": round_robin}
