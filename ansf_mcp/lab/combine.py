"""Fit the learned combiner (coordinator/combiner.py) for a network, reproducibly from a seed.

Data, half of the weight each:
- REPLAYED windows of the VALIDATION repositories (the newest windows of FIT_SIZES tasks, every window twice:
  with the subjects as written and style-blind, `text.style_blind`). Not the training repositories: the network
  was trained on every one of them, so there its own estimate looks far better than on work it never saw, and a
  combiner fitted there learns to trust it too much (issue 16's combiner: weight 0.97 on the network logit, and
  no input it was offered moved validation top-1). Each task is one choice among the decision's agents: a
  softmax over its pairs' scores, the real author against the others (what top-1 asks).
- SIMULATED episodes from training sources only: the broad family, its outcome-driven variant (skills visible
  only in success/failure records) and the classic simulator; the label of a pair is p* (soft), and these pairs
  also fix the bias, which a choice among agents cannot see.
Maximum likelihood with a small L2 penalty (L-BFGS). Writes `<network>-combiner.json` beside the network's
weights, naming the network's checksum (loading refuses another network). The held-out
repositories stay untouched; validation figures of the shipped combiner are in-sample, so `lab/ablate.py`
measures input sets leaving one validation repository out at a time.

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
# Window sizes of the replayed episodes fitted on (the newest windows of each repository).
FIT_SIZES = (16, 32)
# Share of the fit's weight on simulated pairs (chosen on validation, lab/ablate.py).
SIM_SHARE = 0.5


def _rows(net, episode: Episode, label: np.ndarray, names: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    cmp = Comparisons(episode)
    x = combiner.inputs(episode, cmp, net.estimate_network(episode, cmp), names)
    return x.reshape(-1, x.shape[-1]), label.reshape(-1)


def author_labels(rep) -> np.ndarray:
    """(agents, tasks) of a replayed episode: 1 where the agent really wrote the task."""
    ids = {a.id: i for i, a in enumerate(rep.episode.agents)}
    label = np.zeros((len(rep.episode.agents), len(rep.episode.tasks)))
    for j, t in enumerate(rep.episode.tasks):
        label[ids[rep.truth[t.id]], j] = 1.0
    return label


def replay_episodes(
    net, mirror: Path, repos: Path, per_size: int, names: tuple[str, ...] = combiner.INPUTS,
    sizes: tuple[int, ...] = FIT_SIZES,
) -> list[tuple[str, object, np.ndarray]]:
    """(text mode, replayed episode, inputs (agents, tasks, names)) for the newest `per_size` windows of each
    of `sizes` of every listed repository, each window as written and style-blind."""
    from ansf_mcp.lab import corpus, replay

    out = []
    for h in corpus.histories(mirror, corpus.read_list(repos)):
        for size in sizes:
            for rep in replay.windows(h, size, limit=per_size):
                for mode in replay.TEXT_MODES:
                    r = replay.restyle(rep, mode)
                    cmp = Comparisons(r.episode)
                    out.append((mode, r, combiner.inputs(r.episode, cmp, net.estimate_network(r.episode, cmp), names)))
        print(f"replayed {h.name}: {len(out)} episodes", file=sys.stderr, flush=True)
    return out


def stack(eps: list, cols: list[int] | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows of replayed episodes for `fit_by_task`: inputs (the columns `cols`, default all), author labels and
    one id per task."""
    xs, ys, gs = [], [], []
    for _, rep, x in eps:
        keep = x if cols is None else x[..., cols]
        xs.append(keep.reshape(-1, keep.shape[-1]))
        ys.append(author_labels(rep).reshape(-1))
        gs.append(np.tile(np.arange(x.shape[1]), x.shape[0]))
    return np.concatenate(xs), np.concatenate(ys), task_ids(gs)


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


def task_ids(gs: list[np.ndarray]) -> np.ndarray:
    """One id per task over all episodes, from each episode's per-pair task index."""
    out, offset = [], 0
    for g in gs:
        out.append(g + offset)
        offset += int(g.max()) + 1 if g.size else 0
    return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)


