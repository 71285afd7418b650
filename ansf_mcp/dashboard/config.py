"""Dashboard settings: collection cadence, windows and alert thresholds, from defaults then environment variables.

Kept here (not in `ansf_mcp.settings`) so the dashboard owns its knobs; every variable is listed in ENV_VARS and
documented in docs/DASHBOARD.md.
"""

from __future__ import annotations

import logging
import os

from pydantic import BaseModel, Field, ValidationError

from ansf_mcp import settings
from ansf_mcp.settings import layered

log = logging.getLogger(__name__)

DEFAULT_PORT = 8053

ENV_VARS: dict[str, str] = {
    "ANSF_DASHBOARD_INTERVAL_S": "interval_s",
    "ANSF_DASHBOARD_ALERT_INTERVAL_S": "alert_interval_s",
    "ANSF_DASHBOARD_TREND_WINDOW_S": "trend_window_s",
    "ANSF_DASHBOARD_RING_SIZE": "ring_size",
    "ANSF_ALERT_WINDOW_S": "alert_window_s",
    "ANSF_ALERT_MIN_SAMPLES": "min_samples",
    "ANSF_ALERT_CALIBRATION_BRIER": "calibration_brier_max",
    "ANSF_ALERT_CALIBRATION_MIN_SAMPLES": "calibration_min_samples",
    "ANSF_ALERT_NEURAL_ACCURACY": "neural_accuracy_min",
    "ANSF_ALERT_P95_MS": "coordinate_p95_max_ms",
    "ANSF_ALERT_EFFICIENCY": "efficiency_min",
    "ANSF_ALERT_HYSTERESIS": "hysteresis",
}

# Settings that are no longer read, and what replaced them (a warning at start names them).
RETIRED_ENV_VARS: dict[str, str] = {
    "ANSF_ALERT_COORDINATION_ACCURACY": "coordination accuracy (successes / sum of p_success, which could exceed 1) "
    "was replaced by calibration on real outcomes: ANSF_ALERT_CALIBRATION_BRIER, ANSF_ALERT_CALIBRATION_MIN_SAMPLES",
}


class DashboardConfig(BaseModel):
    interval_s: float = Field(default=30.0, gt=0, le=3600, description="collection cadence")
    alert_interval_s: float = Field(default=2.0, gt=0, le=60, description="fast alert check cadence")
    trend_window_s: float = Field(default=900.0, gt=0, description="trend (slope) window")
    ring_size: int = Field(default=1000, ge=10, le=100_000, description="points kept per series")
    alert_window_s: float = Field(default=900.0, gt=0, description="window of outcomes/decisions alerts read")
    min_samples: int = Field(default=10, ge=1, description="fewest outcomes/decisions before a figure can alert")
    calibration_brier_max: float = Field(
        default=0.25, gt=0, le=1,
        description="alert above: Brier score of p_success on the real outcomes of the tasks one strategy assigned "
        "(0.25 = always saying 0.5)",
    )
    calibration_min_samples: int = Field(
        default=30, ge=1, description="fewest outcomes of one strategy in the window before its Brier can alert"
    )
    neural_accuracy_min: float = Field(
        default=0.7, ge=0, le=1,
        description="alert below: share of the tasks the neural strategy assigned with p_success > 0.5 (the shared "
        "success model's p) that came true; a healthy run with a 20 % failure rate reads 0.8 even from a model that "
        "calls every task a success",
    )
    coordinate_p95_max_ms: float = 500.0
    efficiency_min: float = Field(
        default=0.6, ge=0, le=1,
        description="alert below: share of reported agent time on successful attempts; a healthy run with a 20 % "
        "failure rate whose failed attempts take twice as long as successes reads 0.67",
    )
    hysteresis: float = Field(
        default=0.03, ge=0, lt=1, description="an alert clears only this fraction beyond its threshold"
    )

    @classmethod
    def load(cls, **overrides: object) -> DashboardConfig:
        for env, why in RETIRED_ENV_VARS.items():
            if os.environ.get(env):
                log.warning("%s is set but no longer read: %s", env, why)
        return cls.model_validate(layered(ENV_VARS, overrides))


def invalid_setting(exc: ValidationError) -> str:
    """`settings.invalid_setting` over the server's variables and the dashboard's: an error of either model names
    the variable the user set."""
    return settings.invalid_setting(exc, {**settings.ENV_VARS, **ENV_VARS})
