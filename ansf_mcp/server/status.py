"""`ansf status`: the same figures as the system_status tool, read without a running server."""

from __future__ import annotations

from typing import Any

from ansf_mcp import __version__
from ansf_mcp.governor.phases import Governor
from ansf_mcp.settings import Settings
from ansf_mcp.system.measure import loaded_models, machine_figures


def shipped_models() -> dict[str, Any]:
    """What `auto` would load, read from the checkpoint files (torch stays unimported)."""
    from ansf_mcp.coordinator import neural
    from ansf_mcp.coordinator.profiles import DEFAULT_PROFILE, PROFILES

    files = {p.name: p.stat().st_size for p in sorted(neural.CHECKPOINT_DIR.glob("*.safetensors"))}
    return {"default_profile": DEFAULT_PROFILE, "profiles": list(PROFILES), "checkpoint_bytes": files}


def offline_status(settings: Settings) -> dict[str, Any]:
    from ansf_mcp.store.db import StoreError, is_postgres_url, open_store

    postgres = is_postgres_url(settings.store)
    store_info: dict[str, Any] = {"engine": "postgresql" if postgres else "sqlite"}
    if postgres:
        store_info["url"] = settings.store_label
    else:
        store_info.update(path=str(settings.db_path), exists=settings.db_path.exists())
    # A SQLite file that is not there yet is not created by looking at it.
    if postgres or settings.db_path.exists():
        try:
            store = open_store(settings.store_spec)
            with store.reading() as conn:
                store_info["engine_version"] = store.engine_version
                store_info["schema_version"] = store.schema_version
                store_info["swarms"] = conn.execute("SELECT COUNT(*) FROM swarms").fetchone()[0]
                store_info["tasks"] = conn.execute("SELECT COUNT(*) FROM tasks").fetchone()[0]
                store_info["outcomes"] = conn.execute("SELECT COUNT(*) FROM outcomes").fetchone()[0]
            store.close()
        except StoreError as exc:
            store_info["error"] = str(exc)
    governor = Governor(settings)
    return {
        "version": __version__,
        "data_dir": str(settings.data_dir),
        "store": store_info,
        "phase": governor.snapshot(),
        "machine": machine_figures().model_dump(),
        "models": {**loaded_models(), **shipped_models()},
    }
