"""A language-server-free truth for reference completeness: the lines where a name occurs as code.

Python's own tokenizer finds every NAME token equal to the name (strings, comments and docstrings are not
NAME tokens), in every Python file the semantic layer would scan. A reference answer is complete when it covers
these lines (less the definition's own line). The truth over-counts where an unrelated name is spelled the same
(a local variable, another class's attribute), so a distinctive name is the fair test.
"""

from __future__ import annotations

import io
import tokenize
from collections import Counter
from pathlib import Path

from ansf_mcp.semantic.paths import read_text, walk_files

PY_EXT = frozenset({".py", ".pyi"})


def name_lines(root: Path, name: str) -> set[tuple[str, int]]:
    """{(relative posix path, 1-based line)} where `name` occurs as a NAME token."""
    root = root.resolve()
    out: set[tuple[str, int]] = set()
    for path in walk_files(root, root, PY_EXT):
        text, _clean = read_text(path)
        if name not in text:
            continue
        rel = path.resolve().relative_to(root).as_posix()
        try:
            for tok in tokenize.generate_tokens(io.StringIO(text).readline):
                if tok.type == tokenize.NAME and tok.string == name:
                    out.add((rel, tok.start[0]))
        except (tokenize.TokenError, SyntaxError, IndentationError):
            continue
    return out


def name_counts(root: Path) -> Counter:
    """How many lines each NAME occurs on, over the project (to pick heavily used names)."""
    root = root.resolve()
    counts: Counter = Counter()
    for path in walk_files(root, root, PY_EXT):
        text, _clean = read_text(path)
        seen: set[tuple[str, int]] = set()
        try:
            for tok in tokenize.generate_tokens(io.StringIO(text).readline):
                if tok.type == tokenize.NAME and (tok.string, tok.start[0]) not in seen:
                    seen.add((tok.string, tok.start[0]))
                    counts[tok.string] += 1
        except (tokenize.TokenError, SyntaxError, IndentationError):
            continue
    return counts


def completeness(answer_lines: set[tuple[str, int]], truth: set[tuple[str, int]],
                 definition: tuple[str, int]) -> dict:
    """Share of the truth's lines (less the definition line) that the answer covers."""
    want = truth - {definition}
    got = answer_lines & want
    return {"truth_lines": len(want), "found_lines": len(got),
            "completeness": round(len(got) / len(want), 4) if want else None,
            "extra_lines": len(answer_lines - truth - {definition})}