def fit_by_task(
    x: np.ndarray, y: np.ndarray, task: np.ndarray, x_sim: np.ndarray, y_sim: np.ndarray,
    sim_share: float = SIM_SHARE,
) -> tuple[np.ndarray, float]:
    """Replayed tasks, each a choice among the decision's agents (a softmax over its pairs' scores: the real
    author against the others, what top-1 asks), and `sim_share` of the weight on simulated pairs (a logistic
    on soft labels, which also fixes the bias the softmax cannot see); L2 on the weights."""
    n_in = x.shape[1]
    n_tasks = int(task.max()) + 1 if task.size else 0
    w_sim = np.full(len(y_sim), 1.0 / max(len(y_sim), 1))

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        coef = theta[:n_in]
        z = x @ coef
        top = np.full(n_tasks, -np.inf)
        np.maximum.at(top, task, z)
        e = np.exp(z - top[task])
        total = np.bincount(task, weights=e, minlength=n_tasks)
        soft = e / total[task]
        chosen = np.bincount(task, weights=y * z, minlength=n_tasks)
        ce = float(np.mean(top + np.log(total) - chosen))
        g_task = x.T @ ((soft - y) / max(n_tasks, 1))
        zs = x_sim @ coef + theta[n_in]
        ps = 1.0 / (1.0 + np.exp(-zs))
        nll = float(w_sim @ (np.logaddexp(0.0, zs) - y_sim * zs))
        gs = (ps - y_sim) * w_sim
        share = sim_share if len(y_sim) else 0.0
        value = (1 - share) * ce + share * nll + L2 * float(coef @ coef)
        grad = np.concatenate([(1 - share) * g_task + share * (x_sim.T @ gs) + 2 * L2 * coef, [share * gs.sum()]])
        return value, grad

    start = np.zeros(n_in + 1)
    start[0] = 1.0
    res = minimize(loss, start, jac=True, method="L-BFGS-B", options={"maxiter": 500})
    return res.x[:n_in], float(res.x[n_in])


def fit(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, float]:
    """Weighted logistic regression (soft labels allowed) with an L2 penalty on the weights, not the bias (the
    success model's calibration, lab/szz.py, fits with it)."""
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
    from ansf_mcp.lab import corpus

    parser = argparse.ArgumentParser(prog="python -m ansf_mcp.lab.combine", description=__doc__.splitlines()[0])
    parser.add_argument("--mirror", type=Path, required=True, help="folder holding the validation repositories")
    parser.add_argument("--profile", default=DEFAULT_PROFILE)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--per-size", type=int, default=12, help="replayed windows per repository and size")
    parser.add_argument("--episodes", type=int, default=300, help="simulated episodes per family")
    parser.add_argument("--repos", type=Path, help="repositories to fit on (default: lab/validation_repos.txt)")
    parser.add_argument("--checkpoints", type=Path, default=neural.CHECKPOINT_DIR)
    args = parser.parse_args(argv)
    started = time.time()
    weights_file = args.checkpoints / f"{PROFILES[args.profile].network.name}.safetensors"
    net = neural.load_file(weights_file, combine=False)
    eps = replay_episodes(net, args.mirror, args.repos or corpus.VALIDATION_LIST, args.per_size)
    x, y, task = stack(eps)
    sx, sy = simulated_rows(net, args.episodes, args.seed)
    coef, bias = fit_by_task(x, y, task, np.concatenate(sx), np.concatenate(sy))
    card = {
        "network": weights_file.name,
        "seed": args.seed,
        "data": f"REPLAYED windows of {args.repos or 'lab/validation_repos.txt'} (the newest {args.per_size} of "
        f"{' and '.join(map(str, FIT_SIZES))} tasks per repository, each as written and style-blind: {len(eps)} "
        f"episodes, {int(task.max()) + 1 if task.size else 0} tasks) and SIMULATED training-source episodes "
        f"({len(sx)} episodes: broad family, outcome-driven family, classic; {sum(map(len, sy))} pairs)",
        "command": f"python -m ansf_mcp.lab.combine --mirror DIR --profile {args.profile} --seed {args.seed} "
        f"--per-size {args.per_size} --episodes {args.episodes}",
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
