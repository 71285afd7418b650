"""Write the golden decisions that tests/coordinator/test_decision_golden.py replays (not a test).

Every case is an episode, a strategy and optional swarm tallies, with what `decide` made of it when the file was
written: the estimator used, its reason, the assignments, and every probabilistic matrix (each estimator's and the
success model's p_success) as exact float64 bytes. Written by the code a speed-up must not change (main at
852185c; rewritten once on purpose, see WRITTEN_BY), so that the test can tell any later change in what a decision
decides:

    PYTHONPATH=. .venv/bin/python scripts/golden_decisions.py tests/coordinator/golden/decisions.json.gz

Cases: SIMULATED episodes (lab.simulator heldout split, the 16 x 64 size the latency target is about, and smaller
ones; lab.family outcome-driven episodes, where the fold may overrule), a board-like 16 x 64 episode shaped like
/work/scratch/prof_coord.py's, more than 16 agents (network blocks), and REAL windows replayed from the git
history of aio-libs/yarl (a training repository; the episodes are stored whole, so the test needs no git).
"""

from __future__ import annotations

import base64
import gzip
import json
import random
import sys
from pathlib import Path

import numpy as np

from ansf_mcp.coordinator.episode import Episode
from ansf_mcp.coordinator.scoring import SUCCESS_MODEL, Tally
from ansf_mcp.coordinator.strategies import decide
from ansf_mcp.lab import family, simulator

YARL = Path("/work/.mirror/aio-libs+yarl/repo")
# Rewritten once since 852185c, on purpose: the network now reads agents in an order set by what they are
# (features.canonical_order), so the same swarm listed in another order is decided the same way.
WRITTEN_BY = "scripts/golden_decisions.py on main 852185c, rewritten at stop 29 (agents in canonical order)"


def encode(m: np.ndarray) -> dict:
    m = np.ascontiguousarray(m, dtype=np.float64)
    return {"shape": list(m.shape), "float64": base64.b64encode(m.tobytes()).decode()}


def board_like(seed: int) -> Episode:
    """16 agents with 6 past tasks each (70 % successes) and 64 open tasks, worded like prof_coord.py's board."""
    rng = random.Random(seed)
    roles = ["backend", "frontend", "tests", "devops"]
    words = {"backend": "api endpoint database query schema migration", "frontend": "ui button page css layout render",
             "tests": "test fixture coverage flaky assertion mock", "devops": "deploy docker ci pipeline helm release"}
    agents = []
    for i in range(16):
        role = roles[i % 4]
        hist = [{"task": f"round {r} " + " ".join(rng.sample(words[roles[(i + r) % 4]].split(), 3)),
                 "success": rng.random() < 0.7} for r in range(6)]
        agents.append({"id": f"agent-{i}", "role": role, "capabilities": words[role].split()[:3], "history": hist})
    tasks = [{"id": f"task-{j}", "description": f"Round 9: task {j} touching the "
              + " ".join(rng.sample(words[roles[j % 4]].split(), 3))} for j in range(64)]
    return Episode.model_validate({"id": f"board-{seed}", "agents": agents, "tasks": tasks})


def tallies(seed: int, n: int) -> dict[str, Tally]:
    """Swarm records of n outcomes per estimator (p drawn near each one's typical range; SIMULATED)."""
    rng = np.random.default_rng(seed)
    out = {}
    for name, lift in (("neural", 0.6), ("similarity", 1.2), ("history", 0.9), ("p_success", 1.0)):
        t = Tally()
        for _ in range(n):
            y = bool(rng.random() < 0.6)
            z = rng.normal(lift if y else -lift, 1.0)
            t.add(float(1.0 / (1.0 + np.exp(-z))), y)
        out[name] = t
    return out


def cases() -> list[tuple[str, Episode, str, dict[str, Tally] | None]]:
    out: list[tuple[str, Episode, str, dict[str, Tally] | None]] = []
    for k, s in enumerate(simulator.generate("heldout", 4, 7, n_agents=16, n_tasks=64)):
        out.append((f"sim-16x64-{k}", s.episode, "auto", None))
    for k, s in enumerate(simulator.generate("heldout", 4, 11)):
        out.append((f"sim-small-{k}", s.episode, "auto", tallies(k, 40) if k % 2 else None))
    fam = family.generate(4, 5, sources=family.HELDOUT_SOURCES, n_agents=(8, 16), n_tasks=(16, 64), outcome_driven=True)
    for k, f in enumerate(fam):
        out.append((f"family-outcome-{k}", f.episode, "auto", None))
    from tests.coordinator.test_auto_fold import _contrarian

    out.append(("contrarian", _contrarian(), "auto", None))  # the fold overrules the prior
    for k in range(2):
        out.append((f"board-16x64-{k}", board_like(k), "auto", None))
    big = simulator.generate("heldout", 1, 13, n_agents=20, n_tasks=40)[0].episode
    out.append(("sim-20x40", big, "auto", tallies(5, 600)))
    for strategy in ("neural", "similarity", "history", "tags", "round-robin"):
        out.append((f"sim-16x64-0-{strategy}", out[0][1], strategy, None))
    if YARL.is_dir():
        from ansf_mcp.lab import replay

        hist = replay.read_history(YARL, name="aio-libs/yarl")
        for window in (16, 32, 64):
            ep = next(replay.windows(hist, window, limit=1))
            out.append((f"yarl-{window}", ep.episode, "auto", None))
            blind = replay.restyle(ep, "blind").episode
            out.append((f"yarl-{window}-blind", blind, "auto", None))
    return out


def record(name: str, episode: Episode, strategy: str, swarm: dict[str, Tally] | None) -> dict:
    d = decide(episode, strategy, tallies=swarm)
    return {
        "name": name,
        "strategy": strategy,
        "episode": episode.model_dump(mode="json"),
        "tallies": None if swarm is None else {k: {"n": t.n, "log_loss_sum": t.log_loss_sum,
                                                   "brier_sum": t.brier_sum, "kept": t.kept}
                                               for k, t in swarm.items()},
        "expected": {
            "result": d.result.model_dump(mode="json", exclude={"elapsed_ms"}),
            # success_model is the reported p_success before a swarm's shift: the test checks that it equals it.
            "estimates": {k: encode(v) for k, v in d.estimates.items() if k != SUCCESS_MODEL},
            "success": encode(d.success),
        },
    }


def main() -> None:
    target = Path(sys.argv[1])
    rows = [record(*c) for c in cases()]
    for r in rows:
        print(r["name"], r["expected"]["result"]["strategy"], len(r["expected"]["result"]["assignments"]),
              file=sys.stderr)
    target.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(target, "wt", encoding="utf-8") as fh:
        json.dump({"written_by": WRITTEN_BY, "cases": rows}, fh)


if __name__ == "__main__":
    main()
