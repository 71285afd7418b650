"""Top-1 accuracy of every strategy on replayed history (docs/COORDINATION.md, "Quality on real work").

For each window size, up to `limit` non-overlapping windows of the newest history become episodes; every method
solves each with the same exact solver and capacities; top-1 = the share of tasks given to their real author.
Reported per window size with a 95 % confidence interval over episodes, beside the random-assignment expectation
under the same capacities, and the paired difference of each method to `similarity` (the bar the network has to
clear). Every episode is measured twice: with the subjects as their authors wrote them ("style kept") and through
`text.style_blind` ("style-blind": no case, prefixes, ticket marks, punctuation or digits), which is closer to a
board, where tasks are not written by the agent who does them. *Reference* rows are not product strategies:
plain TF-IDF (sublinear tf, successes only) with the same exact assignment, character n-gram cosine and a
character n-gram language model — simple methods that show how much of any gain a non-learned method reaches.

    python -m ansf_mcp.lab.replay_eval --mirror DIR [--list lab/heldout_repos.txt] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from ansf_mcp.coordinator.comparisons import Comparisons
from ansf_mcp.coordinator.episode import NON_LEARNED, Episode
from ansf_mcp.coordinator.solver import solve
from ansf_mcp.coordinator.strategies import decide
from ansf_mcp.lab import replay
from ansf_mcp.lab.evaluate import mean_ci

WINDOWS = (16, 32, 64)
BASELINE = "similarity"
REFERENCES: dict[str, Callable[[Episode], np.ndarray]] = {
    "ref: TF-IDF": lambda ep: Comparisons(ep).centroid_cosine("plain", True),
    "ref: chars cosine": lambda ep: Comparisons(ep).centroid_cosine("chars", True),
    "ref: chars language model": lambda ep: Comparisons(ep).lm_ratio("chars"),
}
Progress = Callable[[float, str], None]


def methods(loaded: dict) -> list[str]:
    """What is measured: `auto` (the default), each neural profile (and its network without the combiner, where
    it has one: what the combiner adds), every fixed strategy, the references."""
    alone = [f"network alone:{p}" for p, net in loaded.items() if getattr(net, "combiner", None) is not None]
    return ["auto", *(f"neural:{p}" for p in loaded), *alone, *NON_LEARNED, *REFERENCES]


def _assign(method: str, ep: Episode, loaded: dict) -> list[tuple[str, str]]:
    if method in REFERENCES:
        sol = solve(ep, REFERENCES[method](ep))
        return [(a.task, a.agent) for a in sol.assignments]
    if method.startswith("network alone:"):
        sol = solve(ep, loaded[method.split(":", 1)[1]].estimate_network(ep))
        return [(a.task, a.agent) for a in sol.assignments]
    if method.startswith("neural:"):
        result = decide(ep, "neural", neural=loaded[method.split(":", 1)[1]]).result
    else:
        default = next(iter(loaded.values()), None)
        result = decide(ep, method, neural=default, neural_allowed=default is not None).result
    return [(a.task, a.agent) for a in result.assignments]


def evaluate_history(
    history: replay.History,
    loaded: dict,
    *,
    windows: tuple[int, ...] = WINDOWS,
    limit: int = 30,
    tag_sources: tuple[str, ...] = ("none", "dirs"),
    text_modes: tuple[replay.TextMode, ...] = replay.TEXT_MODES,
    progress: Progress | None = None,
) -> dict:
    """Per text mode, tag source and window size (`results[cell_key(tags, mode)][window]`): episodes, each
    method's top-1 (mean, ci95) and its paired gap to similarity."""
    names = methods(loaded)
    out: dict = {"repo": history.name, "head": history.head, "commits": len(history.commits), "results": {}}
    steps = len(tag_sources) * len(windows) * len(text_modes)
    done = 0
    for tags in tag_sources:
        for w in windows:
            written = list(replay.windows(history, w, limit=limit, tags=tags))  # type: ignore[arg-type]
            for mode in text_modes:
                key = cell_key(tags, mode)
                eps = [replay.restyle(e, mode) for e in written]
                out["results"].setdefault(key, {})[str(w)] = _cell(eps, w, names, loaded)
                done += 1
                if progress:
                    progress(done / steps, f"{history.name}: {key} window {w}: {len(eps)} episodes")
    return out


