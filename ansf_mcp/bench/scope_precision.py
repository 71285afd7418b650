"""Precision of find_references on shadowed module globals, against the compiler's own symbol tables.

    python -m ansf_mcp.bench.scope_precision PROJECT NAME DEFINING_FILE [NAME DEFINING_FILE ...] [--json FILE]

For each name: jedi's raw answer (textDocument/references), our answer (scope-checked, with `__all__` entries and
string annotations), and the truth per occurrence from `symtable` (Python's compiler: is the name global in the
innermost scope that holds the occurrence?), an implementation apart from `semantic/scopes.py`. A false positive
is a reference whose occurrence the compiler binds elsewhere (a parameter, a local, a free variable of an
enclosing function, a class attribute); a false negative is an occurrence of jedi's answer that the compiler
says is the global and that our answer left out. Attribute accesses (`mod.name`) and string occurrences have no
symbol table entry and are counted apart.
"""

from __future__ import annotations

import argparse
import ast
import io
import json
import symtable
import sys
import tempfile
import tokenize
from pathlib import Path
from typing import Any

from ansf_mcp.semantic.positions import from_server
from ansf_mcp.semantic.service import SemanticService

_SCOPE_TYPES = {ast.FunctionDef: "function", ast.AsyncFunctionDef: "function", ast.Lambda: "function",
                ast.ClassDef: "class", ast.ListComp: "function", ast.SetComp: "function",
                ast.DictComp: "function", ast.GeneratorExp: "function"}


def _tables(table: symtable.SymbolTable, parents: dict[int, symtable.SymbolTable]) -> list[symtable.SymbolTable]:
    out = [table]
    for child in table.get_children():
        parents[id(child)] = table
        out += _tables(child, parents)
    return out


def _span(node: ast.AST) -> tuple[tuple[int, int], tuple[int, int]] | None:
    """Where a scope's own names live: a function from its first parameter (or body), a class from its body."""
    end = (node.end_lineno or 0, node.end_col_offset or 0)  # type: ignore[attr-defined]
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
        args = [*node.args.posonlyargs, *node.args.args, *node.args.kwonlyargs]
        args += [a for a in (node.args.vararg, node.args.kwarg) if a]
        first = min(((a.lineno, a.col_offset) for a in args), default=None)
        body = node.body[0] if isinstance(node.body, list) else node.body
        start = first or (body.lineno, body.col_offset)
        return start, end
    if isinstance(node, ast.ClassDef):
        return (node.body[0].lineno, node.body[0].col_offset), end
    if isinstance(node, (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)):
        return (node.lineno, node.col_offset), end
    return None


def compiler_truth(text: str, name: str, modules: frozenset[str] = frozenset()) -> dict[tuple[int, int], bool | None]:
    """{(0-based line, code-point column): the compiler binds it to the module global} for every NAME token (None:
    a keyword argument's name or an attribute, which no scope binds). A function's local made only by `from M
    import name`, M one of `modules` (the defining module and its re-exporters), is that global too."""
    tree = ast.parse(text)
    module = symtable.symtable(text, "<bench>", "exec")
    parents: dict[int, symtable.SymbolTable] = {}
    tables = _tables(module, parents)
    scopes = [(n, _span(n)) for n in ast.walk(tree) if type(n) in _SCOPE_TYPES]
    # a keyword argument's name and an attribute are no variables: the compiler has no binding for them
    not_names = {(n.lineno, n.col_offset) for n in ast.walk(tree) if isinstance(n, ast.keyword) and n.arg == name}
    not_names |= {(n.end_lineno, (n.end_col_offset or 0) - len(name.encode())) for n in ast.walk(tree)
                  if isinstance(n, ast.Attribute) and n.attr == name}
    lines = text.splitlines()
    out: dict[tuple[int, int], bool | None] = {}
    for tok in tokenize.generate_tokens(io.StringIO(text).readline):
        if tok.type != tokenize.NAME or tok.string != name:
            continue
        line, col = tok.start
        byte_col = len(lines[line - 1][:col].encode("utf-8"))
        if (line, byte_col) in not_names:
            out[(line - 1, col)] = None
            continue
        inside = [(n, s) for n, s in scopes if s and s[0] <= (line, byte_col) < s[1]]
        node = max(inside, key=lambda ns: ns[1][0])[0] if inside else None
        table = module
        if node is not None:
            kind = _SCOPE_TYPES[type(node)]
            named = getattr(node, "name", None)
            same = [t for t in tables if t.get_type() == kind and t.get_lineno() == node.lineno
                    and (named is None or t.get_name() == named)]
            table = next((t for t in same if name in t.get_identifiers()), same[0] if same else module)
        verdict = _is_global(table, name, parents)
        if not verdict and node is not None and table.get_type() == "function" and _imported_only(
                table, name, node, modules):
            verdict = True
        out[(line - 1, col)] = verdict
    return out


