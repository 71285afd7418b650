"""The seeded type-error comparison and the scope-precision bench, on our own fixtures (Serena is not installed
in CI: its half is exercised where it is set up, docs/SEMANTIC.md; here its answer format is parsed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ansf_mcp.bench import scope_precision, type_errors_compare
from tests.semantic.conftest import FIXTURES

TYPEERRORS = FIXTURES / "typeerrors"
SHADOW = FIXTURES / "shadowproj"


def test_the_seeded_truth_is_fifteen_kinds_one_per_line():
    truth = type_errors_compare.seeded(TYPEERRORS)
    assert len(truth) == 15 and len(set(truth.values())) == 15
    assert all(rel == "inventory/seeded.py" for rel, _line in truth)
    assert truth[("inventory/seeded.py", 11)] == "wrong argument count"


def test_serenas_grouped_answer_is_read_by_severity_and_file():
    text = json.dumps({"inventory/seeded.py": {
        "Error": {"total": [{"message": "x", "range": {"start": {"line": 10, "character": 4}}}]},
        "Warning": {"<file>": [{"message": "y", "range": {"start": {"line": 33, "character": 0}}}]},
        "Hint": {"f": [{"message": "unused", "range": {"start": {"line": 2, "character": 0}}}]}},
        "other.py": {"Error": {"g": [{"message": "z", "range": {"start": {"line": 1, "character": 0}}}]}}})
    assert type_errors_compare.serena_lines(text, "inventory/seeded.py") == {11, 34}
    assert type_errors_compare.serena_lines("No diagnostics.", "inventory/seeded.py") == set()
    side = {"lines": {"inventory/seeded.py": [11, 12]}}
    scored = type_errors_compare.score({("inventory/seeded.py", 11): "a", ("inventory/seeded.py", 15): "b"}, side)
    assert scored == {"found": 1, "seeded": 2, "missed": ["b"], "extra_lines": ["inventory/seeded.py:12"]}


@pytest.mark.slow
def test_ours_finds_every_seeded_type_error_over_stdio(tmp_path, capsys):
    out = tmp_path / "report.json"
    assert type_errors_compare.main([str(TYPEERRORS), "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    ours = report["sides"]["ours"]
    assert (ours["found"], ours["seeded"], ours["missed"], ours["extra_lines"]) == (15, 15, [], [])
    assert "serena" not in report["sides"]
    table = type_errors_compare.markdown(report)
    assert "| **found** | 15/15 |" in table and table.count("| found |") == 15


def test_the_compilers_truth_tells_shadowing_bindings_apart():
    text = (SHADOW / "webapp/handlers.py").read_text()
    truth = scope_precision.compiler_truth(text, "request")
    assert sorted(line + 1 for (line, _c), is_global in truth.items() if is_global is True) == [3, 7, 41, 45, 46, 47]
    assert sorted({line + 1 for (line, _c), is_global in truth.items() if is_global is False}) == \
        [10, 11, 15, 16, 20, 25, 29, 32, 38]
    calls = scope_precision.compiler_truth("def f(attrs):\n    return g(attrs=[a for a in attrs])\nx.attrs\n", "attrs")
    assert calls == {(0, 6): False, (1, 13): None, (1, 31): False, (2, 2): None}


def test_on_the_shadowing_fixture_jedi_has_eleven_false_positives_and_ours_none(tmp_path: Path, capsys):
    out = tmp_path / "scope.json"
    assert scope_precision.main([str(SHADOW), "request", "webapp/globals.py", "--json", str(out)]) == 0
    (r,) = json.loads(out.read_text())["results"]
    assert r["false_positives_jedi"] == 11 and r["jedi"]["total"] == 21
    assert r["false_positives_ours"] == [] and r["false_negatives_ours"] == []
    assert r["ours"]["total"] == 11 and r["ours_strings_added"] == 1
    assert "| `request` (webapp/globals.py) | 21 / 11 | 11 / 0 | 0 | 1 |" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        scope_precision.main([str(SHADOW), "request"])
