"""Exact assignment over estimated success probabilities (scipy's Hungarian solver).

Agents are repeated once per unit of capacity. When tasks outnumber slots, higher priorities win outright
(a per-level bonus larger than any possible sum of probability gains); within a level, tasks fewer dependency
steps deep win the same way (so work that can start now goes to every agent before work queued behind it), then
the solver maximises the summed probability. A task whose dependency is left unassigned is left out too, and the
rest re-solved; a reason names a dependency as unassigned only if it is in the final answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from ansf_mcp.coordinator.episode import Assignment, Episode, Unassigned

# Board states a dependency never leaves and never succeeds from: a task behind one can never start. A cancelled
# one counts as a failed one did; its dependents were assigned as if it would still run.
NEVER_SUCCEEDS = ("failed", "cancelled")
WAITS_ON_DEAD = "waits on "
CAPACITY_EXHAUSTED = "capacity exhausted"
DEPENDENCY_LEFT_OUT = "dependency left out"  # placeholder while solving; never in an answer
# Per unit of open load per slot: below any difference in fit an estimator makes, above float noise at the
# priority bonus's scale.
TIE_BREAK = 1e-9


def _depths(episode: Episode, excluded: Mapping[str, str]) -> dict[str, int]:
    """Dependency steps within the episode before each task can start (0: it could start now); tasks in
    `excluded` (cycles, unknown, failed or cancelled dependencies) are left out."""
    by_id = {t.id: t for t in episode.tasks if t.id not in excluded}
    depth: dict[str, int] = {}
    for root in by_id:
        stack = [root]
        while stack:
            node = stack[-1]
            pending = [d for d in by_id[node].depends_on if d in by_id and d not in depth]
            if pending:
                stack.extend(pending)
                continue
            stack.pop()
            depth[node] = 1 + max((depth[d] for d in by_id[node].depends_on if d in by_id), default=-1)
    return depth


@dataclass(frozen=True)
class Solution:
    assignments: list[Assignment]
    unassigned: list[Unassigned]


def _cycle_members(episode: Episode) -> set[str]:
    ids = {t.id for t in episode.tasks}
    graph = {t.id: [d for d in t.depends_on if d in ids] for t in episode.tasks}
    state: dict[str, int] = {}  # 1 = on stack, 2 = done
    in_cycle: set[str] = set()
    for root in graph:
        if root in state:
            continue
        stack: list[tuple[str, int]] = [(root, 0)]
        path: list[str] = []
        while stack:
            node, idx = stack.pop()
            if idx == 0:
                state[node] = 1
                path.append(node)
            deps = graph[node]
            if idx < len(deps):
                stack.append((node, idx + 1))
                nxt = deps[idx]
                if state.get(nxt) == 1:
                    in_cycle.update(path[path.index(nxt) :])
                elif nxt not in state:
                    stack.append((nxt, 0))
            else:
                state[node] = 2
                path.pop()
    return in_cycle


def margins(p: np.ndarray) -> np.ndarray:
    """(agents, tasks): 0.5 + (each agent's estimate - the best other agent's estimate), clipped to [0, 1]; 0.5 is
    a tie, and a lone agent's estimate is compared with 0.5."""
    if p.shape[0] < 2:
        alternative: np.ndarray | float = 0.5
    else:
        top = np.sort(p, axis=0)
        # Without the agent the best is the runner-up where the agent is (one of) the best, else the best.
        alternative = np.where(p == top[-1], top[-2], top[-1])
    return np.clip(0.5 + p - alternative, 0.0, 1.0)


