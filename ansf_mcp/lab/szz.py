"""Real outcomes from git history by the SZZ method: a commit whose lines a later fix changes failed.

SZZ (Śliwerski, Zimmermann and Zeller, 2005): a *fix* commit (its subject says fix, bug, regression, crash...)
changes or deletes lines; `git blame` on the fix's parent says which earlier commits wrote those lines; each of
them counts as a failure of its author, known from the fix on. Documentation files are left out (a typo fix is
not a failed task). The cost is one `git show` and one `git blame` per file a fix touches, so only the newest
`max_fixes` fix commits of a repository are read (default MAX_FIXES).

`label(history)` marks the blamed commits as failures in the replayed histories (like a revert: an episode sees
a failure only when the fix came before it). `python -m ansf_mcp.lab.szz --mirror DIR` measures, on the
held-out repositories, how well each estimator's `p_success` for the real author predicts whether the task was
later blamed: Brier score, log-loss and a reliability table, beside the base rate (the share of unblamed tasks
in the same episodes: an in-sample constant that no estimator could know in advance) — in both text modes by
default (`--text`): the subjects as written, and style-blind (replay.restyle: no case, commit prefixes, ticket
marks, punctuation or digits), as tasks filed on a board by someone else read. `--fit` fits the success model on
the training repositories; its task-text vocabulary is learnt from style-blind text only (the success model
reads every task style-blind too), so it cannot lean on commit prefixes such as `feat:` or `docs:`.
"""

from __future__ import annotations

import argparse
import bisect
import json
import re
import sys
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path

import numpy as np

from ansf_mcp.lab import replay

MAX_FIXES = 150
TEXT_LABEL = {"kept": "style kept", "blind": "style-blind"}
# The default's p_success (coordinator/success.py) beside the fit scores of every estimator.
DEFAULT_ROW = "default p_success (success model)"
# The success model's task-text vocabulary: the content words found in the most training tasks.
VOCAB_SIZE = 500
VOCAB_MIN_TASKS = 30
VOCAB_L2 = 1e-3
FIX_SUBJECT = re.compile(r"\b(fix(es|ed|ing)?|bug(s|fix)?|regression|crash(es|ed)?|broken)\b", re.IGNORECASE)
_NOT_CODE = re.compile(r"(^|/)(docs?|doc_src|changelog[^/]*|changes[^/]*|news)(/|$)|\.(md|rst|txt|adoc)$",
                       re.IGNORECASE)
_HUNK = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+")


def _changed_lines(repo: Path, fix: str) -> dict[str, list[tuple[int, int]]]:
    """{path: [(first line, count)]} of the lines the fix changed or deleted, in its parent's numbering."""
    out: dict[str, list[tuple[int, int]]] = {}
    path = None
    for line in replay._git(repo, "show", "--unified=0", "--no-renames", "--format=", fix).splitlines():
        if line.startswith("--- "):
            path = line[6:] if line.startswith("--- a/") else None
        elif line.startswith("@@") and path and not _NOT_CODE.search(path):
            m = _HUNK.match(line)
            if m:
                count = int(m.group(2)) if m.group(2) is not None else 1
                if count:
                    out.setdefault(path, []).append((int(m.group(1)), count))
    return out


def blamed(repo: Path, fixes: Iterable[str]) -> dict[str, str]:
    """{sha of an earlier commit: sha of the first fix that changed its lines}."""
    found: dict[str, str] = {}
    for fix in fixes:
        for path, ranges in _changed_lines(repo, fix).items():
            args = ["blame", "--porcelain"]
            for start, count in ranges:
                args += ["-L", f"{start},+{count}"]
            try:
                text = replay._git(repo, *args, f"{fix}^", "--", path)
            except replay.ReplayError:
                continue  # the file or the parent is missing (first commit, shallow copy)
            for line in text.splitlines():
                head = line.split(" ", 1)[0]
                if len(head) == 40 and all(c in "0123456789abcdef" for c in head):
                    found.setdefault(head, fix)
    return found


