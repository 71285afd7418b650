"""Per-swarm realised scores of the estimators: predictions kept at decision time, scored when outcomes arrive.

Each outcome adds to raw sums (estimator_scores) and keeps its (p, success) pair in a ring of the newest
KEPT_OUTCOMES per swarm and estimator (estimator_outcomes), which the reader recalibrates (scoring.cross_fitted)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from itertools import groupby
from operator import itemgetter
from typing import TYPE_CHECKING

from ansf_mcp.coordinator.episode import Assignment, Episode
from ansf_mcp.coordinator.scoring import KEPT_OUTCOMES, Tally, brier, cross_fitted_all, log_loss
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
    "INSERT INTO estimator_outcomes (swarm_id, estimator, slot, seq, p, success, agent_id) "
    f"SELECT p.swarm_id, p.estimator, s.n % {KEPT_OUTCOMES}, s.n, p.p, ?, p.agent_id FROM predictions p "
    "JOIN estimator_scores s ON s.swarm_id = p.swarm_id AND s.estimator = p.estimator "
    "WHERE p.swarm_id = ? AND p.task_id = ? AND p.agent_id = ? "
    "ON CONFLICT (swarm_id, estimator, slot) DO UPDATE SET seq = excluded.seq, p = excluded.p, "
    "success = excluded.success, agent_id = excluded.agent_id"
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


class Records:
    """The kept pairs and recalibrated records of the swarms read lately, reused while their estimators' counts
    stay the same: the pairs change only when an outcome is scored, which moves a count, and the pairs of a
    committed count never change, so a status read between outcomes neither reads nor recalibrates them again.
    One per board (the store it reads); the `swarms` read last are kept (about 0.2 MB a swarm at most)."""

    def __init__(self, swarms: int = 32) -> None:
        self._size = swarms
        self._lock = threading.Lock()
        self._seen: OrderedDict[str, tuple[tuple[tuple[str, int], ...], dict[str, Tally]]] = OrderedDict()

    def get(self, swarm_id: str, counts: tuple[tuple[str, int], ...]) -> dict[str, Tally] | None:
        with self._lock:
            seen = self._seen.get(swarm_id)
            if seen is None or seen[0] != counts:
                return None
            self._seen.move_to_end(swarm_id)
            return seen[1]

    def put(self, swarm_id: str, counts: tuple[tuple[str, int], ...], tallies: dict[str, Tally]) -> None:
        with self._lock:
            self._seen[swarm_id] = (counts, tallies)
            self._seen.move_to_end(swarm_id)
            while len(self._seen) > self._size:
                self._seen.popitem(last=False)


def tallies(conn: Connection, swarm_id: str, memo: Records | None = None) -> dict[str, Tally]:
    """The swarm's record per estimator: raw sums, kept pairs (oldest first) and their recalibrated record."""
    out = {
        r["estimator"]: Tally(n=r["n"], log_loss_sum=r["log_loss_sum"], brier_sum=r["brier_sum"])
        for r in conn.execute(
            "SELECT estimator, n, log_loss_sum, brier_sum FROM estimator_scores WHERE swarm_id = ?", (swarm_id,)
        )
    }
    counts = tuple(sorted((name, t.n) for name, t in out.items()))
    seen = memo.get(swarm_id, counts) if memo is not None else None
    if seen is not None:
        for name, t in out.items():  # the same pairs: readers never add to them
            t.kept, t.kept_agents, t.recalibrated = seen[name].kept, seen[name].kept_agents, seen[name].recalibrated
        return out
    # In the order of the index that covers this read, so neither engine sorts.
    rows = conn.execute(
        "SELECT estimator, p, success, agent_id FROM estimator_outcomes WHERE swarm_id = ? "
        "ORDER BY swarm_id, estimator, seq", (swarm_id,)).fetchall()
    for name, group in groupby(rows, key=itemgetter(0)):
        if name in out:
            pairs = list(group)
            out[name].kept = [(r[1], r[2] != 0) for r in pairs]
            out[name].kept_agents = [r[3] for r in pairs]
    with_pairs = [t for t in out.values() if t.kept]
    for t, record in zip(with_pairs, cross_fitted_all([t.kept for t in with_pairs]), strict=True):
        t.recalibrated = record
    if memo is not None:
        memo.put(swarm_id, counts, out)
    return out


def overall(conn: Connection) -> dict[str, Tally]:
    """Every swarm's raw record added up, per estimator (what system_status shows). Recalibrated records are per
    swarm (the recalibration is fitted within one), so there is none to add up here."""
    return {
        r["estimator"]: Tally(n=r["n"], log_loss_sum=r["ll"], brier_sum=r["br"])
        for r in conn.execute(
            "SELECT estimator, SUM(n) AS n, SUM(log_loss_sum) AS ll, SUM(brier_sum) AS br FROM estimator_scores "
            "GROUP BY estimator"
        )
    }
