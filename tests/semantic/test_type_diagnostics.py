"""Type-aware Python diagnostics from basedpyright, started only when diagnostics are asked for (through MCP)."""

from __future__ import annotations

import importlib.util

import pytest

from tests.semantic.conftest import build
from tests.semantic.helpers import ok

pytestmark = [pytest.mark.anyio,
              pytest.mark.skipif(importlib.util.find_spec("basedpyright") is None,
                                 reason="basedpyright is not installed")]

SEEDED = '''from geo.rect import Rect


def double(value: int) -> int:
    return value * 2


double(1, 2)
count: int = "three"
Rect(1, 2).perimeter()
"text".shout()
'''


def _servers(service) -> list[str]:
    return [s["server"] for s in service.status()["servers"]]


async def test_seeded_type_errors_are_found_and_labelled_with_their_checker(pyproj_copy, tmp_path):
    (pyproj_copy / "src/geo/seeded.py").write_text(SEEDED)
    server, _, service = build(pyproj_copy, tmp_path / "data")
    try:
        await ok(server, "find_symbol", {"name_path": "double", "relative_path": "src/geo/seeded.py"})
        assert "basedpyright" not in _servers(service)  # navigation never starts the checker
        r = await ok(server, "get_diagnostics", {"relative_path": "src/geo/seeded.py"})
        assert "basedpyright" in _servers(service)
        errors = [d for d in r["diagnostics"] if d["severity"] == "error"]
        assert [(d["line"], d["checker"]) for d in errors] == [(line, "basedpyright") for line in (8, 9, 10, 11)], r
        assert "perimeter" in errors[2]["message"] and "shout" in errors[3]["message"] and r["note"] is None
        # settled: the next call for the same content does not wait for a publication that will not come again
        uri = (pyproj_copy / "src/geo/seeded.py").resolve().as_uri()
        assert service.type_checker()._diag[uri].is_set()
        # the same file mended on disk: the next answer is about the new content
        (pyproj_copy / "src/geo/seeded.py").write_text(SEEDED.split("double(1, 2)")[0] + "double(1)\n")
        r = await ok(server, "get_diagnostics", {"relative_path": "src/geo/seeded.py"})
        assert "error" not in r["counts"] and r["counts"] == {"hint": 1}, r  # the unused import, a hint
        service.trim_memory()  # memory pressure: the checker goes, and comes back when asked
        assert "basedpyright" not in _servers(service)
        (pyproj_copy / "src/geo/broken.py").write_text("def broken(:\n    pass\n")
        r = await ok(server, "get_diagnostics", {"relative_path": "src/geo/broken.py"})
        assert r["counts"].get("error", 0) >= 1 and r["diagnostics"][0]["line"] == 1
        assert "basedpyright" in _servers(service)
    finally:
        service.shutdown()
