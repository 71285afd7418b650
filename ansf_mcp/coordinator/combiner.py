"""The learned combiner: the network's estimate weighed against the outcome record and plain text evidence.

The network reads texts and outcomes through one transformer, and in a decision it can under-use the strongest
evidence it is given (an agent's success/failure record on similar work) or lean on writing style. The combiner
is a logistic regression over a few per-pair inputs (INPUTS): the network's logit, `similarity`'s and
`history`'s logits, the plain TF-IDF cosine with the agent's past successes, how much evidence the pair has (how
many and how similar past tasks, with an interaction that lets the outcome record count more where there is
more of it), the outcome record on close past tasks alone, and some inputs again minus their mean over the
decision's agents (who fits this task better than the others do). Every input is computed from the decision's own
texts: nothing but the weights is fitted in advance. Cheap to fit compared with the network (`python -m
ansf_mcp.lab.combine`, on validation repositories), and fitted for one network: the weights file names its
checksum, and loading refuses any other.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ansf_mcp.coordinator import baselines
from ansf_mcp.coordinator.comparisons import Comparisons
from ansf_mcp.coordinator.episode import Episode, ModelUnavailable

# An input minus its mean over the decision's agents, task by task: who fits this task better than the others do.
CENTRED = ", task-centred"
# Every input the lab can weigh (lab/ablate.py measures sets of them on validation); INPUTS are the ones the
# shipped combiner uses, in order.
CANDIDATES = (
    "network logit",
    "similarity logit",
    "history logit",
    "tf-idf cosine to successes",
    "log similar-task evidence",
    "history logit x log similar-task evidence",
    "log history size",
    "success-rate logit",
    "close-task history logit",
    "log close-task evidence",
    "word-gram cosine to successes",
    "log bm25 to successes",
    "best-match cosine to successes",
    "recent-work word cosine",
    "history share",
    *(
        f"{name}{CENTRED}"
        for name in ("network logit", "similarity logit", "tf-idf cosine to successes", "word-gram cosine to successes",
                     "log bm25 to successes", "best-match cosine to successes", "recent-work word cosine")
    ),
)
# Issue 16's ten and BM25 against the agent's past successes (raw and task-centred): of the sets lab/ablate.py
# compared (leaving one validation repository out), the best style-blind top-1 over windows of 16, 32 and 64
# tasks, for ~1 ms of a 16 x 64 decision; every set was within noise of the others (docs/MODEL.md).
INPUTS = (*CANDIDATES[:10], "log bm25 to successes", f"log bm25 to successes{CENTRED}")
# Past tasks at least this alike (word TF-IDF cosine) are "close": their outcomes speak to the task directly. Chosen
# on validation (0.2 against 0.3 and 0.5; outcome-driven simulated family and validation repositories).
CLOSE_SIMILARITY = 0.2
# How fast an agent's past work stops telling what it does now: weight 1/2 per RECENCY_HALF_LIFE newer items.
RECENCY_HALF_LIFE = 10.0
FORMAT = "ansf-combiner/1"
_CLIP = 1e-4


def recency_weights(n: int, half_life: float) -> np.ndarray:
    """Weights of an agent's n past items, oldest first: 1 for the newest, 1/2 `half_life` items earlier."""
    return 0.5 ** (np.arange(n - 1, -1, -1) / half_life)


def _logit(p: np.ndarray) -> np.ndarray:
    q = np.clip(p, _CLIP, 1.0 - _CLIP)
    return np.log(q) - np.log1p(-q)


