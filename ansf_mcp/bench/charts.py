"""PNG charts of a benchmark report (matplotlib, no display needed)."""

from __future__ import annotations

from pathlib import Path

from ansf_mcp.bench import suites
from ansf_mcp.system.report import BenchmarkReport


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _bars(path: Path, title: str, labels: list[str], values: list[float], ylabel: str,
          errors: list[float] | None = None) -> Path:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(max(6, len(labels) * 1.1), 4))
    ax.bar(range(len(labels)), values, yerr=errors, capsize=4, color="#4c72b0")
    ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def draw_charts(report: BenchmarkReport, out_dir: Path) -> list[Path]:
    results = report.results
    written: list[Path] = []
    mcp = results.get("mcp", {})
    if "latency" in mcp:
        names = list(mcp["latency"])
        p50 = [mcp["latency"][n]["p50_ms"] for n in names]
        # A quick run has too few calls for a p99 (stats.min_samples): the whisker is then the slowest call, and
        # the title says so rather than drawing the maximum as a p99.
        tops = [mcp["latency"][n].get("p99_ms") for n in names]
        whisker = "p99" if None not in tops else "p99, or the slowest call where n < 100"
        spread = [(top if top is not None else mcp["latency"][n]["max_ms"]) - low
                  for n, top, low in zip(names, tops, p50, strict=True)]
        written.append(_bars(out_dir / "mcp-latency.png", f"MCP over stdio: p50 (bar) to {whisker} (whisker)",
                             names, p50, "ms", spread))
    memory = results.get("memory", {})
    if "server" in memory:
        labels = ["idle server", "after coordinate"]
        values = [memory["server"]["idle_rss_mib"], memory["server"]["after_coordinate_auto_rss_mib"]]
        if isinstance(memory.get("profiles"), dict):
            for name, f in memory["profiles"].items():
                labels.append(f"profile {name}")
                values.append(f["rss_after_load_mib"])
        labels.append("peak coordinating")
        values.append(memory["peak_coordinating_16x64"]["peak_rss_mib"])
        written.append(_bars(out_dir / "memory.png", "Resident memory", labels, values, "MiB"))
    phases = results.get("phases", {})
    if "matrix" in phases:
        rows = list(phases["matrix"].values())
        written.append(_bars(out_dir / "phases-latency.png", "coordinate 16x64 p50 by phase",
                             [r["phase"] for r in rows], [r["coordinate_16x64"]["p50_ms"] for r in rows], "ms"))
        quality = [r for r in rows if r["quality"].get("value_ratio") is not None]
        if quality:
            written.append(_bars(out_dir / "phases-quality.png",
                                 "SIMULATED value ratio (held-out episodes) by phase, 95 % CI",
                                 [r["phase"] for r in quality], [r["quality"]["value_ratio"] for r in quality],
                                 "value ratio", [r["quality"]["ci95"] for r in quality]))
    bars = suites.BY_NAME["coordination"].value_ratios(results.get("coordination", {"error": "not run"}))
    if bars:
        written.append(_bars(out_dir / "coordination-quality.png",
                             "SIMULATED value ratio vs oracle, 95 % CI", [b.label for b in bars],
                             [b.mean for b in bars], "value ratio",
                             [(b.ci[1] - b.ci[0]) / 2 if b.ci else 0.0 for b in bars]))
    return written
