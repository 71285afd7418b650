"""What auto learns from: per-swarm estimator scores, and where its prior comes from."""

from __future__ import annotations

import json
import sqlite3
from typing import TYPE_CHECKING, Any

from ansf_mcp.coordinator import scoring
from ansf_mcp.coordinator.scoring import AUTO_CANDIDATES

if TYPE_CHECKING:
    from ansf_mcp.board.scores import Records

# Swarms shown (and exported to /metrics), newest first; the rest are counted.
MAX_SWARMS_SHOWN = 20

# What the realised columns and the prior's are measured on, said once for the page and the snapshot. Not the
# calibration table's set: that scores only the p of the strategy that decided, over the alert window.
MEASURED_ON = ("REAL reported outcomes of each swarm since it began: every estimator's p for the agent each task was "
               "assigned to, kept when coordinate decided and scored when the outcome came, whichever strategy "
               "decided; raw columns score p as given (calibration), the recalibrated one the newest kept outcomes "
               "(at most 512) after an out-of-sample monotone recalibration (ordering; what auto chooses by once "
               "every candidate's can be computed)")
PRIOR_MEASURED_ON = "SIMULATED held-out episodes (the prior file), not this board"


def prior_provenance() -> dict[str, Any]:
    """Where auto's starting belief comes from (the held-out prior file, SIMULATED data), or that there is none."""
    if not scoring.prior():  # what auto uses: read once per process
        return {"present": False, "file": scoring.PRIOR_FILE.name,
                "note": "no held-out prior in this process (file absent or empty): auto starts from the candidates' "
                "order until outcomes come in"}
    try:
        data = json.loads(scoring.PRIOR_FILE.read_text())
    except (OSError, ValueError):
        data = {}
    data = data if isinstance(data, dict) else {}
    return {"present": True, "file": scoring.PRIOR_FILE.name, "data": data.get("data"),
            "profile": data.get("profile"), "created_at": data.get("created_at")}


def estimator_scores(conn: sqlite3.Connection, neural_allowed: bool | None = None,
                     records: Records | None = None) -> dict[str, Any]:
    """Per swarm with reported outcomes: each probabilistic estimator's realised log-loss and Brier, raw and
    recalibrated (the board's estimator records; `records`: the board's memo of them), its held-out prior, and what
    `auto` would use there now (scoring.choose, as swarm_status)."""
    from ansf_mcp.board.scores import tallies  # the board's own reader of estimator_scores

    candidates = list(AUTO_CANDIDATES)
    without_neural = [c for c in candidates if c != "neural"]
    pri = scoring.prior()
    swarms = conn.execute(
        "SELECT s.id, s.name FROM swarms s WHERE EXISTS (SELECT 1 FROM estimator_scores e WHERE e.swarm_id = s.id) "
        "ORDER BY s.created_at DESC, s.id"
    ).fetchall()
    total = conn.execute("SELECT COUNT(*) FROM swarms").fetchone()[0]
    shown = []
    for r in swarms[:MAX_SWARMS_SHOWN]:
        t = tallies(conn, r["id"], records)
        choice = scoring.choose(t, candidates)
        auto: dict[str, Any] = {"estimator": choice.estimator, "reason": choice.reason}
        if neural_allowed is False and choice.estimator == "neural" and without_neural:
            alt = scoring.choose(t, without_neural)
            auto["in_this_phase"] = alt.estimator
            auto["reason"] += f"; the network is disabled in the current phase, so auto uses {alt.estimator}"
        # Both prior columns on the yardstick of the prior log-loss auto blends: a recalibrated log-loss beside a
        # raw Brier mixed two scales in one row.
        yardstick = scoring.prior_yardstick(t, candidates)
        brier_key = "recalibrated_brier" if yardstick == "recalibrated" else "brier"
        shown.append({
            "swarm_id": r["id"], "name": r["name"], "auto": auto, "prior_yardstick": yardstick,
            "scores": [{**s.model_dump(), "prior_brier": (pri.get(s.estimator) or {}).get(brier_key)}
                       for s in choice.scores],
        })
    fresh = scoring.choose({}, candidates)
    return {
        "candidates": candidates,
        "measured_on": MEASURED_ON,
        "prior": {**prior_provenance(), "measured_on": PRIOR_MEASURED_ON, "weight_outcomes": scoring.PRIOR_WEIGHT,
                  "estimators": {k: {"log_loss": v.get("log_loss"), "brier": v.get("brier")}
                                 for k, v in pri.items() if isinstance(v, dict)}},
        "swarms": shown,
        "swarms_with_outcomes": len(swarms),
        "swarms_total": total,
        "omitted": max(0, len(swarms) - MAX_SWARMS_SHOWN),
        "auto_without_outcomes": {"estimator": fresh.estimator, "reason": fresh.reason},
    }
