"""Percentiles, the one home: latency summaries of the suites and the dashboard's live figures use these.

Pure Python (linear interpolation between closest ranks, numpy's default) so the dashboard needs no numpy.

A tail percentile from few samples is the maximum under another name (p99 of 30 calls interpolates between the two
slowest), and a report that prints it as "p99" claims a tail it never saw. So `latency_summary` gives a
percentile only from at least `min_samples(q)` samples and otherwise leaves it None beside the maximum and the
count, and `quantile_text` is how every report prints one: the figure with its n, or "max of n=…".
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

QUANTILES = (50, 90, 95, 99)


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


def min_samples(q: float) -> int:
    """Fewest samples for the q-th percentile to be more than the maximum: one sample beyond it on average
    (p95: 20, p99: 100; p50: 2)."""
    if not 0 <= q < 100:
        raise ValueError(f"no sample count gives a {q}th percentile")
    return max(2, round(100 / (100 - q)))


def latency_summary(samples_s: Sequence[float]) -> dict[str, Any]:
    """Seconds in, milliseconds out: n, p50, p90, p95, p99 (None where n is below `min_samples`), max and mean;
    `withheld` names each percentile left out and why."""
    ms = [float(v) * 1000.0 for v in samples_s]
    if not ms:
        raise ValueError("latency summary of no samples")
    n = len(ms)
    out: dict[str, Any] = {"n": n}
    withheld: dict[str, str] = {}
    for q in QUANTILES:
        if n >= min_samples(q):
            out[f"p{q}_ms"] = round(percentile(ms, q), 4)
        else:
            out[f"p{q}_ms"] = None
            withheld[f"p{q}"] = f"n={n} < {min_samples(q)}"
    out["max_ms"] = round(max(ms), 4)
    out["mean_ms"] = round(sum(ms) / n, 4)
    if withheld:
        out["withheld"] = withheld
    return out


def quantile_text(summary: Mapping[str, Any] | None, q: int, digits: int = 1, *, with_n: bool = True) -> str:
    """The q-th percentile of a `latency_summary` as a report prints it: "12.3 (n=40)", or "max 15.0 of n=12"
    where n is too small for it; "—" for no summary. A summary stored before n was kept prints "(n not
    recorded)"."""
    if not summary:
        return "—"
    n = summary.get("n")
    value = summary.get(f"p{q}_ms")
    if n is None:
        return "—" if value is None else f"{value:.{digits}f} (n not recorded)"
    if value is None or n < min_samples(q):
        top = summary.get("max_ms")
        return f"max {top:.{digits}f} of n={n}" if top is not None else f"— (n={n} < {min_samples(q)})"
    return f"{value:.{digits}f} (n={n})" if with_n else f"{value:.{digits}f}"


def quantiles_text(summary: Mapping[str, Any] | None, qs: Sequence[int] = (50, 95), digits: int = 1) -> str:
    """Several percentiles of one summary in one cell, n said once: "3.1 / 9.8 (n=40)", "3.1 / max 4.0 of n=12"."""
    if not summary:
        return "—"
    parts = [quantile_text(summary, q, digits, with_n=False) for q in qs]
    n = summary.get("n")
    if n is None:
        return " / ".join(p.removesuffix(" (n not recorded)") for p in parts) + " (n not recorded)"
    if any(p.startswith("max ") or p.startswith("—") for p in parts):
        return " / ".join(parts)  # the "max … of n=…" part already says n
    return " / ".join(parts) + f" (n={n})"


def ratio_summary(ratios: Sequence[float], digits: int = 3) -> dict[str, Any]:
    """Ratios of two figures measured side by side, one per round, as a report keeps them: n (rounds), median,
    min and max. On a shared machine only figures measured together compare, so a comparison is a ratio per
    round, and its spread over the rounds is how far to trust the median."""
    if not ratios:
        raise ValueError("ratio summary of no rounds")
    return {"n": len(ratios), "median": round(percentile(ratios, 50), digits),
            "min": round(min(ratios), digits), "max": round(max(ratios), digits)}


def ratio_text(summary: Mapping[str, Any] | None, digits: int = 2) -> str:
    """A `ratio_summary` as a report prints it: "0.73 (range 0.70–0.76, n=50 rounds)"; "—" for none."""
    if not summary:
        return "—"
    return (f"{summary['median']:.{digits}f} (range {summary['min']:.{digits}f}–{summary['max']:.{digits}f}, "
            f"n={summary['n']} round{'s' if summary['n'] != 1 else ''})")