def solve(
    episode: Episode,
    p: np.ndarray,
    *,
    confidence: np.ndarray | None = None,
    external_states: Mapping[str, str] | None = None,
    open_load: Mapping[str, int] | None = None,
) -> Solution:
    """Assign tasks to agents; `confidence` (same shape as p) overrides the margin-based default.

    `external_states` maps dependencies that live outside the episode (earlier tasks on the board) to their
    state; a dependency found neither there nor in the episode is unknown and blocks its task. `open_load` is each
    agent's unfinished work already on the board (assigned or claimed): it breaks exact ties only.
    """
    n_agents, n_tasks = len(episode.agents), len(episode.tasks)
    if p.shape != (n_agents, n_tasks):
        raise ValueError(f"estimate has shape {p.shape}, expected {(n_agents, n_tasks)}")
    external = external_states or {}
    episode_ids = {t.id for t in episode.tasks}
    reasons: dict[str, str] = {}

    for task_id in sorted(_cycle_members(episode)):
        reasons[task_id] = "dependency cycle"
    for task in episode.tasks:
        if task.id in reasons:
            continue
        for dep in task.depends_on:
            if dep in episode_ids:
                continue
            if dep not in external:
                reasons[task.id] = f"unknown dependency {dep!r}"
                break
            # The board names a dependency that waits on a failed one as "waits on 'x', which failed".
            if external[dep] in NEVER_SUCCEEDS or external[dep].startswith(WAITS_ON_DEAD):
                reasons[task.id] = f"dependency {dep!r} {external[dep]}"
                break

    slots = np.repeat(np.arange(n_agents), [a.capacity for a in episode.agents])
    levels = sorted({t.priority for t in episode.tasks})
    depth = _depths(episode, reasons)
    deepest = max(depth.values(), default=0)
    # Priority first, then shallower first: rank = level * (deepest + 1) + (deepest - depth).
    rank = {t.id: levels.index(t.priority) * (deepest + 1) + deepest - depth.get(t.id, 0) for t in episode.tasks}
    bonus = float(len(slots) + 1)
    # Equal agents (no history, the same role) tie exactly, and the solver then takes the first: tasks put up one
    # call at a time all went to the first agent while the others were told to wait. Among equals, the one with
    # less work per slot goes first; far below any real difference in fit.
    load = open_load or {}
    tie = np.array([-TIE_BREAK * load.get(episode.agents[i].id, 0) / episode.agents[i].capacity for i in slots],
                   dtype=np.float64)
    chosen: dict[int, int] = {}

    while True:
        candidates = [j for j, t in enumerate(episode.tasks) if t.id not in reasons]
        chosen = {}
        if candidates and len(slots):
            gain = p[slots][:, candidates] + tie[:, None] + bonus * np.array(
                [rank[episode.tasks[j].id] for j in candidates], dtype=np.float64
            )
            rows, cols = linear_sum_assignment(gain, maximize=True)
            chosen = {candidates[c]: int(slots[r]) for r, c in zip(rows, cols, strict=True)}
        assigned_ids = {episode.tasks[j].id for j in chosen}
        dropped = False
        for j in chosen:
            task = episode.tasks[j]
            missing = [d for d in task.depends_on if d in episode_ids and d not in assigned_ids]
            if missing:
                reasons[task.id] = DEPENDENCY_LEFT_OUT
                dropped = True
        if not dropped:
            break
    assigned_ids = {episode.tasks[j].id for j in chosen}
    for task in episode.tasks:
        if reasons.get(task.id) == DEPENDENCY_LEFT_OUT:
            missing = [d for d in task.depends_on if d in episode_ids and d not in assigned_ids]
            # A re-solve may have assigned the dependency after all: then only the slots ran out.
            reasons[task.id] = f"dependency {missing[0]!r} is not assigned" if missing else CAPACITY_EXHAUSTED

    if confidence is None:
        confidence = margins(p)
    assignments = []
    for j, task in enumerate(episode.tasks):
        if j in chosen:
            i = chosen[j]
            conf = float(confidence[i, j])
            assignments.append(
                Assignment(
                    task=task.id,
                    agent=episode.agents[i].id,
                    p_success=round(float(np.clip(p[i, j], 0.0, 1.0)), 4),
                    confidence=round(conf, 4),
                )
            )
        elif task.id not in reasons:
            reasons[task.id] = CAPACITY_EXHAUSTED
    unassigned = [Unassigned(task=t.id, reason=reasons[t.id]) for t in episode.tasks if t.id in reasons]
    return Solution(assignments=assignments, unassigned=unassigned)
