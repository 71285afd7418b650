"""Coordination on the board: put tasks up, build an episode from the swarm and its history, assign."""

from __future__ import annotations

import json
import time

from ansf_mcp.board.lookup import agent_rows, require
from ansf_mcp.board.models import TaskSpec
from ansf_mcp.board.tasks import insert_tasks
from ansf_mcp.coordinator.episode import CoordinationResult, Episode, EpisodeAgent, EpisodeTask, HistoryItem
from ansf_mcp.coordinator.strategies import NeuralEstimator, coordinate
from ansf_mcp.store.db import Store

# Most recent outcomes per agent that enter a decision; older ones say less about today's agent.
HISTORY_WINDOW = 200


def build_episode(store: Store, swarm_id: str, task_ids: list[str]) -> tuple[Episode, dict[str, str]]:
    """The episode for `task_ids`, plus the states of board tasks they depend on outside the episode."""
    with store.reading() as conn:
        require(conn, swarm_id)
        agents = []
        for a in agent_rows(conn, swarm_id):
            hist = conn.execute(
                "SELECT task_text, success FROM (SELECT * FROM outcomes WHERE swarm_id = ? AND agent_id = ? "
                "ORDER BY id DESC LIMIT ?) ORDER BY id",
                (swarm_id, a["id"], HISTORY_WINDOW),
            ).fetchall()
            agents.append(
                EpisodeAgent(
                    id=a["id"],
                    role=a["role"],
                    capabilities=json.loads(a["capabilities"]),
                    capacity=a["capacity"],
                    history=[HistoryItem(task=h["task_text"], success=bool(h["success"])) for h in hist],
                )
            )
        marks = ",".join("?" * len(task_ids))
        rows = conn.execute(
            f"SELECT id, description, priority FROM tasks WHERE swarm_id = ? AND id IN ({marks}) ORDER BY seq",
            (swarm_id, *task_ids),
        ).fetchall()
        deps: dict[str, list[str]] = {}
        for r in conn.execute(
            f"SELECT task_id, depends_on FROM task_deps WHERE swarm_id = ? AND task_id IN ({marks})",
            (swarm_id, *task_ids),
        ):
            deps.setdefault(r["task_id"], []).append(r["depends_on"])
        outside = {d for ds in deps.values() for d in ds} - set(task_ids)
        external = {
            r["id"]: r["status"]
            for r in conn.execute(
                f"SELECT id, status FROM tasks WHERE swarm_id = ? AND id IN ({','.join('?' * len(outside))})",
                (swarm_id, *outside),
            )
        }
    tasks = [
        EpisodeTask(id=r["id"], description=r["description"], priority=r["priority"], depends_on=deps.get(r["id"], []))
        for r in rows
    ]
    return Episode(id=swarm_id, agents=agents, tasks=tasks), external


def submit_and_assign(
    store: Store,
    swarm_id: str,
    specs: list[TaskSpec],
    strategy: str,
    *,
    neural_allowed: bool = True,
    neural: NeuralEstimator | None = None,
    model: str | None = None,
) -> CoordinationResult:
    """Add the tasks and record the chosen assignment, atomically: a failure leaves the board as it was."""
    with store.transaction() as conn:
        require(conn, swarm_id)
        ids = insert_tasks(conn, swarm_id, specs)
        # The store lock is re-entrant: reading inside our own transaction sees the new rows.
        episode, external = build_episode(store, swarm_id, ids)
        result = coordinate(
            episode, strategy, model=model, neural_allowed=neural_allowed, neural=neural, external_states=external
        )
        conn.executemany(
            "UPDATE tasks SET assignee = ?, p_success = ?, confidence = ?, strategy = ? WHERE swarm_id = ? AND id = ?",
            [(a.agent, a.p_success, a.confidence, result.strategy, swarm_id, a.task) for a in result.assignments],
        )
        conn.execute(
            "INSERT INTO decisions (swarm_id, strategy, model, agents, tasks, assigned, elapsed_ms, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                swarm_id,
                result.strategy,
                result.model,
                len(episode.agents),
                len(episode.tasks),
                len(result.assignments),
                result.elapsed_ms,
                time.time(),
            ),
        )
        for u in result.unassigned:
            conn.execute(
                "UPDATE tasks SET strategy = ?, last_error = ? WHERE swarm_id = ? AND id = ?",
                (result.strategy, f"unassigned: {u.reason}", swarm_id, u.task),
            )
    return result
