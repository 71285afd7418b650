"""Fit the learned combiner (coordinator/combiner.py) for a network, reproducibly from a seed.

Data, half of the weight each:
- REPLAYED windows of the training repositories (never validation or held-out ones), every window twice: with
  the subjects as written and style-blind (text.style_blind); the label of a pair is whether the agent really
  wrote the task.
- SIMULATED episodes from training sources only: the broad family, its outcome-driven variant (skills visible
  only in success/failure records) and the classic simulator; the label is p* (soft).
Maximum likelihood with a small L2 penalty (L-BFGS). Writes `<network>-combiner.json` beside the network's
weights, naming the network's checksum (loading refuses it for any other network).

    python -m ansf_mcp.lab.combine --mirror DIR [--profile student] [--seed 0] [--checkpoints DIR]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from scipy.optimize import minimize

from ansf_mcp.coordinator import combiner
from ansf_mcp.coordinator.comparisons import Comparisons
from ansf_mcp.coordinator.episode import Episode

L2 = 1e-3


def _rows(net, episode: Episode, label: np.ndarray, names: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    cmp = Comparisons(episode)
    x = combiner.inputs(episode, cmp, net.estimate_network(episode, cmp), names)
    return x.reshape(-1, x.shape[-1]), label.reshape(-1)


def replay_rows(
    net, mirror: Path, per_repo: int, seed: int, repos: Path | None = None, names: tuple[str, ...] = combiner.INPUTS
) -> tuple[list, list]:
    from ansf_mcp.lab import corpus, replay

    rng = np.random.default_rng([seed, 29])
    xs, ys = [], []
    for h in corpus.histories(mirror, corpus.read_list(repos or corpus.TRAINING_LIST)):
        for rep in corpus.sample_windows(h, rng, per_repo, max_agents=16):
            ids = {a.id: i for i, a in enumerate(rep.episode.agents)}
            label = np.zeros((len(rep.episode.agents), len(rep.episode.tasks)))
            for j, t in enumerate(rep.episode.tasks):
                label[ids[rep.truth[t.id]], j] = 1.0
            for mode in replay.TEXT_MODES:
                x, y = _rows(net, replay.restyle(rep, mode).episode, label, names)
                xs.append(x)
                ys.append(y)
        print(f"replayed {h.name}: {len(xs)} episodes", file=sys.stderr, flush=True)
    return xs, ys


def simulated_rows(net, episodes: int, seed: int, names: tuple[str, ...] = combiner.INPUTS) -> tuple[list, list]:
    from ansf_mcp.lab import family, simulator

    sims = [
        *family.generate(episodes, seed, sources=family.TRAIN_SOURCES),
        *family.generate(episodes, seed, sources=family.TRAIN_SOURCES, outcome_driven=True),
        *simulator.generate("train", episodes // 2, seed),
    ]
    xs, ys = [], []
    for s in sims:
        x, y = _rows(net, s.episode, s.p_true, names)
        xs.append(x)
        ys.append(y)
    return xs, ys


def halves(n_replayed: int, n_all: int) -> np.ndarray:
    """Row weights giving half of the weight to the replayed rows (first) and half to the simulated ones, whatever
    their pair counts."""
    n_sim = n_all - n_replayed
    return np.concatenate([np.full(n_replayed, 0.5 / max(n_replayed, 1)), np.full(n_sim, 0.5 / max(n_sim, 1))])


def fit(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, float]:
    """Weighted logistic regression (soft labels allowed) with an L2 penalty on the weights, not the bias."""
    n_in = x.shape[1]
    w = w / w.sum()

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        z = x @ theta[:n_in] + theta[n_in]
        p = 1.0 / (1.0 + np.exp(-z))
        nll = float(w @ (np.logaddexp(0.0, z) - y * z)) + L2 * float(theta[:n_in] @ theta[:n_in])
        g = (p - y) * w
        grad = np.concatenate([x.T @ g + 2 * L2 * theta[:n_in], [g.sum()]])
        return nll, grad

    start = np.zeros(n_in + 1)
    start[0] = 1.0  # the network as it is
    res = minimize(loss, start, jac=True, method="L-BFGS-B", options={"maxiter": 500})
    return res.x[:n_in], float(res.x[n_in])


def main(argv: list[str] | None = None) -> int:
    from ansf_mcp.coordinator import neural
    from ansf_mcp.coordinator.profiles import DEFAULT_PROFILE, PROFILES

    parser = argparse.ArgumentParser(prog="python -m ansf_mcp.lab.combine", description=__doc__.splitlines()[0])
    parser.add_argument("--mirror", type=Path, required=True, help="folder holding the training repositories")
    parser.add_argument("--profile", default=DEFAULT_PROFILE)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--per-repo", type=int, default=15, help="replayed windows per training repository")
    parser.add_argument("--episodes", type=int, default=300, help="simulated episodes per family")
    parser.add_argument("--repos", type=Path, help="list of training repositories (default: lab/training_repos.txt)")
    parser.add_argument("--checkpoints", type=Path, default=neural.CHECKPOINT_DIR)
    args = parser.parse_args(argv)
    started = time.time()
    weights_file = args.checkpoints / f"{PROFILES[args.profile].network.name}.safetensors"
    net = neural.load_file(weights_file, combine=False)
    rx, ry = replay_rows(net, args.mirror, args.per_repo, args.seed, args.repos)
    sx, sy = simulated_rows(net, args.episodes, args.seed)
    x = np.concatenate(rx + sx)
    y = np.concatenate(ry + sy)
    n_r = sum(len(v) for v in ry)
    coef, bias = fit(x, y, halves(n_r, len(y)))
    card = {
        "network": weights_file.name,
        "seed": args.seed,
        "data": f"REPLAYED windows of {args.repos or 'lab/training_repos.txt'} ({args.per_repo} per repository, each as written "
        f"and style-blind: {len(rx)} episodes, {n_r} pairs) and SIMULATED training-source episodes "
        f"({len(sx)} episodes: broad family, outcome-driven family, classic; {len(y) - n_r} pairs)",
        "command": f"python -m ansf_mcp.lab.combine --mirror DIR --profile {args.profile} --seed {args.seed} "
        f"--per-repo {args.per_repo} --episodes {args.episodes}",
        "wall_s": round(time.time() - started, 1),
    }
    out = combiner.path_for(weights_file)
    combiner.save(out, coef, bias, net.card["sha256"], card)
    for name, c in zip(combiner.INPUTS, coef, strict=True):
        print(f"{name:45s} {c:+.4f}")
    print(f"{'bias':45s} {bias:+.4f}\nwrote {out} in {time.time() - started:.0f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
