"""Fit the `similarity` estimator's logistic calibration on SIMULATED training episodes.

`similarity` scores a pair by the TF-IDF cosine of the task with the agent's past successes and with its past
failures; to report a probability it maps them through sigmoid(BIAS + GAIN_OK * ok - GAIN_FAIL * fail). This
fits the three numbers by maximum likelihood against p* (soft labels) on the broad family's training sources and
the classic simulator's training split, and prints them for `coordinator/baselines.py`.

    python -m ansf_mcp.lab.calibrate [--episodes 2000] [--seed 3]   (the shipped constants: the defaults)
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
from scipy.optimize import minimize

from ansf_mcp.coordinator.comparisons import Comparisons

EPISODES = 2000
SEED = 3


def fit(episodes: int = EPISODES, seed: int = SEED) -> tuple[float, float, float]:
    from ansf_mcp.lab import family, simulator

    sims = [
        *family.generate(episodes * 3 // 4, seed, sources=family.TRAIN_SOURCES),
        *simulator.generate("train", episodes // 4, seed),
    ]
    xs, ys = [], []
    for s in sims:
        cmp = Comparisons(s.episode)
        xs.append(np.stack([cmp.centroid_cosine("words", True).ravel(), cmp.centroid_cosine("words", False).ravel()], 1))
        ys.append(s.p_true.ravel())
    x, y = np.concatenate(xs), np.concatenate(ys)

    def nll(w: np.ndarray) -> float:
        z = w[0] + w[1] * x[:, 0] - w[2] * x[:, 1]
        return float(np.mean(np.logaddexp(0, z) - y * z))

    res = minimize(nll, np.array([0.0, 1.0, 1.0]), method="L-BFGS-B")
    return tuple(float(v) for v in res.x)  # type: ignore[return-value]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ansf_mcp.lab.calibrate", description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=EPISODES)
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args(argv)
    bias, ok, fail = fit(args.episodes, args.seed)
    print(f"SIMILARITY_BIAS = {bias:.3f}\nSIMILARITY_GAIN_OK = {ok:.3f}\nSIMILARITY_GAIN_FAIL = {fail:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
