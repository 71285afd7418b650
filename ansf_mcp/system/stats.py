"""Percentiles, the one home: latency summaries of the suites and the dashboard's live figures use these.

Pure Python (linear interpolation between closest ranks, numpy's default) so the dashboard needs no numpy.
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) of a non-empty sequence."""
    s = sorted(values)
    if not s:
        raise ValueError("percentile of no values")
    if len(s) == 1:
        return float(s[0])
    k = (len(s) - 1) * q / 100.0
    lo, hi = math.floor(k), math.ceil(k)
    return float(s[lo] + (s[hi] - s[lo]) * (k - lo))


def latency_summary(samples_s: Sequence[float]) -> dict[str, float]:
    """Seconds in, milliseconds out: n, p50, p90, p95, p99 and the mean."""
    ms = [float(v) * 1000.0 for v in samples_s]
    if not ms:
        raise ValueError("latency summary of no samples")
    return {
        "n": len(ms),
        **{f"p{q}_ms": round(percentile(ms, q), 4) for q in (50, 90, 95, 99)},
        "mean_ms": round(sum(ms) / len(ms), 4),
    }
