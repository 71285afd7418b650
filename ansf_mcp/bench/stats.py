"""Latency percentiles used by every suite (confidence intervals: ansf_mcp.lab.evaluate.mean_ci)."""

from __future__ import annotations

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