def _imported_only(table: symtable.SymbolTable, name: str, node: ast.AST, modules: frozenset[str]) -> bool:
    try:
        s = table.lookup(name)
    except KeyError:
        return False
    if not s.is_imported() or s.is_parameter() or s.is_assigned():
        return False
    sources = {n.module for n in ast.walk(node) if isinstance(n, ast.ImportFrom) and not n.level
               and any((a.asname or a.name) == name and a.name == name for a in n.names)}
    return bool(sources) and sources <= modules


def _is_global(table: symtable.SymbolTable, name: str, parents: dict[int, symtable.SymbolTable]) -> bool:
    if table.get_type() == "module":
        return True
    try:
        s = table.lookup(name)
    except KeyError:  # not used in this scope: evaluated in the enclosing one (a comprehension's first iterable)
        parent = parents.get(id(table))
        return True if parent is None else _is_global(parent, name, parents)
    if table.get_type() == "class":
        return not s.is_local() or s.is_global()
    if s.is_global() or s.is_declared_global():
        return True
    return not (s.is_local() or s.is_parameter() or s.is_free())


def measure(root: Path, name: str, rel: str, data_dir: Path) -> dict[str, Any]:
    service = SemanticService(root, data_dir)
    try:
        path, rel, lang, loc = service._locate(name, rel)
        srv = service.server(lang)
        line, col = loc.node["sel"]
        raw = srv.request("textDocument/references", path, lambda uri: {
            "textDocument": {"uri": uri}, "position": {"line": line, "character": col},
            "context": {"includeDeclaration": False}}) or []
        jedi: set[tuple[str, int, int]] = set()
        for item in raw:
            p = Path(item["uri"].removeprefix("file://"))
            frel = service.rel(p)
            if frel is None:
                continue
            ln = item["range"]["start"]["line"]
            jedi.add((frel, ln, from_server(service._line(p, ln), item["range"]["start"]["character"],
                                            srv.position_encoding)))
        jedi.discard((rel, line, col))  # the definition itself (jedi includes it; our answer never does)
        found = service.reference_list(name, rel)
        refs, note = found.refs, found.note
        ours = {(r["relative_path"], r["line"] - 1, r["column"] - 1): r.get("kind") for r in refs}
        plain = loc.node["name"]  # `name[i]` selects one of same-named definitions; the code says `name`
        exporters = frozenset(m for m in service.project_scopes(rel, plain).exporters if m)
    finally:
        service.shutdown()
    truths: dict[str, dict[tuple[int, int], bool]] = {}

    def truth(frel: str, ln: int, cl: int) -> bool | None:
        if frel not in truths:
            truths[frel] = compiler_truth((root / frel).read_text(encoding="utf-8"), plain, exporters)
        return truths[frel].get((ln, cl))

    def judge(places: set[tuple[str, int, int]]) -> dict[str, int]:
        verdicts = [truth(*p) for p in places]
        return {"total": len(places), "global": verdicts.count(True), "other_binding": verdicts.count(False),
                "not_a_name": verdicts.count(None)}

    ours_places = set(ours)
    dropped_globals = sorted(f"{p[0]}:{p[1] + 1}:{p[2] + 1}" for p in jedi - ours_places if truth(*p) is True)
    false_positives = sorted(f"{p[0]}:{p[1] + 1}:{p[2] + 1}" for p in ours_places if truth(*p) is False)
    strings = sum(1 for k in ours.values() if k in ("__all__", "string annotation"))
    return {"name": name, "defined_in": rel, "jedi": judge(jedi), "ours": judge(ours_places),
            "ours_strings_added": strings, "false_positives_ours": false_positives,
            "false_positives_jedi": sum(1 for p in jedi if truth(*p) is False),
            "false_negatives_ours": dropped_globals, "note": note}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("project", type=Path)
    ap.add_argument("targets", nargs="+", help="NAME DEFINING_FILE pairs")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    if len(args.targets) % 2:
        ap.error("targets come in pairs: NAME DEFINING_FILE")
    root = args.project.resolve()
    results = []
    with tempfile.TemporaryDirectory(prefix="ansf-scope-bench-") as tmp:
        for i in range(0, len(args.targets), 2):
            name, rel = args.targets[i], args.targets[i + 1]
            results.append(measure(root, name, rel, Path(tmp) / f"data-{i}"))
            print(json.dumps(results[-1]), file=sys.stderr, flush=True)
    report = {"project": str(root), "results": results}
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    print("| name | jedi: references / other bindings | ours: references / other bindings | jedi's globals "
          "left out | `__all__` + string annotations added |")
    print("|---|---|---|---|---|")
    for r in results:
        print(f"| `{r['name']}` ({r['defined_in']}) | {r['jedi']['total']} / {r['false_positives_jedi']} | "
              f"{r['ours']['total']} / {len(r['false_positives_ours'])} | {len(r['false_negatives_ours'])} | "
              f"{r['ours_strings_added']} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
