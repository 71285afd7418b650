"""What one decision's own texts say about each (agent, task) pair, without any vocabulary fitted in advance.

The non-learned estimators (history, similarity) and the network's pair head read the same comparisons from here:
TF-IDF cosines of a task with an agent's past tasks (each one, the centroid of the successes, of the failures),
in words and in character n-grams, and a smoothed character language model of the agent's past work.
Everything is computed per decision, for the most recent MAX_COMPARED_HISTORY past tasks of each agent, in agent
chunks, so memory stays bounded for the largest episode the format accepts.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import cached_property

import numpy as np
from scipy import sparse

from ansf_mcp.coordinator.episode import Episode
from ansf_mcp.coordinator.text import SparseTexts

MAX_COMPARED_HISTORY = 100
# Dirichlet prior of the agents' language models, in n-grams (fitted on training repositories, lab/).
LM_PRIOR = {"words": 200.0, "chars": 2000.0}
_AGENT_CHUNK = 64
# Entries (vocabulary x tasks) up to which the tasks are multiplied as a dense matrix: 16 MB of float64.
_DENSE_TASKS_MAX = 2_000_000


class Comparisons:
    """Lazily computed comparison matrices of one episode, each (agents, tasks) unless said otherwise."""

    def __init__(self, episode: Episode):
        self.episode = episode
        self.n_agents, self.n_tasks = len(episode.agents), len(episode.tasks)
        hists = [a.history[-MAX_COMPARED_HISTORY:] for a in episode.agents]
        self.hist_len = np.array([len(h) for h in hists], dtype=np.int64)
        self.starts = np.concatenate([[0], np.cumsum(self.hist_len)]).astype(np.int64)
        self.ok = np.array([h.success for hs in hists for h in hs], dtype=bool)
        self._texts = [t.description for t in episode.tasks] + [h.task for hs in hists for h in hs]
        self._cache: dict = {}

    # -- matrices --------------------------------------------------------------------------------------------
    def _sparse(self, kind: str) -> SparseTexts:
        key = ("sparse", kind)
        if key not in self._cache:
            self._cache[key] = SparseTexts(self._texts, kind)
        return self._cache[key]

    def _rows(self, kind: str, which: str) -> sparse.csr_matrix:
        """"tasks", "history", or "tasks_t" (the tasks transposed, as CSR so products need no conversion)."""
        key = ("rows", kind, which)
        if key not in self._cache:
            m = self._sparse(kind).tfidf
            if which == "tasks":
                self._cache[key] = m[: self.n_tasks]
            elif which == "tasks_t":
                self._cache[key] = self._rows(kind, "tasks").T.tocsr()
            else:
                self._cache[key] = m[self.n_tasks :]
        return self._cache[key]

    def _times_tasks(self, rows: sparse.csr_matrix, kind: str) -> np.ndarray:
        """rows @ tasks.T as a dense array. Against a dense copy of the tasks when that is small (a sparse
        result that is nearly full costs several times more), sparse otherwise (huge vocabularies)."""
        tasks_t = self._rows(kind, "tasks_t")
        if tasks_t.shape[0] * tasks_t.shape[1] <= _DENSE_TASKS_MAX:
            key = ("tasks_t_dense", kind)
            if key not in self._cache:
                self._cache[key] = tasks_t.toarray()
            return np.asarray(rows @ self._cache[key])
        return (rows @ tasks_t).toarray()

    def _membership(self, success: bool) -> sparse.csr_matrix:
        """(agents, history items): 1 where the item is the agent's and its outcome is `success`. Built as CSR
        directly: items are stored agent by agent, so each agent's row is a run of increasing item indices."""
        key = ("membership", success)
        if key not in self._cache:
            keep = self.ok if success else ~self.ok
            owner = np.repeat(np.arange(self.n_agents), self.hist_len)
            indptr = np.zeros(self.n_agents + 1, dtype=np.int64)
            np.cumsum(np.bincount(owner[keep], minlength=self.n_agents), out=indptr[1:])
            items = np.flatnonzero(keep)
            self._cache[key] = sparse.csr_matrix(
                (np.ones(items.size), items, indptr), shape=(self.n_agents, int(self.starts[-1]))
            )
        return self._cache[key]

    def _success_counts(self, kind: str) -> sparse.csr_matrix:
        """(agents, vocabulary): each agent's n-gram counts summed over its past successes."""
        key = ("success_counts", kind)
        if key not in self._cache:
            self._cache[key] = (self._membership(True) @ self._sparse(kind).counts[self.n_tasks :]).tocsr()
        return self._cache[key]

    def _chunk(self, kind: str, a0: int) -> np.ndarray:
        """(history items of agents a0.., tasks): cosines for one chunk of _AGENT_CHUNK agents, in one product.
        The chunk last computed is kept: agents are asked for in order, so every consumer (item cosines, best
        match, weighted success) shares one product per chunk while memory stays bounded."""
        key = ("chunk", kind)
        held = self._cache.get(key)
        if held is None or held[0] != a0:
            a1 = min(a0 + _AGENT_CHUNK, self.n_agents)
            lo, hi = self.starts[a0], self.starts[a1]
            sims = self._times_tasks(self._rows(kind, "history")[lo:hi], kind)
            held = self._cache[key] = (a0, sims)
        return held[1]

    def item_cosine(self, kind: str, agent: int) -> np.ndarray:
        """(history items of `agent`, tasks): cosine of each past task with each open task."""
        a0 = agent - agent % _AGENT_CHUNK
        base = self.starts[a0]
        sims = self._chunk(kind, a0)
        return sims[self.starts[agent] - base : self.starts[agent + 1] - base].astype(np.float32)

    def centroid_cosine(self, kind: str, success: bool = True) -> np.ndarray:
        """Cosine of each task with the normalised sum of the agent's past successes (or failures)."""
        key = ("centroid", kind, success)
        if key not in self._cache:
            cent = self._membership(success) @ self._rows(kind, "history")
            norms = np.sqrt(np.asarray(cent.multiply(cent).sum(axis=1)).ravel())
            norms[norms == 0] = 1.0
            cent = sparse.diags(1.0 / norms) @ cent
            self._cache[key] = self._times_tasks(cent, kind)
        return self._cache[key]

    def _item_blocks(self, kind: str) -> Iterator[tuple[int, np.ndarray]]:
        """(agent, its (history items, tasks) cosines) for every agent with a history, chunk by chunk."""
        for a0 in range(0, self.n_agents, _AGENT_CHUNK):
            a1 = min(a0 + _AGENT_CHUNK, self.n_agents)
            if self.starts[a1] == self.starts[a0]:
                continue
            sims = self._chunk(kind, a0)
            lo = self.starts[a0]
            for i in range(a0, a1):
                s, e = self.starts[i] - lo, self.starts[i + 1] - lo
                if e > s:
                    yield i, sims[s:e]

    def max_cosine(self, kind: str) -> np.ndarray:
        """The highest cosine of each task with any single past task of the agent."""
        key = ("max", kind)
        if key not in self._cache:
            out = np.zeros((self.n_agents, self.n_tasks))
            for i, sims in self._item_blocks(kind):
                out[i] = sims.max(axis=0)
            self._cache[key] = out
        return self._cache[key]

    def best_success_cosine(self, kind: str) -> np.ndarray:
        """The highest cosine of each task with any single past SUCCESS of the agent (0 without one)."""
        key = ("max_ok", kind)
        if key not in self._cache:
            out = np.zeros((self.n_agents, self.n_tasks))
            for i, sims in self._item_blocks(kind):
                ok = self.ok[self.starts[i] : self.starts[i + 1]]
                if ok.any():
                    out[i] = sims[ok].max(axis=0)
            self._cache[key] = out
        return self._cache[key]

    def bm25(self, kind: str, k1: float = 1.2, b: float = 0.75) -> np.ndarray:
        """Okapi BM25 of each task (its distinct terms the query) against each agent's past successes taken as one
        document, IDF over the decision's agents: rare shared terms count most, long records are damped."""
        key = ("bm25", kind, k1, b)
        if key not in self._cache:
            counts = self._sparse(kind).counts
            docs = self._success_counts(kind)
            length = np.asarray(docs.sum(axis=1)).ravel()
            n_docs = max(int((length > 0).sum()), 1)
            avg = float(length[length > 0].mean()) if (length > 0).any() else 1.0
            df = np.bincount(docs.indices, minlength=docs.shape[1])
            idf = np.log1p((n_docs - df + 0.5) / (df + 0.5))
            row = np.repeat(np.arange(docs.shape[0]), np.diff(docs.indptr))
            f = docs.data
            w = idf[docs.indices] * f * (k1 + 1.0) / (f + k1 * (1.0 - b + b * length[row] / avg))
            weights = sparse.csr_matrix((w, docs.indices, docs.indptr), shape=docs.shape)
            query = counts[: self.n_tasks].copy()
            query.data[:] = 1.0
            self._cache[key] = np.asarray((weights @ query.T).toarray())
        return self._cache[key]

    def weighted_success(self, kind: str, min_similarity: float) -> tuple[np.ndarray, np.ndarray]:
        """(Σ similarity × success, Σ similarity) over each agent's past tasks at least `min_similarity` alike."""
        key = ("weighted", kind, min_similarity)
        if key not in self._cache:
            hits = np.zeros((self.n_agents, self.n_tasks))
            mass = np.zeros((self.n_agents, self.n_tasks))
            for i, sims in self._item_blocks(kind):
                sims = np.where(sims >= min_similarity, sims, 0.0)
                hits[i] = self.ok[self.starts[i] : self.starts[i + 1]].astype(np.float64) @ sims
                mass[i] = sims.sum(axis=0)
            self._cache[key] = (hits, mass)
        return self._cache[key]

    def lm_ratio(self, kind: str) -> np.ndarray:
        """Per task n-gram, mean log-ratio of the agent's smoothed model of its past successes to the decision's
        background model: > 0 when the task reads like the agent's own past work."""
        key = ("lm", kind)
        if key not in self._cache:
            st = self._sparse(kind)
            counts = st.counts
            task_counts = counts[: self.n_tasks]
            used = np.unique(task_counts.indices)
            out = np.zeros((self.n_agents, self.n_tasks))
            if used.size:
                total = np.asarray(counts.sum(axis=0)).ravel() + 0.5
                bg = total / total.sum()
                bg_used = bg[used]
                tc = task_counts[:, used]
                lengths = np.maximum(np.asarray(tc.sum(axis=1)).ravel(), 1e-9)
                agent_counts = self._success_counts(kind)
                mu = LM_PRIOR[kind]
                for a0 in range(0, self.n_agents, _AGENT_CHUNK):
                    a1 = min(a0 + _AGENT_CHUNK, self.n_agents)
                    ac = agent_counts[a0:a1]
                    size = np.asarray(ac.sum(axis=1)).ravel()
                    pm = (ac[:, used].toarray() + mu * bg_used) / (size[:, None] + mu)
                    out[a0:a1] = (tc @ (np.log(pm) - np.log(bg_used)).T).T / lengths
            self._cache[key] = out
        return self._cache[key]

    @cached_property
    def success_rate(self) -> np.ndarray:
        """(agents,) Laplace-smoothed share of successes in the compared history."""
        owner = np.repeat(np.arange(self.n_agents), self.hist_len)
        ok = np.bincount(owner[self.ok], minlength=self.n_agents).astype(np.float64)
        return (ok + 1.0) / (self.hist_len + 2.0)
