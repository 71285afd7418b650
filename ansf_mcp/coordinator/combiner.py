"""The learned combiner: the network's estimate weighed against the outcome record and plain text evidence.

The network reads texts and outcomes through one transformer, and in a decision it can under-use the strongest
evidence it is given (an agent's success/failure record on similar work) or lean on writing style. The combiner
is a logistic regression over a few per-pair inputs (INPUTS): the network's logit, `similarity`'s and
`history`'s logits, the plain TF-IDF cosine with the agent's past successes, and how much evidence the pair has
(how many and how similar past tasks), with an interaction that lets the outcome record count more where there
is more of it, and the outcome record on close past tasks alone. Cheap to fit compared with the network (`python -m ansf_mcp.lab.combine`), and fitted for one
network: the weights file names the checksum of the network it was fitted on, and loading refuses any other.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ansf_mcp.coordinator import baselines
from ansf_mcp.coordinator.comparisons import Comparisons
from ansf_mcp.coordinator.episode import Episode, ModelUnavailable

INPUTS = (
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
)
# Past tasks at least this alike (word TF-IDF cosine) are "close": their outcomes speak to the task directly. Chosen
# on validation (0.2 against 0.3 and 0.5; outcome-driven simulated family and validation repositories).
CLOSE_SIMILARITY = 0.2
FORMAT = "ansf-combiner/1"
_CLIP = 1e-4


def _logit(p: np.ndarray) -> np.ndarray:
    q = np.clip(p, _CLIP, 1.0 - _CLIP)
    return np.log(q) - np.log1p(-q)


def inputs(episode: Episode, cmp: Comparisons, network_p: np.ndarray) -> np.ndarray:
    """(agents, tasks, len(INPUTS)): what the combiner weighs, for every pair of the decision."""
    def outcome_record(min_similarity: float) -> tuple[np.ndarray, np.ndarray]:
        hits, mass = cmp.weighted_success("words", min_similarity)
        rate = (hits + baselines.PRIOR_WEIGHT * baselines.PRIOR) / (mass + baselines.PRIOR_WEIGHT)
        return _logit(rate), np.log1p(mass)

    z_hist, evidence = outcome_record(baselines.MIN_SIMILARITY)
    z_close, close_evidence = outcome_record(CLOSE_SIMILARITY)
    shape = network_p.shape
    return np.stack(
        [
            _logit(network_p),
            _logit(baselines.similarity(episode, cmp)),
            z_hist,
            cmp.centroid_cosine("plain", True),
            evidence,
            z_hist * evidence,
            np.broadcast_to(np.log1p(cmp.hist_len)[:, None], shape),
            np.broadcast_to(_logit(cmp.success_rate)[:, None], shape),
            z_close,
            close_evidence,
        ],
        axis=-1,
    )


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
