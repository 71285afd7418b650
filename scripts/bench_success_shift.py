"""What the shifts of p_success (coordinator/success.py: swarm_shift, agent_shifts) do, each paired with less.

    .venv/bin/python scripts/bench_success_shift.py simulated --seeds 8            # a live board, SIMULATED outcomes
    .venv/bin/python scripts/bench_success_shift.py simulated --seeds 8 --rates 0.75,0.8,0.85,0.9,0.95
    .venv/bin/python scripts/bench_success_shift.py replay --mirror MIRROR --list ansf_mcp/lab/heldout_repos.txt
    .venv/bin/python scripts/bench_success_shift.py replay --mirror MIRROR --known-late

`simulated`: 5 agents whose work succeeds at the given rates, 8 rounds of 10 tasks under `history` on a real board
(SQLite); rounds 3-8 scored per seed; runs without shifts, with the swarm's shift, and with the swarm's and each
agent's, on the same seed.

`replay`: REAL outcomes. Each repository is a swarm, its 32-task windows (style-blind, the newest 30) oldest first;
a task's outcome is 1 when no later fix blames it (SZZ, lab/szz.py). The swarm's shift for a window is fitted on
the earlier windows' (model p, outcome) pairs, each author's on its own (newest KEPT_OUTCOMES of the swarm); scored
per task against raw p and the base rate known so far. By default
an earlier outcome is its final label, as a board hears it when the work is reported; `--known-late` counts a
failure only once the fix that blames it came before the window (git's own timing: most failures surface late).
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
from pathlib import Path

import numpy as np

from ansf_mcp.coordinator import success


def _ci(d: np.ndarray) -> str:
    return f"{d.mean():+.4f} ± {1.96 * d.std(ddof=1) / math.sqrt(len(d)):.4f}"


SHIFTS = ("none", "swarm", "swarm + agent")


def simulated_run(seed: int, rates: list[float], shifts: str) -> tuple[float, float]:
    """(Brier, log-loss) of the reported p_success over rounds 3-8 of one simulated board."""
    from ansf_mcp.board.board import Board
    from ansf_mcp.board.models import AgentSpec, TaskSpec
    from ansf_mcp.store.db import open_store

    saved = success.SHIFT_MIN_OUTCOMES, success.AGENT_SHIFT_PRIOR_SD
    if shifts == "none":
        success.SHIFT_MIN_OUTCOMES = 10**9
    elif shifts == "swarm":
        success.AGENT_SHIFT_PRIOR_SD = 1e-9  # a prior this tight holds every agent's offset at 0
    try:
        rng = np.random.default_rng(seed)
        store = open_store(Path(tempfile.mkdtemp()) / "db.sqlite3")
        board = Board(store)
        rate = {f"agent-{i}": r for i, r in enumerate(rates)}
        sw = board.spawn("s", [AgentSpec(id=a, role="dev") for a in rate], "mesh").swarm_id
        words = ["parser", "cache", "login", "report", "export", "index", "billing", "search", "upload", "metrics"]
        briers, losses = [], []
        for r in range(8):
            specs = [TaskSpec(id=f"r{r}t{j}", description=f"fix the {words[j]} bug in module {r}") for j in range(10)]
            said = {a.task: a.p_success for a in board.coordinate(sw, specs, "history").assignments}
            for agent in rate:
                claim = board.claim_next(sw, agent)
                if not claim.claimed or claim.task is None:
                    continue
                ok = bool(rng.random() < rate[agent])
                board.report(sw, claim.task.id, agent, ok, "done", claim=claim.claim)
                p = said.get(claim.task.id)
                if r >= 2 and p is not None:
                    q = min(max(p, 1e-6), 1 - 1e-6)
                    briers.append((q - ok) ** 2)
                    losses.append(-math.log(q if ok else 1 - q))
        store.close()
        return float(np.mean(briers)), float(np.mean(losses))
    finally:
        success.SHIFT_MIN_OUTCOMES, success.AGENT_SHIFT_PRIOR_SD = saved


def simulated(args: argparse.Namespace) -> None:
    rates = [float(x) for x in args.rates.split(",")]
    runs = {name: np.array([simulated_run(s, rates, name) for s in range(args.seeds)]) for name in SHIFTS}
    print(f"SIMULATED board, rates {rates}, {args.seeds} seeds, rounds 3-8")
    for name, r in runs.items():
        print(f"  shifts: {name:13s} Brier {r[:, 0].mean():.4f}, log-loss {r[:, 1].mean():.4f}")
    for more, less in (("swarm", "none"), ("swarm + agent", "swarm")):
        d = runs[more] - runs[less]
        print(f"  paired, {more} - {less}: Brier {_ci(d[:, 0])}, log-loss {_ci(d[:, 1])}")


def replay_rows(mirror: Path, listing: Path, known_late: bool) -> np.ndarray:
    """Per task: raw model p, swarm-shifted p, swarm- and agent-shifted p, base rate so far, outcome (REAL, SZZ)."""
    from ansf_mcp.coordinator.scoring import KEPT_OUTCOMES
    from ansf_mcp.lab import corpus, replay, szz

    model = success.shipped()
    rows = []
    for ref in corpus.read_list(listing):
        history = replay.read_history(corpus.locate(mirror, ref.name), name=ref.name, rev=ref.commit)
        labelled, found = szz.label(history)
        known_at = {c.sha: c.reverted_at for c in labelled.commits}
        past: list[tuple[float, str, str]] = []  # (model p, sha, author), oldest first
        for w in sorted(replay.windows(labelled, 32, limit=30), key=lambda w: w.start):
            episode = replay.restyle(w, "blind").episode
            p = model.estimate(episode)
            row = {a.id: i for i, a in enumerate(episode.agents)}
            commits = labelled.commits[w.start : w.start + 32]
            kept = past[-KEPT_OUTCOMES:]
            # known late: a failure counts once the fix that blames it came before this window
            pairs = [(q, not (known_at[s] is not None and known_at[s] <= w.start) if known_late else s not in found)
                     for q, s, _ in kept]
            shift = success.swarm_shift(pairs)
            authors = sorted({c.author for c in commits})
            own = dict(zip(authors, success.agent_shifts(pairs, [a for _, _, a in kept], authors, shift),
                           strict=True))
            base = float(np.mean([y for _, y in pairs])) if pairs else None
            for j, (task, c) in enumerate(zip(episode.tasks, commits, strict=True)):
                raw = float(p[row[w.truth[task.id]], j])
                if base is not None:
                    swarm = float(success.shifted(np.array([raw]), shift)[0])
                    both = float(success.shifted(np.array([raw]), shift + own[c.author])[0])
                    rows.append((raw, swarm, both, base, float(c.sha not in found)))
                past.append((raw, c.sha, c.author))
        print(f"{ref.name}: {len(rows)} tasks so far", file=sys.stderr, flush=True)
    return np.array(rows)


def replay_suite(args: argparse.Namespace) -> None:
    rows = replay_rows(args.mirror, args.list, args.known_late)
    raw, swarm, both, base, y = rows.T

    def brier(p: np.ndarray) -> np.ndarray:
        return (p - y) ** 2

    def loss(p: np.ndarray) -> np.ndarray:
        q = np.clip(p, 1e-6, 1 - 1e-6)
        return -(y * np.log(q) + (1 - y) * np.log(1 - q))

    print(f"REAL outcomes (SZZ), {args.list.name}, {len(y)} tasks, never blamed {y.mean():.3f}, earlier outcomes "
          + ("known when the fix came" if args.known_late else "as finally labelled"))
    for name, p in (("raw model", raw), ("swarm shift", swarm), ("swarm + agent", both), ("base rate so far", base)):
        print(f"  {name:17s} Brier {brier(p).mean():.4f}, log-loss {loss(p).mean():.4f}")
    print(f"  swarm - raw: Brier {_ci(brier(swarm) - brier(raw))}, log-loss {_ci(loss(swarm) - loss(raw))}")
    print(f"  swarm + agent - swarm: Brier {_ci(brier(both) - brier(swarm))}, log-loss {_ci(loss(both) - loss(swarm))}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    sim = sub.add_parser("simulated")
    sim.add_argument("--seeds", type=int, default=8)
    sim.add_argument("--rates", default="0.2,0.3,0.4,0.5,0.6")
    rep = sub.add_parser("replay")
    rep.add_argument("--mirror", type=Path, required=True)
    rep.add_argument("--list", type=Path, default=Path("ansf_mcp/lab/validation_repos.txt"))
    rep.add_argument("--known-late", action="store_true")
    args = parser.parse_args()
    simulated(args) if args.what == "simulated" else replay_suite(args)


if __name__ == "__main__":
    main()
