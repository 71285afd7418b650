"""p_success: will the work succeed if this agent does it — apart from who would take the task.

The estimators (network + combiner, `similarity`, `history`) score *fit*: who is likely to take a task, which is
what the solver ranks by. On real history that score is an authorship probability (every non-author counts as a
failure in the replay label), so it says little about whether the work succeeds: on SZZ-labelled held-out
repositories the network's `p_success` for the real author was the worst of all estimators (docs/MODEL.md).

The success model answers the other question. It reads only outcome records, from the broad to the narrow, each
shrunk towards the level above it (empirical Bayes):

- the swarm's success rate over every past task of every agent in the decision, shrunk to 1/2 by one pseudo-count
  of each;
- the agent's own success rate, shrunk to the swarm's rate by AGENT_PSEUDO past tasks;
- the agent's similarity-weighted success rate on past tasks like this one (word TF-IDF cosine ≥
  baselines.MIN_SIMILARITY), shrunk to the agent's rate by TASK_PSEUDO;

and what kind of work the task text describes: a bag-of-words logistic over its content words (`words` in the
model file: some work, such as documentation, is rarely blamed by a later fix; other work often is), learnt from
and applied to style-blind text (text.style_blind), so that commit prefixes such as `feat:` or `docs:`, which a
task filed on a board by someone else does not carry, count for nothing. A small
logistic model over these logits and the amount of evidence (INPUTS) calibrates the result
(`checkpoints/success.json`, fitted on SZZ-labelled TRAINING repositories by `python -m ansf_mcp.lab.szz --fit`).
It uses no network, so it needs no torch and is the same for every strategy. Without the file the uncalibrated
narrowest level is used (weight 1 on its logit).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from ansf_mcp.coordinator import baselines
from ansf_mcp.coordinator.comparisons import Comparisons
from ansf_mcp.coordinator.episode import Episode, ModelUnavailable
from ansf_mcp.coordinator.text import style_blind, words

INPUTS = (
    "task-record logit",
    "agent-rate logit",
    "swarm-rate logit",
    "log agent history size",
    "log similar-task evidence",
    "task-text logit",
)
FORMAT = "ansf-success/1"
MODEL_FILE = Path(__file__).resolve().parent / "checkpoints" / "success.json"
# How many past tasks the level above is worth when shrinking a level to it.
AGENT_PSEUDO = 5.0
TASK_PSEUDO = 2.0
_CLIP = 1e-4


def _logit(p: np.ndarray) -> np.ndarray:
    q = np.clip(p, _CLIP, 1.0 - _CLIP)
    return np.log(q) - np.log1p(-q)


def text_logit(descriptions: list[str], vocabulary: dict[str, float]) -> np.ndarray:
    """(tasks,) the summed weights of the distinct content words of each task that the vocabulary knows, read
    style-blind: whether work fails is a matter of what it is, not of how its writer labels it (`feat:`, `[docs]`)."""
    return np.array([sum(vocabulary.get(w, 0.0) for w in set(words(style_blind(d)))) for d in descriptions],
                    dtype=np.float64)


def inputs(episode: Episode, cmp: Comparisons | None = None,
           vocabulary: dict[str, float] | None = None) -> np.ndarray:
    """(agents, tasks, len(INPUTS)): the outcome records and the task-text logit the success model weighs."""
    cmp = cmp or Comparisons(episode)
    n_a, n_t = len(episode.agents), len(episode.tasks)
    n_hist = cmp.hist_len.astype(np.float64)
    owner = np.repeat(np.arange(n_a), cmp.hist_len)
    ok = np.bincount(owner[cmp.ok], minlength=n_a).astype(np.float64)
    swarm = (ok.sum() + 1.0) / (n_hist.sum() + 2.0)
    agent = (ok + AGENT_PSEUDO * swarm) / (n_hist + AGENT_PSEUDO)
    hits, mass = cmp.weighted_success("words", baselines.MIN_SIMILARITY)
    task = (hits + TASK_PSEUDO * agent[:, None]) / (mass + TASK_PSEUDO)
    shape = (n_a, n_t)
    return np.stack(
        [
            _logit(task),
            np.broadcast_to(_logit(agent)[:, None], shape),
            np.full(shape, float(_logit(np.array(swarm)))),
            np.broadcast_to(np.log1p(n_hist)[:, None], shape),
            np.log1p(mass),
            np.broadcast_to(text_logit([t.description for t in episode.tasks], vocabulary or {})[None, :], shape),
        ],
        axis=-1,
    )


@dataclass(frozen=True)
class SuccessModel:
    weights: np.ndarray  # (len(INPUTS),)
    bias: float
    vocabulary: dict[str, float]
    card: dict

    def apply(self, x: np.ndarray) -> np.ndarray:
        z = x @ self.weights + self.bias
        return 1.0 / (1.0 + np.exp(-z))

    def estimate(self, episode: Episode, cmp: Comparisons | None = None) -> np.ndarray:
        """(agents, tasks) p(the work succeeds | this agent does it), each in [0, 1]."""
        if not episode.tasks:
            return np.zeros((len(episode.agents), 0))
        return self.apply(inputs(episode, cmp, self.vocabulary))


UNFITTED = SuccessModel(np.eye(len(INPUTS))[0], 0.0, {}, {"data": "unfitted: the task-level record as it is"})


def save(path: Path, weights: np.ndarray, bias: float, vocabulary: dict[str, float], card: dict) -> None:
    data = {**card, "format": FORMAT, "inputs": list(INPUTS), "agent_pseudo": AGENT_PSEUDO,
            "task_pseudo": TASK_PSEUDO, "weights": [round(float(w), 6) for w in weights],
            "bias": round(float(bias), 6), "words": {w: round(float(v), 5) for w, v in sorted(vocabulary.items())}}
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def load(path: Path) -> SuccessModel:
    """The fitted model; UNFITTED when there is no file. A file that does not fit this code is an error."""
    if not path.is_file():
        return UNFITTED
    try:
        data = json.loads(path.read_text())
        weights = np.array(data["weights"], dtype=np.float64)
        bias = float(data["bias"])
        names = tuple(data["inputs"])
        pseudo = (float(data["agent_pseudo"]), float(data["task_pseudo"]))
        vocabulary = {str(w): float(v) for w, v in data["words"].items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ModelUnavailable(f"success model {path.name} is unreadable: {exc}") from exc
    if names != INPUTS or weights.shape != (len(INPUTS),) or pseudo != (AGENT_PSEUDO, TASK_PSEUDO):
        raise ModelUnavailable(f"success model {path.name} was fitted on other inputs than this code computes")
    return SuccessModel(weights, bias, vocabulary, data)


@lru_cache(maxsize=1)
def shipped() -> SuccessModel:
    # A damaged install must not stop every strategy from deciding: p_success falls back to the unfitted model
    # (shrunk outcome records alone), and the log says why.
    try:
        return load(MODEL_FILE)
    except ModelUnavailable as exc:
        logging.getLogger(__name__).error("%s; p_success uses the unfitted success model", exc)
        return UNFITTED


# The model is fitted on SZZ-labelled git history, where 85 % of the work is never blamed by a later fix. A swarm
# can fail far more often than that (a hard project, weak agents), and its record weighs little among the inputs,
# so on a swarm that succeeded 39 % of the time every answer said about 0.8. Each swarm's reported outcomes
# therefore move the model's logit by one shift of their own: the maximum a posteriori offset under a normal prior
# (SHIFT_PRIOR_SD), fitted on the model's own p for the pairs whose outcomes came back (scoring's kept pairs).
SHIFT_PRIOR_SD = 1.0
SHIFT_MIN_OUTCOMES = 5
# The model weighs an agent's own record little (on SZZ history it predicted little), so an agent that failed 150 of
# 150 similar tasks was still given about 0.7. Each agent's reported outcomes therefore move its row by a shift of
# its own on top of the swarm's, fitted the same way on that agent's pairs with a tighter prior: on replayed REAL
# outcomes it is level with the swarm shift alone (docs/MODEL.md), on a board whose agents differ it follows them.
AGENT_SHIFT_PRIOR_SD = 0.5


def _map_shift(z: np.ndarray, y: np.ndarray, prior_sd: float) -> float:
    """The maximum a posteriori logit offset b for outcomes y under logits z + b, with b ~ N(0, prior_sd²)."""
    b = 0.0
    for _ in range(25):  # Newton on a strictly convex function of one variable
        q = 1.0 / (1.0 + np.exp(-(z + b)))
        grad = float(np.sum(q - y)) + b / prior_sd**2
        hess = float(np.sum(q * (1.0 - q))) + 1.0 / prior_sd**2
        step = grad / hess
        b -= step
        if abs(step) < 1e-9:
            break
    return b


def swarm_shift(pairs: list[tuple[float, bool]]) -> float:
    """The logit offset that makes the model's p fit this swarm's outcomes, shrunk to 0 by the prior; 0 with
    fewer than SHIFT_MIN_OUTCOMES outcomes."""
    if len(pairs) < SHIFT_MIN_OUTCOMES:
        return 0.0
    z = _logit(np.array([p for p, _ in pairs], dtype=np.float64))
    y = np.array([s for _, s in pairs], dtype=np.float64)
    return _map_shift(z, y, SHIFT_PRIOR_SD)


def agent_shifts(pairs: list[tuple[float, bool]], owners: list[str | None], agents: list[str],
                 swarm: float) -> np.ndarray:
    """(agents,) each agent's logit offset beyond the swarm's shift, fitted on its own pairs (raw p, outcome;
    `owners` aligned with `pairs`) after that shift; 0 for an agent with fewer than SHIFT_MIN_OUTCOMES."""
    out = np.zeros(len(agents), dtype=np.float64)
    if len(owners) != len(pairs):
        return out
    mine: dict[str, list[tuple[float, bool]]] = {}
    for pair, owner in zip(pairs, owners, strict=True):
        if owner is not None:
            mine.setdefault(owner, []).append(pair)
    for i, agent in enumerate(agents):
        own = mine.get(agent, [])
        if len(own) >= SHIFT_MIN_OUTCOMES:
            z = _logit(np.array([p for p, _ in own], dtype=np.float64)) + swarm
            out[i] = _map_shift(z, np.array([s for _, s in own], dtype=np.float64), AGENT_SHIFT_PRIOR_SD)
    return out


def shifted(p: np.ndarray, shift: float | np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-(_logit(p) + shift)))