def label(history: replay.History, max_fixes: int = MAX_FIXES) -> tuple[replay.History, dict[str, str]]:
    """The history with SZZ failures marked (known from the fix on), and {blamed sha: fix sha}."""
    repo = Path(history.repo)
    subjects = replay._git(repo, "log", "--no-merges", "--format=%H %at %s", history.head).splitlines()
    fixes = [(s.split(" ", 2)[0], int(s.split(" ", 2)[1])) for s in subjects
             if len(s.split(" ", 2)) == 3 and FIX_SUBJECT.search(s.split(" ", 2)[2])][:max_fixes]
    found = blamed(repo, [sha for sha, _ in fixes])
    when = dict(fixes)
    times = [c.time for c in history.commits]
    commits = []
    for c in history.commits:
        fix = found.get(c.sha)
        if fix is not None:
            known = bisect.bisect_left(times, when[fix])  # the first task handed out after the fix
            c = replace(c, reverted_at=min(known, c.reverted_at) if c.reverted_at is not None else known)
        commits.append(c)
    return replace(history, commits=commits), found


def success_rows(history: replay.History, found: dict[str, str], *, window: int = 32, limit: int = 30,
                 mode: replay.TextMode = "kept") -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The success model's inputs (no vocabulary yet) for the real author of every replayed task in the given
    text mode, 1 if it was never blamed, and the task's text."""
    from ansf_mcp.coordinator import success
    from ansf_mcp.coordinator.comparisons import Comparisons

    xs, ys, texts = [], [], []
    for window_ep in replay.windows(history, window, limit=limit):
        rep = replay.restyle(window_ep, mode)
        shas = [c.sha for c in history.commits[rep.start : rep.start + window]]
        ids = {a.id: i for i, a in enumerate(rep.episode.agents)}
        x = success.inputs(rep.episode, Comparisons(rep.episode))
        for j, (task, sha) in enumerate(zip(rep.episode.tasks, shas, strict=True)):
            xs.append(x[ids[rep.truth[task.id]], j])
            ys.append(float(sha not in found))
            texts.append(task.description)
    return np.array(xs).reshape(-1, len(success.INPUTS)), np.array(ys), texts


def fit_vocabulary(texts: list[str], y: np.ndarray, *, min_tasks: int = VOCAB_MIN_TASKS,
                   size: int = VOCAB_SIZE) -> dict[str, float]:
    """A bag-of-words logistic (L2 VOCAB_L2) over the `size` content words found in the most tasks (at least
    `min_tasks`), centred on the base rate: {word: weight}."""
    from collections import Counter

    from scipy import sparse
    from scipy.optimize import minimize

    from ansf_mcp.coordinator.text import words

    bags = [set(words(t)) for t in texts]
    counts = Counter(w for b in bags for w in b)
    vocab = [w for w, c in counts.most_common(size) if c >= min_tasks]
    if not vocab or len(y) == 0:
        return {}
    col = {w: k for k, w in enumerate(vocab)}
    r = [i for i, b in enumerate(bags) for w in b if w in col]
    c = [col[w] for b in bags for w in b if w in col]
    x = sparse.csr_matrix((np.ones(len(r)), (r, c)), shape=(len(bags), len(vocab)))
    base = float(np.clip(y.mean(), 1e-3, 1 - 1e-3))
    offset = np.log(base / (1 - base))
    n = len(y)

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        z = x @ theta + offset
        p = 1.0 / (1.0 + np.exp(-z))
        value = float(np.sum(np.logaddexp(0.0, z) - y * z)) / n + VOCAB_L2 * float(theta @ theta)
        return value, x.T @ (p - y) / n + 2 * VOCAB_L2 * theta

    res = minimize(loss, np.zeros(len(vocab)), jac=True, method="L-BFGS-B", options={"maxiter": 500})
    return {w: float(v) for w, v in zip(vocab, res.x, strict=True) if abs(v) >= 1e-4}


