"""The semantic layer's health, from this process or as the serving process last reported it."""

from __future__ import annotations

import json
import time
from typing import Any


def semantic_health(app: Any, now: float | None = None) -> dict[str, Any] | None:
    """The semantic layer's health: from this process when it runs the layer, else as the serving process last
    reported it to the store (with who reported it and how long ago), else None."""
    provider = getattr(app, "status_providers", {}).get("semantic")
    reported: dict[str, Any] | None = None
    if provider is None:
        with app.store.reading() as conn:
            row = conn.execute("SELECT pid, status, updated_at FROM component_status WHERE name = 'semantic'"
                               ).fetchone()
        if row is None:
            return None
        status = json.loads(row["status"])
        reported = {"pid": row["pid"], "at": row["updated_at"],
                    "age_s": round((time.time() if now is None else now) - row["updated_at"], 1)}
    else:
        try:
            status = provider()
        except Exception as exc:
            return {"error": f"{type(exc).__name__}: {exc}"}
    cache = status.get("cache") or {}
    servers = status.get("servers") or []
    return {
        "cache": {k: cache.get(k) for k in ("hits", "misses", "hit_ratio", "entries", "bytes_on_disk", "budget_bytes")},
        "servers": [
            {k: s.get(k) for k in ("language", "server", "alive", "rss_bytes", "restarts", "requests")}
            for s in servers
            if isinstance(s, dict)
        ],
        "unavailable": status.get("unavailable") or {},
        "started": status.get("started", True),
        "note": status.get("note"),
        "reported_by": reported,
    }
