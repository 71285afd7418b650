"""Percentiles and confidence intervals used by every suite."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def latency_summary(samples_s: Sequence[float]) -> dict[str, float]:
    ms = np.asarray(samples_s, dtype=np.float64) * 1000.0
    return {
        "n": int(ms.size),
        "p50_ms": round(float(np.percentile(ms, 50)), 4),
        "p90_ms": round(float(np.percentile(ms, 90)), 4),
        "p99_ms": round(float(np.percentile(ms, 99)), 4),
        "mean_ms": round(float(ms.mean()), 4),
    }


def mean_ci95(values: Sequence[float]) -> tuple[float, float]:
    """Mean and the half-width of its normal-approximation 95 % confidence interval."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.size < 2:
        return float(arr.mean()) if arr.size else math.nan, math.nan
    return float(arr.mean()), float(1.96 * arr.std(ddof=1) / math.sqrt(arr.size))