def outcome_rows(history: replay.History, found: dict[str, str], loaded: dict, *, window: int = 32,
                 limit: int = 30, mode: replay.TextMode = "kept") -> dict[str, list[tuple[float, int]]]:
    """Per estimator: (p_success of the real author, 1 if the task was never blamed) for every replayed task, in
    the given text mode."""
    from ansf_mcp.coordinator.scoring import REPORTED, SUCCESS_MODEL
    from ansf_mcp.coordinator.strategies import decide

    rows: dict[str, list[tuple[float, int]]] = {}
    net = next(iter(loaded.values()), None)
    for window_ep in replay.windows(history, window, limit=limit):
        rep = replay.restyle(window_ep, mode)
        shas = [c.sha for c in history.commits[rep.start : rep.start + window]]
        by_sha = dict(zip((t.id for t in rep.episode.tasks), shas, strict=True))
        ids = {a.id: i for i, a in enumerate(rep.episode.agents)}
        decision = decide(rep.episode, "auto", neural=net, neural_allowed=net is not None)
        # success_model is p_success before a swarm's shift: the same here, where no swarm record exists
        estimates = {DEFAULT_ROW if k == REPORTED else k: v for k, v in decision.estimates.items()
                     if k != SUCCESS_MODEL}
        for j, task in enumerate(rep.episode.tasks):
            ok = int(by_sha[task.id] not in found)
            for name, p in estimates.items():
                rows.setdefault(name, []).append((float(p[ids[rep.truth[task.id]], j]), ok))
    return rows


def scores(rows: list[tuple[float, int]], bins: int = 5) -> dict:
    from ansf_mcp.coordinator.scoring import EPS

    p = np.array([r[0] for r in rows])
    y = np.array([r[1] for r in rows], dtype=float)
    q = np.clip(p, EPS, 1 - EPS)
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(p, edges) - 1, 0, bins - 1)
    reliability = [
        {"bin": f"{edges[b]:.1f}-{edges[b + 1]:.1f}", "n": int((which == b).sum()),
         "mean_p": float(p[which == b].mean()) if (which == b).any() else None,
         "observed": float(y[which == b].mean()) if (which == b).any() else None}
        for b in range(bins)
    ]
    from ansf_mcp.lab.evaluate import mean_ci

    brier, brier_ci = mean_ci((p - y) ** 2)
    ll, ll_ci = mean_ci(-(y * np.log(q) + (1 - y) * np.log(1 - q)))
    return {"n": len(rows), "brier": brier, "brier_ci95": brier_ci, "log_loss": ll, "log_loss_ci95": ll_ci,
            "reliability": reliability}


def _labelled(mirror: Path, listing: Path, max_fixes: int):
    from ansf_mcp.lab import corpus

    for ref in corpus.read_list(listing):
        h = replay.read_history(corpus.locate(mirror, ref.name), name=ref.name, rev=ref.commit, with_files=False)
        labelled, found = label(h, max_fixes)
        print(f"{ref.name}: {len(found)} commits blamed by the newest {max_fixes} fixes", file=sys.stderr,
              flush=True)
        yield ref.name, labelled, found


def fit_success(mirror: Path, listing: Path, max_fixes: int, limit: int, out: Path) -> dict:
    """Fit the success model on SZZ-labelled repositories (the training list) and write it: first the task-text
    vocabulary, then the calibration over every input."""
    from ansf_mcp.coordinator import success
    from ansf_mcp.lab.combine import fit

    xs, ys, texts = [], [], []
    for _, labelled, found in _labelled(mirror, listing, max_fixes):
        # Every task twice, as written and style-blind: the calibration must hold for both kinds of text.
        for mode in replay.TEXT_MODES:
            x, y, t = success_rows(labelled, found, limit=limit, mode=mode)
            xs.append(x)
            ys.append(y)
            texts += t
    x, y = np.concatenate(xs), np.concatenate(ys)
    from ansf_mcp.coordinator.text import style_blind

    # The vocabulary reads text style-blind (success.text_logit does), so both copies teach it the same words.
    vocabulary = fit_vocabulary([style_blind(t) for t in texts], y)
    x[:, success.INPUTS.index("task-text logit")] = success.text_logit(texts, vocabulary)
    weights, bias = fit(x, y, np.ones(len(y)))
    card = {"data": f"SZZ-labelled replayed tasks (real author, 32-task windows, <= {limit} per repository, "
                    f"newest {max_fixes} fixes) of {listing.name}, each as written and style-blind: {len(y)} "
                    f"rows ({len(y) // 2} tasks), {y.mean():.3f} never blamed; task-text vocabulary learnt from "
                    "style-blind text",
            "command": f"python -m ansf_mcp.lab.szz --mirror MIRROR --fit --list {listing.name}"}
    success.save(out, weights, bias, vocabulary, card)
    return {"tasks": len(y), "words": len(vocabulary), "weights": weights.tolist(), "bias": bias}


