"""Per-swarm realised scores of the estimators: predictions kept at decision time, scored when outcomes arrive.

Each outcome adds to raw sums (estimator_scores) and keeps its (p, success) pair in a ring of the newest
KEPT_OUTCOMES per swarm and estimator (estimator_outcomes), which the reader recalibrates (scoring.cross_fitted)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from ansf_mcp.coordinator.episode import Assignment, Episode
from ansf_mcp.coordinator.scoring import KEPT_OUTCOMES, Record, Tally, brier, log_loss
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


# The pair takes the ring's slot of its sequence number: the estimator's count once this outcome is added, read in
# the same transaction (on PostgreSQL after the count's row lock, so two reports never take the same slot).
KEEP_SQL = (
    "INSERT INTO estimator_outcomes (swarm_id, estimator, slot, seq, p, success) "
    f"SELECT p.swarm_id, p.estimator, s.n % {KEPT_OUTCOMES}, s.n, p.p, ? FROM predictions p "
    "JOIN estimator_scores s ON s.swarm_id = p.swarm_id AND s.estimator = p.estimator "
    "WHERE p.swarm_id = ? AND p.task_id = ? AND p.agent_id = ? "
    "ON CONFLICT (swarm_id, estimator, slot) DO UPDATE SET seq = excluded.seq, p = excluded.p, "
    "success = excluded.success"
)


def outcome_statements(swarm_id: str, task_id: str, agent_id: str, success: bool,
                       predictions: list[Row]) -> list[tuple[str, tuple[object, ...]]]:
    """What scores the predictions (rows of PREDICTIONS_SQL) made for this (task, agent) on its outcome, once:
    the raw sums, and the pairs kept for recalibration."""
    return [
        *(("INSERT INTO estimator_scores (swarm_id, estimator, n, log_loss_sum, brier_sum) VALUES (?, ?, 1, ?, ?) "
           "ON CONFLICT (swarm_id, estimator) DO UPDATE SET n = estimator_scores.n + 1, "
           "log_loss_sum = estimator_scores.log_loss_sum + excluded.log_loss_sum, "
           "brier_sum = estimator_scores.brier_sum + excluded.brier_sum",
           (swarm_id, r["estimator"], log_loss(r["p"], success), brier(r["p"], success)))
          for r in predictions),
        *([(KEEP_SQL, (int(success), swarm_id, task_id, agent_id))] if predictions else []),
        ("DELETE FROM predictions WHERE swarm_id = ? AND task_id = ? AND agent_id = ?", (swarm_id, task_id, agent_id)),
    ]


KEPT_SQL = "SELECT swarm_id, estimator, p, success FROM estimator_outcomes"


def _with_kept(conn: Connection, records: dict[tuple[str, str], Tally], where: str, args: tuple) -> None:
    """The kept pairs into the tallies they belong to, oldest first."""
    for swarm, estimator, p, success in conn.execute(f"{KEPT_SQL} {where} ORDER BY swarm_id, estimator, seq", args):
        tally = records.get((swarm, estimator))
        if tally is not None:
            tally.kept.append((p, bool(success)))


def tallies(conn: Connection, swarm_id: str) -> dict[str, Tally]:
    records = {
        (swarm_id, r["estimator"]): Tally(n=r["n"], log_loss_sum=r["log_loss_sum"], brier_sum=r["brier_sum"])
        for r in conn.execute(
            "SELECT estimator, n, log_loss_sum, brier_sum FROM estimator_scores WHERE swarm_id = ?", (swarm_id,)
        )
    }
    _with_kept(conn, records, "WHERE swarm_id = ?", (swarm_id,))
    return {estimator: t for (_, estimator), t in records.items()}


def overall(conn: Connection) -> dict[str, Tally]:
    """Every swarm's record added up, per estimator (what system_status shows): the raw sums, and the recalibrated
    ones of the swarms where they can be computed, each recalibrated within its own swarm (as auto uses them)."""
    records = {
        (r["swarm_id"], r["estimator"]): Tally(n=r["n"], log_loss_sum=r["log_loss_sum"], brier_sum=r["brier_sum"])
        for r in conn.execute("SELECT swarm_id, estimator, n, log_loss_sum, brier_sum FROM estimator_scores")
    }
    _with_kept(conn, records, "", ())
    out: dict[str, Tally] = {}
    for (_, estimator), t in records.items():
        total = out.get(estimator)
        if total is None:
            total = out[estimator] = Tally()
            total.recalibrated = None  # never the pooled pairs': recalibrations are per swarm
        total.n += t.n
        total.log_loss_sum += t.log_loss_sum
        total.brier_sum += t.brier_sum
        total.kept.extend(t.kept)  # for the count only: recalibrated below, swarm by swarm
        rec, added = t.recalibrated, total.__dict__.get("recalibrated")
        if rec is not None:
            total.recalibrated = Record(rec.n + (added.n if added else 0),
                                        rec.log_loss_sum + (added.log_loss_sum if added else 0.0),
                                        rec.brier_sum + (added.brier_sum if added else 0.0))
    return out