def _cell(eps: list[replay.ReplayEpisode], w: int, names: list[str], loaded: dict) -> dict:
    acc: dict[str, list[float]] = {m: [] for m in names}
    rand = []
    for rep in eps:
        rand.append(replay.random_expectation(rep))
        for m in names:
            acc[m].append(replay.top1(rep, _assign(m, rep.episode, loaded)))
    cell: dict = {"episodes": len(eps), "tasks": len(eps) * w}
    if eps:
        cell["random"] = dict(zip(("mean", "ci95"), mean_ci(rand), strict=True))
        base = np.array(acc[BASELINE])
        for m in names:
            mean, ci = mean_ci(acc[m])
            gap, gap_ci = mean_ci(np.array(acc[m]) - base)
            cell[m] = {"mean": mean, "ci95": ci, "vs_similarity": gap, "vs_similarity_ci95": gap_ci}
        cell["per_episode"] = {m: acc[m] for m in names} | {"random": rand}
    return cell


def cell_key(tags: str, mode: str) -> str:
    """"none", "dirs" (style kept, the keys readers of older reports know) or "none, style-blind"..."""
    return tags if mode == "kept" else f"{tags}, style-blind"


def pooled(reports: list[dict], tags: str, window: str, method: str) -> tuple[float, float, float, float, int]:
    """Across repositories: (mean top-1, ci95, mean gap to similarity, its ci95, episodes), episode-weighted."""
    vals, gaps = [], []
    for r in reports:
        cell = r["results"].get(tags, {}).get(window, {})
        per = cell.get("per_episode")
        if not per:
            continue
        vals += per[method]
        gaps += list(np.array(per[method]) - np.array(per[BASELINE]))
    mean, ci = mean_ci(vals)
    gap, gap_ci = mean_ci(gaps)
    return mean, ci, gap, gap_ci, len(vals)


def load_profiles(profiles: list[str], directory: Path | None = None) -> tuple[dict, dict[str, str]]:
    from ansf_mcp.coordinator import neural
    from ansf_mcp.coordinator.episode import ModelUnavailable

    loaded, errors = {}, {}
    for p in profiles:
        try:
            loaded[p] = neural.load(p, directory=directory)
        except ModelUnavailable as exc:
            errors[p] = str(exc)
    return loaded, errors


def markdown(reports: list[dict], *, tags: str = "none") -> str:
    """One table per window size: methods as rows, repositories as columns, then all repositories pooled."""
    if not reports:
        return "no repository replayed"
    names = [m for m in reports[0]["results"].get(tags, {}).get(str(WINDOWS[0]), {}) if m not in (
        "episodes", "tasks", "per_episode")]
    lines = []
    for w in sorted({int(k) for r in reports for k in r["results"].get(tags, {})}):
        lines += [
            f"**Window {w} tasks, tags: {tags}** — top-1 accuracy, mean ± 95 % CI over episodes "
            f"(Δ = paired difference to {BASELINE})",
            "",
            "| method | " + " | ".join(r["repo"] for r in reports) + " | all (Δ) |",
            "| --- |" + " --- |" * (len(reports) + 1),
        ]
        for m in names:
            row = []
            for r in reports:
                c = r["results"].get(tags, {}).get(str(w), {}).get(m)
                row.append(f"{c['mean']:.3f} ± {c['ci95']:.3f}" if c else "–")
            if m == "random":
                mean, ci, *_ = pooled_random(reports, tags, str(w))
                allv = f"{mean:.3f} ± {ci:.3f}"
            else:
                mean, ci, gap, gap_ci, _ = pooled(reports, tags, str(w), m)
                allv = f"{mean:.3f} ± {ci:.3f} ({gap:+.3f} ± {gap_ci:.3f})"
            lines.append(f"| {m} | " + " | ".join(row) + f" | {allv} |")
        eps = [r["results"].get(tags, {}).get(str(w), {}).get("episodes", 0) for r in reports]
        lines += ["", f"Episodes per repository: {', '.join(map(str, eps))}.", ""]
    return "\n".join(lines)


