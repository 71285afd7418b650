"""Symbol trees and name paths (`Class/method`, `/Absolute/path`, `name[i]` for overloads)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

SYMBOL_KINDS = {
    1: "file", 2: "module", 3: "namespace", 4: "package", 5: "class", 6: "method", 7: "property", 8: "field",
    9: "constructor", 10: "enum", 11: "interface", 12: "function", 13: "variable", 14: "constant", 15: "string",
    16: "number", 17: "boolean", 18: "array", 19: "object", 20: "key", 21: "null", 22: "enum_member",
    23: "struct", 24: "event", 25: "operator", 26: "type_parameter",
}


def _pos(p: dict) -> tuple[int, int]:
    return p["line"], p["character"]


def _contains(outer: dict, inner: dict) -> bool:
    return _pos(outer["start"]) <= _pos(inner["start"]) and _pos(inner["end"]) <= _pos(outer["end"])


def normalise(raw: list[dict] | None) -> list[dict]:
    """LSP DocumentSymbol[] or SymbolInformation[] -> tree of compact dicts.

    Node: {"name", "kind", "range": [sl, sc, el, ec], "sel": [line, col], "children": [...]} (0-based).
    Flat SymbolInformation lists (what multilspy hands out) are rebuilt into a tree by range containment.
    """
    if not raw:
        return []
    if "location" in raw[0]:
        return _sorted(_rebuild_from_flat(raw))
    return _sorted([_from_document_symbol(s) for s in raw])


def _sorted(nodes: list[dict]) -> list[dict]:
    nodes.sort(key=lambda n: (n["range"][0], n["range"][1], n["sel"][0], n["sel"][1]))
    for n in nodes:
        _sorted(n["children"])
    return nodes


def _from_document_symbol(s: dict) -> dict:
    r = s["range"]
    sel = s.get("selectionRange", r)["start"]
    return {
        "name": s["name"],
        "kind": SYMBOL_KINDS.get(s.get("kind", 0), "unknown"),
        "range": [r["start"]["line"], r["start"]["character"], r["end"]["line"], r["end"]["character"]],
        "sel": [sel["line"], sel["character"]],
        "children": [_from_document_symbol(c) for c in s.get("children") or []],
    }


def _rebuild_from_flat(raw: list[dict]) -> list[dict]:
    items = []
    for s in raw:
        r = s["location"]["range"]
        items.append((r, {
            "name": s["name"], "kind": SYMBOL_KINDS.get(s.get("kind", 0), "unknown"),
            "range": [r["start"]["line"], r["start"]["character"], r["end"]["line"], r["end"]["character"]],
            "sel": [r["start"]["line"], r["start"]["character"]], "children": [],
        }))
    # Larger ranges first, so parents precede children; then attach each to the innermost container.
    items.sort(key=lambda t: (_pos(t[0]["start"]), tuple(-x for x in _pos(t[0]["end"]))))
    roots: list[dict] = []
    stack: list[tuple[dict, dict]] = []
    for r, node in items:
        while stack and not _contains(stack[-1][0], r):
            stack.pop()
        (stack[-1][1]["children"] if stack else roots).append(node)
        stack.append((r, node))
    return roots


@dataclass
class Located:
    node: dict
    path: list[tuple[str, int]]  # (name, overload index among same-named siblings)
    has_twin: list[bool]

    @property
    def name_path(self) -> str:
        return format_name_path(self.path, self.has_twin)


def format_name_path(path: list[tuple[str, int]], has_twin: list[bool]) -> str:
    return "/".join(f"{n}[{i}]" if twin else n for (n, i), twin in zip(path, has_twin, strict=True))


def iter_symbols(tree: list[dict], prefix=None, twins=None):
    """Yield Located for every symbol, depth-first, with overload indices."""
    prefix = prefix or []
    twins = twins or []
    seen: dict[str, int] = {}
    counts: dict[str, int] = {}
    for node in tree:
        counts[node["name"]] = counts.get(node["name"], 0) + 1
    for node in tree:
        i = seen.get(node["name"], 0)
        seen[node["name"]] = i + 1
        path = [*prefix, (node["name"], i)]
        tw = [*twins, counts[node["name"]] > 1]
        yield Located(node, path, tw)
        yield from iter_symbols(node["children"], path, tw)


_COMPONENT = re.compile(r"^(?P<name>.*?)(?:\[(?P<idx>\d+)\])?$")


class NamePathError(ValueError):
    pass


def parse_name_path(pattern: str) -> tuple[bool, list[tuple[str, int | None]]]:
    p = pattern.strip()
    if not p or p == "/":
        raise NamePathError("name_path is empty; use e.g. 'MyClass/method', '/top_level_function' or 'name[1]'")
    absolute = p.startswith("/")
    comps = []
    for part in p.strip("/").split("/"):
        m = _COMPONENT.match(part)
        if not m or not m.group("name"):
            raise NamePathError(f"bad name_path component {part!r} in {pattern!r}")
        comps.append((m.group("name"), int(m.group("idx")) if m.group("idx") is not None else None))
    return absolute, comps


def matches(loc: Located, absolute: bool, comps: list[tuple[str, int | None]], substring: bool) -> bool:
    path = loc.path
    if len(comps) > len(path) or (absolute and len(comps) != len(path)):
        return False
    tail = path[len(path) - len(comps):]
    last = len(comps) - 1
    for k, ((want, want_i), (name, i)) in enumerate(zip(comps, tail, strict=True)):
        if k == last and substring:
            if want.lower() not in name.lower():
                return False
        elif want != name and not _go_method(name, want):
            return False
        if want_i is not None and want_i != i:
            return False
    return True


def _go_method(name: str, want: str) -> bool:
    """gopls names a method '(Recv).Name' or '(*Recv).Name': 'Name' finds it too."""
    return name.startswith("(") and name.endswith(")." + want)


def find(tree: list[dict], pattern: str, substring: bool = False) -> list[Located]:
    absolute, comps = parse_name_path(pattern)
    return [loc for loc in iter_symbols(tree) if matches(loc, absolute, comps, substring)]


def enclosing(tree: list[dict], line: int, col: int) -> Located | None:
    """Innermost symbol whose range contains (line, col), 0-based."""
    best = None
    for loc in iter_symbols(tree):
        sl, sc, el, ec = loc.node["range"]
        if (sl, sc) <= (line, col) <= (el, ec) and (best is None or len(loc.path) > len(best.path)):
            best = loc
    return best


def to_public(node: dict, name_path: str, relative_path: str, depth: int, lines: list[str] | None = None,
              include_body: bool = False, twins_prefix: Any = None) -> dict:
    """Compact public dict (1-based lines/columns) with children down to `depth`."""
    sl, _sc, el, _ec = node["range"]
    out: dict[str, Any] = {
        "name_path": name_path,
        "kind": node["kind"],
        "relative_path": relative_path,
        "line": node["sel"][0] + 1,
        "column": node["sel"][1] + 1,
        "start_line": sl + 1,
        "end_line": el + 1,
    }
    if include_body and lines is not None:
        out["body"] = "\n".join(lines[sl:el + 1])
    if depth > 0 and node["children"]:
        kids = []
        for loc in iter_symbols(node["children"]):
            if len(loc.path) != 1:
                continue
            kids.append(to_public(loc.node, f"{name_path}/{loc.name_path}", relative_path, depth - 1, lines,
                                  include_body=False))
        out["children"] = kids
    return out
