"""Measuring other processes: the server as a client starts it, and a one-off Python snippet's peak memory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import psutil
from mcp import StdioServerParameters


def server_params(data_dir: Path, env: dict[str, str] | None = None, *, echo: bool = False) -> StdioServerParameters:
    """The stdio server as `ansf serve --standalone` runs it (with the benchmark's echo tool when asked). The background model
    warm-up is off unless `env` turns it on: its torch import would run during the first measurements."""
    module = "ansf_mcp.bench.stdio_target" if echo else "ansf_mcp"
    args = ["-m", module, "--data-dir", str(data_dir)] if echo else ["-m", module, "serve", "--standalone", "--data-dir", str(data_dir)]
    return StdioServerParameters(command=sys.executable, args=args, env={"ANSF_WARMUP": "0", **(env or {})})


def server_process(data_dir: Path) -> psutil.Process:
    """Our child server process, found by its data directory on the command line."""
    for child in psutil.Process().children(recursive=True):
        try:
            if str(data_dir) in " ".join(child.cmdline()):
                return child
        except psutil.Error:
            continue
    raise RuntimeError(f"no server process with data directory {data_dir} found")


def python_peak_rss(code: str, timeout: float = 600) -> dict[str, float]:
    """Run `code` in a fresh interpreter that sets `result` (a dict); adds the process's peak RSS (MiB).

    The peak is VmHWM from /proc: getrusage's ru_maxrss survives fork+exec on Linux, so a child would report
    the benchmark runner's own peak instead of its own. Read inline rather than through
    ansf_mcp.system.measure.peak_rss, whose psutil import would add to the peak being measured.
    """
    wrapper = (
        "import json\n"
        f"{code}\n"
        "out = result if 'result' in dir() else {}\n"
        "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM:')][0].split()[1]\n"
        "out['peak_rss_mib'] = int(hwm) / 1024\n"
        "print(json.dumps(out))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", wrapper], capture_output=True, text=True, timeout=timeout, env=dict(os.environ)
    )
    if proc.returncode != 0:
        raise RuntimeError(f"measurement subprocess failed: {proc.stderr.strip()[-800:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])