class _Inputs:
    """The candidate inputs of one decision, each computed when first asked for (they share comparisons)."""

    def __init__(self, episode: Episode, cmp: Comparisons, network_p: np.ndarray):
        self.episode, self.cmp, self.network_p = episode, cmp, network_p
        self.shape = network_p.shape
        self._memo: dict[str, np.ndarray] = {}

    def get(self, name: str) -> np.ndarray:
        if name not in self._memo:
            self._memo[name] = np.asarray(self._compute(name), dtype=np.float64)
        return self._memo[name]

    def _record(self, min_similarity: float) -> tuple[np.ndarray, np.ndarray]:
        hits, mass = self.cmp.weighted_success("words", min_similarity)
        rate = (hits + baselines.PRIOR_WEIGHT * baselines.PRIOR) / (mass + baselines.PRIOR_WEIGHT)
        return _logit(rate), np.log1p(mass)

    def _compute(self, name: str) -> np.ndarray:
        cmp, shape = self.cmp, self.shape
        if name.endswith(CENTRED):
            base = self.get(name.removesuffix(CENTRED))
            return base - base.mean(axis=0, keepdims=True)
        if name == "network logit":
            return _logit(self.network_p)
        if name == "similarity logit":
            return _logit(baselines.similarity(self.episode, cmp))
        if name in ("history logit", "log similar-task evidence"):
            z, evidence = self._record(baselines.MIN_SIMILARITY)
            return z if name == "history logit" else evidence
        if name == "history logit x log similar-task evidence":
            return self.get("history logit") * self.get("log similar-task evidence")
        if name in ("close-task history logit", "log close-task evidence"):
            z, evidence = self._record(CLOSE_SIMILARITY)
            return z if name == "close-task history logit" else evidence
        if name == "tf-idf cosine to successes":
            return cmp.centroid_cosine("plain", True)
        if name == "word-gram cosine to successes":
            return cmp.centroid_cosine("wordgrams", True)
        if name == "log bm25 to successes":
            return np.log1p(cmp.bm25("words"))
        if name == "best-match cosine to successes":
            return cmp.best_success_cosine("words")
        if name == "history share":
            return np.broadcast_to((cmp.hist_len / max(int(cmp.hist_len.sum()), 1))[:, None], shape)
        if name == "log history size":
            return np.broadcast_to(np.log1p(cmp.hist_len)[:, None], shape)
        if name == "success-rate logit":
            return np.broadcast_to(_logit(cmp.success_rate)[:, None], shape)
        # The one left: "recent-work word cosine" (`inputs` refuses names outside CANDIDATES).
        out = np.zeros(shape)
        for i in range(cmp.n_agents):
            if cmp.hist_len[i]:
                w = recency_weights(int(cmp.hist_len[i]), RECENCY_HALF_LIFE)
                out[i] = w @ cmp.item_cosine("words", i) / w.sum()
        return out


def inputs(episode: Episode, cmp: Comparisons, network_p: np.ndarray, names: tuple[str, ...] = INPUTS) -> np.ndarray:
    """(agents, tasks, len(names)): what the combiner weighs, for every pair of the decision."""
    unknown = [n for n in names if n not in CANDIDATES]
    if unknown:
        raise ValueError(f"unknown combiner input(s): {', '.join(unknown)}")
    x = _Inputs(episode, cmp, network_p)
    return np.stack([np.broadcast_to(x.get(n), network_p.shape) for n in names], axis=-1)


@dataclass(frozen=True)
class Combiner:
    weights: np.ndarray  # (len(INPUTS),)
    bias: float
    network_sha256: str
    card: dict

    def apply(self, x: np.ndarray) -> np.ndarray:
        z = x @ self.weights + self.bias
        return 1.0 / (1.0 + np.exp(-z))


def path_for(weights: Path) -> Path:
    """checkpoints/student.safetensors -> checkpoints/student-combiner.json"""
    return weights.with_name(f"{weights.stem}-combiner.json")


def save(path: Path, weights: np.ndarray, bias: float, network_sha256: str, card: dict) -> None:
    data = {
        **card,
        "format": FORMAT,
        "inputs": list(INPUTS),
        "weights": [round(float(w), 6) for w in weights],
        "bias": round(float(bias), 6),
        "network_sha256": network_sha256,
    }
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def load(path: Path, network_sha256: str) -> Combiner | None:
    """The combiner fitted for the network with this checksum; None when there is no file. A file that does not
    fit (another network, other inputs, unreadable) is an error, not something to skip silently."""
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
        weights = np.array(data["weights"], dtype=np.float64)
        bias = float(data["bias"])
        inputs_ = tuple(data["inputs"])
        fitted_for = str(data["network_sha256"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelUnavailable(f"combiner {path.name} is unreadable: {exc}") from exc
    if inputs_ != INPUTS or weights.shape != (len(INPUTS),):
        raise ModelUnavailable(f"combiner {path.name} was fitted on other inputs than this code computes")
    if fitted_for != network_sha256:
        raise ModelUnavailable(
            f"combiner {path.name} was fitted for another network (sha256 {fitted_for[:12]}…, "
            f"loaded {network_sha256[:12]}…); refit it: python -m ansf_mcp.lab.combine"
        )
    return Combiner(weights, bias, fitted_for, data)