def side_by_side(reports: list[dict], *, tags: str = "none") -> str:
    """All repositories pooled, style kept beside style-blind for every window: mean ± 95 % CI (Δ to similarity)."""
    keys = [cell_key(tags, m) for m in replay.TEXT_MODES]
    present = [k for k in keys if any(k in r["results"] for r in reports)]
    if not present:
        return "no repository replayed"
    first = next(r["results"][present[0]] for r in reports if present[0] in r["results"])
    names = ["random", *(m for m in next(iter(first.values()), {}) if m not in ("episodes", "tasks", "per_episode",
                                                                                  "random"))]
    ws = sorted({int(w) for r in reports for k in present for w in r["results"].get(k, {})})
    modes = {cell_key(tags, "kept"): "style kept", cell_key(tags, "blind"): "style-blind"}
    head = [f"W{w} {modes[k]}" for w in ws for k in present]
    lines = [
        f"**All repositories, tags: {tags}** — top-1 accuracy, mean ± 95 % CI over episodes "
        f"(Δ = paired difference to {BASELINE}, ± its 95 % CI)",
        "",
        "| method | " + " | ".join(head) + " |",
        "| --- |" + " --- |" * len(head),
    ]
    for m in names:
        row = []
        for w in ws:
            for k in present:
                if m == "random":
                    mean, ci, *_ = pooled_random(reports, k, str(w))
                    row.append(f"{mean:.3f} ± {ci:.3f}")
                else:
                    mean, ci, gap, gap_ci, _ = pooled(reports, k, str(w), m)
                    row.append(f"{mean:.3f} ± {ci:.3f} (Δ {gap:+.3f} ± {gap_ci:.3f})")
        lines.append(f"| {m} | " + " | ".join(row) + " |")
    eps = [sum(r["results"].get(k, {}).get(str(w), {}).get("episodes", 0) for r in reports) for w in ws for k in present]
    lines.append("| episodes | " + " | ".join(map(str, eps)) + " |")
    return "\n".join(lines)


def pooled_random(reports: list[dict], tags: str, window: str) -> tuple[float, float, float, float, int]:
    vals = [v for r in reports for v in r["results"].get(tags, {}).get(window, {}).get("per_episode", {}).get(
        "random", [])]
    mean, ci = mean_ci(vals)
    return mean, ci, 0.0, 0.0, len(vals)


def main(argv: list[str] | None = None) -> int:
    from ansf_mcp.coordinator.profiles import DEFAULT_PROFILE
    from ansf_mcp.lab import corpus

    parser = argparse.ArgumentParser(prog="python -m ansf_mcp.lab.replay_eval", description=__doc__.splitlines()[0])
    parser.add_argument("--mirror", type=Path, required=True)
    parser.add_argument("--list", type=Path, default=corpus.HELDOUT_LIST)
    parser.add_argument("--profile", action="append", dest="profiles")
    parser.add_argument("--limit", type=int, default=30)
    parser.add_argument("--checkpoints", type=Path, help="folder of checkpoints (default: the shipped ones)")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--tags", choices=("none", "dirs"), action="append",
                        help="tag sources to measure (default: both); MODEL.md's tables are tags none")
    parser.add_argument("--no-author-check", action="store_true",
                        help="skip the held-out author check (it needs the training and validation mirrors too)")
    args = parser.parse_args(argv)
    loaded, errors = load_profiles(args.profiles or [DEFAULT_PROFILE], args.checkpoints)
    for p, e in errors.items():
        print(f"{p}: not measured — {e}", file=sys.stderr)
    refs = corpus.read_list(args.list)
    if args.list.resolve() == corpus.HELDOUT_LIST and not args.no_author_check:
        # Held out from the people too: refuse to report on a list that shares a top author with the others.
        others = [corpus.read_list(corpus.TRAINING_LIST), corpus.read_list(corpus.VALIDATION_LIST)]
        corpus.check_held_out(corpus.authors_only(args.mirror, refs),
                              corpus.authors_only(args.mirror, [r for rs in others for r in rs]))
    reports = []
    started = time.time()
    for ref in refs:
        h = replay.read_history(corpus.locate(args.mirror, ref.name), name=ref.name, rev=ref.commit)
        reports.append(evaluate_history(h, loaded, limit=args.limit, tag_sources=tuple(args.tags or ("none", "dirs"))))
        print(f"{ref.name} done ({time.time() - started:.0f}s)", file=sys.stderr, flush=True)
    if args.json:
        args.json.write_text(json.dumps(reports) + "\n")
    for tags in args.tags or ("none", "dirs"):
        print(side_by_side(reports, tags=tags) + "\n")
    for tags in args.tags or ("none", "dirs"):
        for mode in replay.TEXT_MODES:
            print(markdown(reports, tags=cell_key(tags, mode)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
