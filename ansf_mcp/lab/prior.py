"""Write `auto`'s starting belief: each probabilistic estimator's log-loss and Brier score on SIMULATED held-out episodes.

The data are SIMULATED episodes that no training run sees — the broad family's held-out sources and the classic
simulator's held-out split — scored against the true probabilities p* over every (agent, task) pair (the
expected log-loss and Brier score of an outcome drawn from p*). Real outcomes reported to a swarm then move
`auto` away from this prior (coordinator/scoring.py). Beside the raw scores (calibration), each estimator's
recalibrated scores: outcomes drawn from p* once (fixed seed), each episode's pairs cross-fitted as a swarm's
kept outcomes are (scoring.cross_fitted), so the prior is on the yardstick `auto` compares the live record with.

    python -m ansf_mcp.lab.prior [--episodes 300] [--out coordinator/checkpoints/auto_prior.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from ansf_mcp.coordinator import baselines
from ansf_mcp.coordinator.comparisons import Comparisons
from ansf_mcp.coordinator.profiles import DEFAULT_PROFILE
from ansf_mcp.coordinator.scoring import EPS, KEPT_OUTCOMES, PRIOR_FILE, cross_fitted

SEED = 20_263


def expected_scores(p: np.ndarray, p_true: np.ndarray) -> tuple[float, float]:
    """Mean expected log-loss and Brier score of predictions p for outcomes ~ Bernoulli(p_true)."""
    q = np.clip(p, EPS, 1 - EPS)
    ll = -(p_true * np.log(q) + (1 - p_true) * np.log(1 - q))
    br = (p - p_true) ** 2 + p_true * (1 - p_true)
    return float(ll.mean()), float(br.mean())


def recalibrated_scores(p: np.ndarray, outcomes: np.ndarray) -> tuple[float, float, int] | None:
    """Mean log-loss and Brier score of p on drawn outcomes after the live record's out-of-sample
    recalibration (at most KEPT_OUTCOMES pairs, as a swarm keeps), and how many pairs were scored."""
    pairs = list(zip(p.ravel().tolist(), (outcomes.ravel() > 0).tolist(), strict=True))[:KEPT_OUTCOMES]
    record = cross_fitted(pairs)
    if record is None:
        return None
    return record.log_loss_sum / record.n, record.brier_sum / record.n, record.n


def measure(episodes: int, profile: str = DEFAULT_PROFILE, directory: Path | None = None) -> dict:
    from ansf_mcp.coordinator import neural
    from ansf_mcp.lab import family, simulator

    sims = [
        *family.generate(episodes, SEED, sources=family.HELDOUT_SOURCES),
        *simulator.generate("heldout", episodes // 2, SEED),
    ]
    net = neural.load(profile, directory=directory)
    sums: dict[str, list[tuple[float, float, int]]] = {"neural": [], "similarity": [], "history": []}
    recal: dict[str, list[tuple[float, float, int]]] = {name: [] for name in sums}
    rng = np.random.default_rng(SEED)
    for s in sims:
        outcomes = rng.random(s.p_true.shape) < s.p_true
        cmp = Comparisons(s.episode)
        estimates = {
            "neural": net.estimate(s.episode, cmp),
            "similarity": baselines.similarity(s.episode, cmp),
            "history": baselines.history(s.episode, cmp),
        }
        for name, p in estimates.items():
            ll, br = expected_scores(p, s.p_true)
            sums[name].append((ll, br, s.p_true.size))
            if (r := recalibrated_scores(p, outcomes)) is not None:
                recal[name].append(r)
    out = {}
    for name, rows in sums.items():
        w = np.array([r[2] for r in rows], dtype=np.float64)
        out[name] = {
            "log_loss": round(float(np.average([r[0] for r in rows], weights=w)), 4),
            "brier": round(float(np.average([r[1] for r in rows], weights=w)), 4),
            "pairs": int(w.sum()),
        }
        kept = recal[name]
        if kept:
            wk = np.array([r[2] for r in kept], dtype=np.float64)
            out[name]["recalibrated_log_loss"] = round(float(np.average([r[0] for r in kept], weights=wk)), 4)
            out[name]["recalibrated_brier"] = round(float(np.average([r[1] for r in kept], weights=wk)), 4)
            out[name]["recalibrated_pairs"] = int(wk.sum())
    return {
        "data": f"SIMULATED held-out episodes: {episodes} from the broad family's held-out sources and "
        f"{episodes // 2} from the classic simulator's held-out split (seed {SEED}); expected scores against p* "
        "(raw), and scores on outcomes drawn from p* after each episode's cross-fitted recalibration",
        "profile": profile,
        "checkpoint_sha256": net.card.get("sha256"),
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "estimators": out,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ansf_mcp.lab.prior", description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=300)
    parser.add_argument("--checkpoints", type=Path, help="folder of checkpoints (default: the shipped ones)")
    parser.add_argument("--out", type=Path, default=PRIOR_FILE)
    args = parser.parse_args(argv)
    data = measure(args.episodes, directory=args.checkpoints)
    args.out.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    print(json.dumps(data["estimators"], indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