def main(argv: list[str] | None = None) -> int:
    from ansf_mcp.coordinator import success
    from ansf_mcp.coordinator.profiles import DEFAULT_PROFILE
    from ansf_mcp.lab import corpus, replay_eval

    parser = argparse.ArgumentParser(prog="python -m ansf_mcp.lab.szz", description=__doc__.splitlines()[0])
    parser.add_argument("--mirror", type=Path, required=True)
    parser.add_argument("--list", type=Path, default=None,
                        help="repositories (default: the held-out list; the training list with --fit)")
    parser.add_argument("--max-fixes", type=int, default=MAX_FIXES)
    parser.add_argument("--limit", type=int, default=30)
    parser.add_argument("--fit", action="store_true", help="fit the success model's calibration and write it")
    parser.add_argument("--out", type=Path, default=success.MODEL_FILE)
    parser.add_argument("--text", choices=[*replay.TEXT_MODES, "both"], default="both",
                        help="the subjects as written (kept), style-blind (blind), or both in one table")
    parser.add_argument("--no-network", action="store_true",
                        help="leave the network out (fast: the success model and the non-learned estimators)")
    args = parser.parse_args(argv)
    if args.fit:
        print(json.dumps(fit_success(args.mirror, args.list or corpus.TRAINING_LIST, args.max_fixes, args.limit,
                                     args.out)))
        return 0
    modes = replay.TEXT_MODES if args.text == "both" else (args.text,)
    loaded = {} if args.no_network else replay_eval.load_profiles([DEFAULT_PROFILE])[0]
    pooled: dict[str, dict[str, list[tuple[float, int]]]] = {m: {} for m in modes}
    for _, labelled, found in _labelled(args.mirror, args.list or corpus.HELDOUT_LIST, args.max_fixes):
        for mode in modes:
            rows = outcome_rows(labelled, found, loaded, limit=args.limit, mode=mode)
            for k, v in rows.items():
                pooled[mode].setdefault(k, []).extend(v)
    if not any(pooled.values()):
        print("no replayed task: every history is shorter than its warm-up and one window")
        return 0
    print(table(pooled))
    return 0


def table(pooled: dict[str, dict[str, list[tuple[float, int]]]]) -> str:
    """One Markdown table over every text mode (estimators' p_success for the real author against "never
    blamed", beside the base rate), then the paired Brier differences of the default to every other row."""
    from ansf_mcp.lab.evaluate import mean_ci

    lines = ["| text | estimator | tasks | Brier | log-loss | reliability (bin: n, mean p → observed) |",
             "| --- | --- | --- | --- | --- | --- |"]
    deltas = []
    for mode, by_estimator in pooled.items():
        if not by_estimator:
            continue
        first = next(iter(by_estimator.values()))
        y = np.array([v for _, v in first], dtype=float)
        base = float(y.mean())
        rows = {**by_estimator, "base rate (in-sample constant)": [(base, int(v)) for v in y]}
        for k, v in rows.items():
            sc = scores(v)
            rel = "; ".join(f"{r['bin']}: {r['n']}, {r['mean_p']:.2f} → {r['observed']:.2f}"
                            for r in sc["reliability"] if r["n"])
            lines.append(f"| {TEXT_LABEL[mode]} | {k} | {sc['n']} | {sc['brier']:.4f} ± {sc['brier_ci95']:.4f} | "
                         f"{sc['log_loss']:.4f} ± {sc['log_loss_ci95']:.4f} | {rel} |")
        if DEFAULT_ROW in rows:
            mine = (np.array([p for p, _ in rows[DEFAULT_ROW]]) - y) ** 2
            for k, v in rows.items():
                if k != DEFAULT_ROW:
                    d, ci = mean_ci(mine - (np.array([p for p, _ in v]) - y) ** 2)
                    deltas.append(f"{TEXT_LABEL[mode]}: paired Δ Brier, {DEFAULT_ROW} − {k}: {d:+.4f} ± {ci:.4f}")
    return "\n".join([*lines, "", *deltas])


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
