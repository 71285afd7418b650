"""Per-swarm realised scores of the estimators: predictions kept at decision time, scored when outcomes arrive."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from ansf_mcp.coordinator.episode import Assignment, Episode
from ansf_mcp.coordinator.scoring import Tally, brier, log_loss
from ansf_mcp.store.base import Connection, Row

if TYPE_CHECKING:  # numpy stays unimported on the claim/report path
    import numpy as np


def record_predictions(
    conn: Connection,
    swarm_id: str,
    episode: Episode,
    assignments: Iterable[Assignment],
    estimates: Mapping[str, np.ndarray],
    task_ids: Mapping[str, str] | None = None,
) -> None:
    """Keep every estimator's p for each assigned pair (`task_ids` renames episode task ids to board ids)."""
    agents = {a.id: i for i, a in enumerate(episode.agents)}
    tasks = {t.id: j for j, t in enumerate(episode.tasks)}
    rename = task_ids or {}
    rows = [
        (swarm_id, rename.get(a.task, a.task), a.agent, name, min(max(float(p[agents[a.agent], tasks[a.task]]), 0.0), 1.0))
        for a in assignments
        for name, p in estimates.items()
    ]
    conn.executemany(
        "INSERT INTO predictions (swarm_id, task_id, agent_id, estimator, p) VALUES (?, ?, ?, ?, ?) "
        "ON CONFLICT (swarm_id, task_id, agent_id, estimator) DO UPDATE SET p = excluded.p",
        rows,
    )


PREDICTIONS_SQL = "SELECT estimator, p FROM predictions WHERE swarm_id = ? AND task_id = ? AND agent_id = ?"


def outcome_statements(swarm_id: str, task_id: str, agent_id: str, success: bool,
                       predictions: list[Row]) -> list[tuple[str, tuple[object, ...]]]:
    """What scores the predictions (rows of PREDICTIONS_SQL) made for this (task, agent) on its outcome, once."""
    return [
        *(("INSERT INTO estimator_scores (swarm_id, estimator, n, log_loss_sum, brier_sum) VALUES (?, ?, 1, ?, ?) "
           "ON CONFLICT (swarm_id, estimator) DO UPDATE SET n = estimator_scores.n + 1, "
           "log_loss_sum = estimator_scores.log_loss_sum + excluded.log_loss_sum, "
           "brier_sum = estimator_scores.brier_sum + excluded.brier_sum",
           (swarm_id, r["estimator"], log_loss(r["p"], success), brier(r["p"], success)))
          for r in predictions),
        ("DELETE FROM predictions WHERE swarm_id = ? AND task_id = ? AND agent_id = ?", (swarm_id, task_id, agent_id)),
    ]


def tallies(conn: Connection, swarm_id: str) -> dict[str, Tally]:
    return {
        r["estimator"]: Tally(n=r["n"], log_loss_sum=r["log_loss_sum"], brier_sum=r["brier_sum"])
        for r in conn.execute(
            "SELECT estimator, n, log_loss_sum, brier_sum FROM estimator_scores WHERE swarm_id = ?", (swarm_id,)
        )
    }


def overall(conn: Connection) -> dict[str, Tally]:
    """Every swarm's record added up, per estimator (what system_status shows)."""
    return {
        r["estimator"]: Tally(n=r["n"], log_loss_sum=r["ll"], brier_sum=r["br"])
        for r in conn.execute(
            "SELECT estimator, SUM(n) AS n, SUM(log_loss_sum) AS ll, SUM(brier_sum) AS br FROM estimator_scores "
            "GROUP BY estimator"
        )
    }
