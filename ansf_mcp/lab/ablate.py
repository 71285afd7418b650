"""What each combiner input adds, measured on VALIDATION data only (docs/MODEL.md, the ablation table).

Every candidate input (`combiner.CANDIDATES`) is computed once for the training rows `lab/combine.py` fits on and
for validation episodes: replayed windows of `lab/validation_repos.txt` (both text modes) and SIMULATED episodes
of the outcome-driven family from held-out sources. Then one combiner per input set is fitted on the training
rows alone, by the same code and weighting as the shipped one, and each is scored: top-1 against the real author
(replayed), value ratio against the oracle (simulated), with the paired difference to the first set.

    python -m ansf_mcp.lab.ablate --mirror DIR [--per-repo 15] [--windows 12] [--cache DIR]
"""

from __future__ import annotations

import argparse
import pickle
import sys
import time
from pathlib import Path

import numpy as np

from ansf_mcp.coordinator import combiner
from ansf_mcp.coordinator.comparisons import Comparisons
from ansf_mcp.coordinator.solver import solve
from ansf_mcp.lab import combine, evaluate, replay
from ansf_mcp.lab.evaluate import mean_ci

BASE = combiner.CANDIDATES[:10]
SETS: dict[str, tuple[str, ...]] = {
    "network logit only": ("network logit",),
    "10 inputs (issue 16's combiner)": BASE,
    "10 + embedding cosine to successes": (*BASE, "embedding cosine to successes"),
    "10 + embedding best match": (*BASE, "embedding best-match cosine"),
    "10 + recent-work embedding cosine": (*BASE, "recent-work embedding cosine"),
    "10 + all three embedding cosines": (*BASE, *combiner.CANDIDATES[10:12], "recent-work embedding cosine"),
    "10 + recent-work word cosine": (*BASE, "recent-work word cosine"),
    "all 14": combiner.CANDIDATES,
}
VALIDATION_SIZES = (16, 32)


def validation_episodes(net, mirror: Path, per_size: int) -> list[tuple[str, object, np.ndarray]]:
    """(mode, ReplayEpisode, inputs (agents, tasks, CANDIDATES)) for ≤ per_size newest windows per size."""
    from ansf_mcp.lab import corpus

    out = []
    for h in corpus.histories(mirror, corpus.read_list(corpus.VALIDATION_LIST)):
        for w in VALIDATION_SIZES:
            for rep in replay.windows(h, w, limit=per_size):
                for mode in replay.TEXT_MODES:
                    r = replay.restyle(rep, mode)
                    cmp = Comparisons(r.episode)
                    x = combiner.inputs(r.episode, cmp, net.estimate_network(r.episode, cmp), combiner.CANDIDATES)
                    out.append((mode, r, x))
        print(f"validation {h.name}: {len(out)} episodes", file=sys.stderr, flush=True)
    return out


def simulated_episodes(net, n: int, seed: int) -> list[tuple[object, np.ndarray]]:
    from ansf_mcp.lab import family

    out = []
    for s in family.generate(n, seed, sources=family.HELDOUT_SOURCES, outcome_driven=True):
        cmp = Comparisons(s.episode)
        out.append((s, combiner.inputs(s.episode, cmp, net.estimate_network(s.episode, cmp), combiner.CANDIDATES)))
    return out


def _top1(rep, p: np.ndarray) -> float:
    return replay.top1(rep, [(a.task, a.agent) for a in solve(rep.episode, p).assignments])


def score(sets: dict[str, tuple[str, ...]], train: tuple[np.ndarray, np.ndarray, int], val: list, sims: list) -> dict:
    """Per input set: its fitted weights and per-episode scores (replayed per mode by window, simulated)."""
    x, y, n_r = train
    w = combine.halves(n_r, len(y))
    out = {}
    for label, names in sets.items():
        cols = [combiner.CANDIDATES.index(n) for n in names]
        coef, bias = combine.fit(x[:, cols], y, w)
        fitted = combiner.Combiner(coef, bias, "", {})
        per: dict[str, list[float]] = {}
        for mode, rep, xv in val:
            per.setdefault(f"{mode} W{rep.window}", []).append(_top1(rep, fitted.apply(xv[..., cols])))
        per["outcome-driven family"] = [
            evaluate.ratio_of_estimate(s.episode, s.p_true, fitted.apply(xs[..., cols])) for s, xs in sims
        ]
        out[label] = {"weights": dict(zip(names, coef.round(4).tolist(), strict=True)), "bias": bias, "per": per}
        print(f"fitted {label}", file=sys.stderr, flush=True)
    return out


def table(results: dict) -> str:
    first = next(iter(results.values()))["per"]
    ref = "10 inputs (issue 16's combiner)"
    cols = list(first)
    lines = ["| inputs | " + " | ".join(cols) + " |", "| --- |" + " --- |" * len(cols)]
    for label, r in results.items():
        cells = []
        for c in cols:
            v = np.array(r["per"][c])
            m, ci = mean_ci(v)
            d, dci = mean_ci(v - np.array(results[ref]["per"][c]))
            cells.append(f"{m:.3f} ± {ci:.3f} (Δ {100 * d:+.1f} ± {100 * dci:.1f})")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from ansf_mcp.coordinator import neural

    parser = argparse.ArgumentParser(prog="python -m ansf_mcp.lab.ablate", description=__doc__.splitlines()[0])
    parser.add_argument("--mirror", type=Path, required=True)
    parser.add_argument("--per-repo", type=int, default=15, help="replayed training windows per repository")
    parser.add_argument("--episodes", type=int, default=300, help="simulated training episodes per family")
    parser.add_argument("--windows", type=int, default=12, help="validation windows per repository and size")
    parser.add_argument("--simulated", type=int, default=200, help="outcome-driven validation episodes")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache", type=Path, help="folder to keep the computed inputs in (reruns skip them)")
    args = parser.parse_args(argv)
    started = time.time()
    net = neural.load_file(neural.CHECKPOINT_DIR / "student.safetensors", combine=False)
    cached = args.cache / "ablate-inputs.pkl" if args.cache else None
    if cached and cached.is_file():
        train, val, sims = pickle.loads(cached.read_bytes())
    else:
        rx, ry = combine.replay_rows(net, args.mirror, args.per_repo, args.seed, names=combiner.CANDIDATES)
        sx, sy = combine.simulated_rows(net, args.episodes, args.seed, names=combiner.CANDIDATES)
        train = (np.concatenate(rx + sx), np.concatenate(ry + sy), sum(len(v) for v in ry))
        val = validation_episodes(net, args.mirror, args.windows)
        sims = simulated_episodes(net, args.simulated, args.seed + 7)
        if cached:
            cached.parent.mkdir(parents=True, exist_ok=True)
            cached.write_bytes(pickle.dumps((train, val, sims)))
    print(f"inputs ready in {time.time() - started:.0f}s", file=sys.stderr, flush=True)
    results = score(SETS, train, val, sims)
    print(table(results))
    for label, r in results.items():
        print(label, r["weights"], round(r["bias"], 4))
    print(f"{time.time() - started:.0f}s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
