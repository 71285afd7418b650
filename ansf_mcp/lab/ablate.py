"""What each combiner input adds, measured on VALIDATION repositories only (docs/MODEL.md, the ablation table).

The combiner is fitted on replayed windows of the validation repositories (`lab/combine.py`: the network has
seen every training repository, so on them its own estimate looks better than it is). To measure an input set
without scoring a fit on its own data, each validation repository is left out in turn: a combiner is fitted, by
the same code as the shipped one, on the other seven (their newest windows of 16 and 32 tasks, both text modes)
and the SIMULATED training-source episodes, and scored on the one left out (windows of 16, 32 and 64 tasks) —
top-1 against the real author. The outcome-driven simulated family (VALIDATION sources,
`family.VALIDATION_SOURCES`; value ratio against the oracle) is scored with the set fitted on all eight. Δ is
paired, against the first set.

    python -m ansf_mcp.lab.ablate --mirror DIR [--windows 12] [--simulated 200] [--cache DIR]
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

_C = combiner.CENTRED
_BASE = combiner.CANDIDATES[:10]
# The task-centred copies of the network, similarity and TF-IDF inputs.
_CENTRED = tuple(f"{n}{_C}" for n in ("network logit", "similarity logit", "tf-idf cosine to successes"))
_THIRTEEN = (*_BASE, *_CENTRED)


def _with_centred(base: tuple[str, ...], *names: str) -> tuple[str, ...]:
    return (*base, *names, *(f"{n}{_C}" for n in names if f"{n}{_C}" in combiner.CANDIDATES))


_NEW = ("word-gram cosine to successes", "log bm25 to successes", "best-match cosine to successes",
        "recent-work word cosine", "history share")
# The first set is the shipped one (Δ is against it). docs/MODEL.md also shows the sets with the word embeddings
# that main 5cc0f89 shipped, as measured before they were removed.
SETS: dict[str, tuple[str, ...]] = {
    "10 + log bm25 to successes (and task-centred): shipped": combiner.INPUTS,
    "10 inputs (issue 16's)": _BASE,
    "13: 10 + 3 task-centred": _THIRTEEN,
    **{f"13 + {n} (and task-centred)": _with_centred(_THIRTEEN, n) for n in _NEW},
    "13 + all five (and task-centred)": _with_centred(_THIRTEEN, *_NEW),
    "all candidates": combiner.CANDIDATES,
}
# Variants of the share of simulated pairs in the fit (the default is combine.SIM_SHARE).
SHARES: dict[str, tuple[tuple[str, ...], float]] = {}
# Window sizes scored; the combiners are fitted on combine.FIT_SIZES only (as the shipped one is).
SIZES = (16, 32, 64)


def simulated_episodes(net, n: int, seed: int) -> list[tuple[object, np.ndarray]]:
    from ansf_mcp.lab import family

    out = []
    for s in family.generate(n, seed, sources=family.VALIDATION_SOURCES, outcome_driven=True):
        cmp = Comparisons(s.episode)
        out.append((s, combiner.inputs(s.episode, cmp, net.estimate_network(s.episode, cmp), combiner.CANDIDATES)))
    return out


def _top1(rep: replay.ReplayEpisode, p: np.ndarray) -> float:
    return replay.top1(rep, [(a.task, a.agent) for a in solve(rep.episode, p).assignments])


def score(sets: dict[str, tuple[tuple[str, ...], float]], val: list, sims_train: tuple, sims_eval: list) -> dict:
    """Per input set: per-episode top-1 by cell (leave one repository out), the family's value ratios, and the
    weights fitted on all validation repositories."""
    sx, sy = sims_train
    repos = sorted({rep.repo for _, rep, _ in val})
    out = {}
    for label, (names, share) in sets.items():
        cols = [combiner.CANDIDATES.index(n) for n in names]
        per: dict[str, list[float]] = {}
        fit_on = [e for e in val if e[1].window in combine.FIT_SIZES]
        for left_out in repos:
            x, y, task = combine.stack([e for e in fit_on if e[1].repo != left_out], cols)
            fitted = combiner.Combiner(*combine.fit_by_task(x, y, task, sx[:, cols], sy, share), "", {})
            for mode, rep, xv in val:
                if rep.repo == left_out:
                    per.setdefault(f"{mode} W{rep.window}", []).append(_top1(rep, fitted.apply(xv[..., cols])))
        x, y, task = combine.stack(fit_on, cols)
        coef, bias = combine.fit_by_task(x, y, task, sx[:, cols], sy, share)
        fitted = combiner.Combiner(coef, bias, "", {})
        per["outcome-driven family"] = [
            evaluate.ratio_of_estimate(s.episode, s.p_true, fitted.apply(xs[..., cols])) for s, xs in sims_eval
        ]
        out[label] = {"weights": dict(zip(names, coef.round(4).tolist(), strict=True)), "bias": bias, "per": per}
        print(f"scored {label}", file=sys.stderr, flush=True)
    return out


def table(results: dict) -> str:
    ref = next(iter(results.values()))["per"]
    cols = list(ref)
    lines = ["| inputs | " + " | ".join(cols) + " |", "| --- |" + " --- |" * len(cols)]
    for label, r in results.items():
        cells = []
        for c in cols:
            v = np.array(r["per"][c])
            m, ci = mean_ci(v)
            d, dci = mean_ci(v - np.array(ref[c]))
            cells.append(f"{m:.3f} ± {ci:.3f} (Δ {100 * d:+.1f} ± {100 * dci:.1f})")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from ansf_mcp.coordinator import neural
    from ansf_mcp.lab import corpus

    parser = argparse.ArgumentParser(prog="python -m ansf_mcp.lab.ablate", description=__doc__.splitlines()[0])
    parser.add_argument("--mirror", type=Path, required=True)
    parser.add_argument("--episodes", type=int, default=300, help="simulated training episodes per family")
    parser.add_argument("--windows", type=int, default=12, help="validation windows per repository and size")
    parser.add_argument("--simulated", type=int, default=200, help="outcome-driven validation episodes")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache", type=Path, help="folder to keep the computed inputs in (reruns skip them)")
    parser.add_argument("--repos", type=Path, help="repositories to measure on (default: lab/validation_repos.txt)")
    args = parser.parse_args(argv)
    started = time.time()
    net = neural.load_file(neural.CHECKPOINT_DIR / "student.safetensors", combine=False)
    cached = args.cache / "ablate-inputs.pkl" if args.cache else None
    if cached and cached.is_file():
        sims_train, val, sims_eval = pickle.loads(cached.read_bytes())
    else:
        sx, sy = combine.simulated_rows(net, args.episodes, args.seed, names=combiner.CANDIDATES)
        sims_train = (np.concatenate(sx), np.concatenate(sy))
        val = combine.replay_episodes(net, args.mirror, args.repos or corpus.VALIDATION_LIST, args.windows,
                                      combiner.CANDIDATES, SIZES)
        sims_eval = simulated_episodes(net, args.simulated, args.seed + 7)
        if cached:
            cached.parent.mkdir(parents=True, exist_ok=True)
            cached.write_bytes(pickle.dumps((sims_train, val, sims_eval)))
    print(f"inputs ready in {time.time() - started:.0f}s", file=sys.stderr, flush=True)
    results = score({k: (v, combine.SIM_SHARE) for k, v in SETS.items()} | SHARES, val, sims_train, sims_eval)
    print(table(results))
    for label, r in results.items():
        print(label, r["weights"], round(r["bias"], 4))
    print(f"{time.time() - started:.0f}s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
