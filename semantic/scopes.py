"""Python name scopes: which binding one occurrence of a name stands for (Python's own rules, read from `ast`).

jedi's reference search keeps every occurrence of a name in a file that imports the symbol, so a parameter, a
local, a lambda argument or a class attribute that shadows a module global counts as a use of the global, and
it misses the places a name is written as a string: `__all__` entries and string annotations (`"Config"`,
`"list[Config]"`, `Optional["Config"]`). `analyse()` walks one module and labels each occurrence of a name with
its kind and whether it binds the module's global; `ProjectScopes` follows imports between the project's
modules, so a global is told from another module's object of the same name (`from vendor import request`).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from ansf_mcp.semantic.positions import split_lines

# what an occurrence is, as the answers label it
CODE, IMPORT, ALL, STRING_ANNOTATION, ATTRIBUTE = "code", "import", "__all__", "string annotation", "attribute"
PARAMETER, KEYWORD = "parameter", "keyword argument"
ALIAS = "alias"  # a use under another name (`from m import Item as It; It()`): a reference a rename leaves as it is

_SCOPES = (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef, ast.ListComp, ast.SetComp,
           ast.DictComp, ast.GeneratorExp)
_COMPREHENSIONS = (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)


@dataclass(frozen=True)
class Occurrence:
    line: int  # 0-based
    column: int  # 0-based, code points
    kind: str
    module_level: bool  # the name here is the module's global (not a local, parameter, class attribute)
    source: str | None = None  # `from SOURCE import name`: the module the imported name comes from


@dataclass
class ModuleNames:
    """Every occurrence of one name in one module, and how the module's global of that name is bound."""

    occurrences: dict[tuple[int, int], Occurrence] = field(default_factory=dict)
    imports: list[tuple[str | None, str]] = field(default_factory=list)  # (absolute module, name there)
    aliases: list[tuple[str | None, str]] = field(default_factory=list)  # `from m import name as x`: (m, "x")
    defines: bool = False  # bound at module level other than by an import (assignment, def, class)

    def added(self) -> list[Occurrence]:
        """The module-level occurrences written as strings: `__all__` entries and string annotations."""
        return [o for o in self.occurrences.values() if o.module_level and o.kind in (ALL, STRING_ANNOTATION)]


def _outer_parts(node: ast.AST) -> list[ast.AST]:
    """Parts of a scope node evaluated in the enclosing scope (decorators, defaults, annotations, bases, the
    first iterable of a comprehension)."""
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
        a = node.args
        parts: list[ast.AST] = [*a.defaults, *(d for d in a.kw_defaults if d is not None)]
        if not isinstance(node, ast.Lambda):
            parts += node.decorator_list
            parts += [x.annotation for x in _args(a) if x.annotation is not None]
            if node.returns is not None:
                parts.append(node.returns)
        return parts
    if isinstance(node, ast.ClassDef):
        return [*node.decorator_list, *node.bases, *node.keywords]
    if isinstance(node, _COMPREHENSIONS):
        return [node.generators[0].iter]
    return []


def _inner_parts(node: ast.AST) -> list[ast.AST]:
    if isinstance(node, ast.Module | ast.ClassDef):
        return list(node.body)
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        return [*_args(node.args), *node.body]
    if isinstance(node, ast.Lambda):
        return [*_args(node.args), node.body]
    if isinstance(node, _COMPREHENSIONS):
        gens = node.generators
        parts: list[ast.AST] = []
        for i, g in enumerate(gens):
            parts.append(g.target)
            if i:
                parts.append(g.iter)
            parts += g.ifs
        if isinstance(node, ast.DictComp):
            return [*parts, node.key, node.value]
        return [*parts, node.elt]
    return []


def _args(a: ast.arguments) -> list[ast.arg]:
    return [*a.posonlyargs, *a.args, *([a.vararg] if a.vararg else []), *a.kwonlyargs,
            *([a.kwarg] if a.kwarg else [])]


def _own_nodes(scope: ast.AST) -> Iterator[ast.AST]:
    """Every node that belongs to `scope` itself; a nested scope node is yielded (its name binds here) with its
    outer parts, never its inside."""
    stack = list(reversed(_inner_parts(scope)))
    while stack:
        n = stack.pop()
        yield n
        if isinstance(n, _SCOPES):
            stack.extend(reversed(_outer_parts(n)))
        elif not isinstance(n, ast.arg):  # an argument's annotation belongs to the enclosing scope
            stack.extend(reversed(list(ast.iter_child_nodes(n))))


@dataclass
class _Binding:
    bound: bool = False
    declared_global: bool = False
    declared_nonlocal: bool = False
    imported_from: set[str | None] = field(default_factory=set)  # `from SOURCE import name` binding it here
    bound_otherwise: bool = False  # an assignment, parameter, def... binds it here too


def _binds(n: ast.AST, name: str) -> bool:
    if isinstance(n, ast.Name):
        return n.id == name and isinstance(n.ctx, ast.Store | ast.Del)
    if isinstance(n, ast.arg):
        return n.arg == name
    if isinstance(n, ast.alias):
        return (n.asname or n.name.split(".")[0]) == name
    if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.ExceptHandler | ast.MatchAs
                  | ast.MatchStar):
        return getattr(n, "name", None) == name
    if isinstance(n, ast.MatchMapping):
        return n.rest == name
    return False


def _binding(scope: ast.AST, name: str, source_of: Callable[[ast.ImportFrom], str | None]) -> _Binding:
    b = _Binding()
    for n in _own_nodes(scope):
        if isinstance(n, ast.Global) and name in n.names:
            b.declared_global = True
        elif isinstance(n, ast.Nonlocal) and name in n.names:
            b.declared_nonlocal = True
        elif isinstance(n, ast.ImportFrom):
            for a in n.names:
                if (a.asname or a.name) == name:
                    b.bound = True
                    b.imported_from.add(source_of(n) if a.name == name else None)
        elif isinstance(n, ast.Import):
            if any(_binds(a, name) for a in n.names):
                b.bound = b.bound_otherwise = True  # `import name`: a module, not the global
        elif _binds(n, name) and not isinstance(n, ast.alias):  # an import's names are read above
            b.bound = b.bound_otherwise = True
    return b


def _absolute(module: str | None, level: int, here: str | None, is_package: bool) -> str | None:
    if not level:
        return module
    if here is None:
        return None
    parts = here.split(".") if is_package else here.split(".")[:-1]
    if level - 1 > len(parts):
        return None
    base = parts[: len(parts) - (level - 1)]
    return ".".join([*base, *([module] if module else [])]) or None


class _Analyser:
    def __init__(self, text: str, name: str, module: str | None, is_package: bool) -> None:
        self.lines = split_lines(text)
        self.name = name
        self.module = module
        self.is_package = is_package
        self.word = re.compile(rf"(?<!\w){re.escape(name)}(?!\w)")
        self.out = ModuleNames()
        self._bindings: dict[int, _Binding] = {}
        self._annotations: set[int] = set()

    def col(self, line: int, byte_col: int) -> int:
        """ast counts columns in UTF-8 bytes; answers count code points."""
        text = self.lines[line] if 0 <= line < len(self.lines) else ""
        return len(text.encode("utf-8")[:byte_col].decode("utf-8", "replace"))

    def add(self, line: int, column: int, kind: str, module_level: bool, source: str | None = None) -> None:
        self.out.occurrences.setdefault((line, column), Occurrence(line, column, kind, module_level, source))

    def binding(self, scope: ast.AST) -> _Binding:
        b = self._bindings.get(id(scope))
        if b is None:
            b = self._bindings[id(scope)] = _binding(
                scope, self.name, lambda n: _absolute(n.module, n.level, self.module, self.is_package))
        return b

    def module_level(self, chain: list[ast.AST]) -> bool:
        """Whether the name, used in the innermost scope of `chain`, is the module's global."""
        return self.resolve(chain)[0]

    def resolve(self, chain: list[ast.AST]) -> tuple[bool, str | None]:
        """(the module's global, the module it is imported from when a local `from m import name` binds it)."""
        for i in range(len(chain) - 1, 0, -1):
            s = chain[i]
            if isinstance(s, ast.ClassDef) and i != len(chain) - 1:
                continue  # a class body's names are not visible inside its methods
            b = self.binding(s)
            if b.declared_global:
                return True, None
            if b.declared_nonlocal:
                continue
            if b.bound:
                only_import = not b.bound_otherwise and len(b.imported_from) == 1
                return False, next(iter(b.imported_from)) if only_import else None
        return True, None

    def run(self, tree: ast.Module) -> ModuleNames:
        for n in ast.walk(tree):
            if isinstance(n, ast.arg) and n.annotation is not None:
                self._annotations.add(id(n.annotation))
            elif isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.returns is not None:
                self._annotations.add(id(n.returns))
            elif isinstance(n, ast.AnnAssign):
                self._annotations.add(id(n.annotation))
        self.visit(tree, [tree])
        self.module_bindings(tree)
        return self.out

    def visit(self, scope: ast.AST, chain: list[ast.AST]) -> None:
        for n in _own_nodes(scope):
            self.occurrence(n, chain)
            if id(n) in self._annotations:
                self.string_annotations(n, chain)
            if isinstance(n, _SCOPES):
                self.visit(n, [*chain, n])

    def occurrence(self, n: ast.AST, chain: list[ast.AST]) -> None:
        name = self.name
        if isinstance(n, ast.Name) and n.id == name:
            # a local `from m import name` makes it m's global in this scope: the source says whose
            level, source = self.resolve(chain)
            self.add(n.lineno - 1, self.col(n.lineno - 1, n.col_offset), CODE, level, source)
        elif isinstance(n, ast.arg) and n.arg == name:
            self.add(n.lineno - 1, self.col(n.lineno - 1, n.col_offset), PARAMETER, False)
        elif isinstance(n, ast.keyword) and n.arg == name:
            self.add(n.lineno - 1, self.col(n.lineno - 1, n.col_offset), KEYWORD, False)
        elif isinstance(n, ast.Attribute) and n.attr == name and n.end_lineno is not None:
            line = n.end_lineno - 1
            end = self.col(line, n.end_col_offset or 0)
            self.add(line, end - len(name), ATTRIBUTE, False)
        elif isinstance(n, ast.Import | ast.ImportFrom):
            self.import_names(n, chain)
        elif isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) and n.name == name:
            self.words_in(n.lineno - 1, n.lineno - 1, CODE, self.module_level(chain), after=r"(?:def|class)\s+")
        elif isinstance(n, ast.Global | ast.Nonlocal) and name in n.names:
            self.words_in(n.lineno - 1, (n.end_lineno or n.lineno) - 1, CODE, isinstance(n, ast.Global),
                          after=r"(?:global|nonlocal)\b.*?")

    def import_names(self, n: ast.Import | ast.ImportFrom, chain: list[ast.AST]) -> None:
        level = self.module_level(chain)
        source = (_absolute(n.module, n.level, self.module, self.is_package) if isinstance(n, ast.ImportFrom)
                  else None)
        for a in n.names:
            if a.lineno is None:  # pragma: no cover - Python < 3.10
                continue
            line = a.lineno - 1
            text = self.lines[line] if line < len(self.lines) else ""
            start = self.col(line, a.col_offset)
            if a.name == self.name:
                # `from m import name [as other]`: a use of m's global, wherever the import statement stands
                self.add(line, start, IMPORT, level or source is not None, source)
            if a.asname == self.name:
                m = re.compile(rf"\bas\s+({re.escape(self.name)})\b").search(text, start)
                if m:
                    self.add(line, m.start(1), IMPORT, level)

    def words_in(self, first: int, last: int, kind: str, module_level: bool, after: str) -> None:
        rx = re.compile(after + rf"(?<!\w)({re.escape(self.name)})(?!\w)")
        for line in range(first, min(last, len(self.lines) - 1) + 1):
            text = self.lines[line]
            pos = 0
            while (m := rx.search(text, pos)) is not None:
                self.add(line, m.start(1), kind, module_level)
                pos = m.end(1)
                rx = re.compile(rf"(?<!\w)({re.escape(self.name)})(?!\w)")  # further names of one statement

    def string_annotations(self, root: ast.AST, chain: list[ast.AST]) -> None:
        for c in ast.walk(root):
            if not (isinstance(c, ast.Constant) and isinstance(c.value, str) and self.word.search(c.value)):
                continue
            if c.end_lineno != c.lineno:
                continue  # a string annotation over several lines: positions cannot be mapped back reliably
            line = c.lineno - 1
            text = self.lines[line] if line < len(self.lines) else ""
            start = self.col(line, c.col_offset)
            literal = text[start: self.col(line, c.end_col_offset or 0)]
            quote = re.match(r"([rRuU]?)('''|\"\"\"|'|\")", literal)
            if quote is None or literal[quote.end():len(literal) - len(quote.group(2))] != c.value:
                continue  # escapes or implicit concatenation: what the string says is not what the line says
            body_start = start + quote.end()
            try:
                inner = ast.parse(c.value.strip(), mode="eval")
            except SyntaxError:
                continue
            lead = len(c.value) - len(c.value.lstrip())
            module_level = self.module_level(chain)
            for x in ast.walk(inner):
                if isinstance(x, ast.Name) and x.id == self.name and x.lineno == 1:
                    col = body_start + lead + len(c.value.strip().encode("utf-8")[:x.col_offset].decode())
                    self.add(line, col, STRING_ANNOTATION, module_level)

    def module_bindings(self, tree: ast.Module) -> None:
        """How the module's global is bound (imports, own definitions) and its `__all__` entries."""
        for n in _own_nodes(tree):
            if isinstance(n, ast.ImportFrom):
                source = _absolute(n.module, n.level, self.module, self.is_package)
                for a in n.names:
                    if (a.asname or a.name) == self.name:
                        self.out.imports.append((source, a.name))
                    elif a.name == self.name and a.asname:
                        self.out.aliases.append((source, a.asname))
            elif isinstance(n, ast.Import):
                for a in n.names:
                    if (a.asname or a.name.split(".")[0]) == self.name:
                        self.out.imports.append((a.name, ""))
            elif _binds(n, self.name) and not isinstance(n, ast.alias):
                self.out.defines = True
            for entry in _all_entries(n):
                if entry.value == self.name:
                    line = entry.lineno - 1
                    self.add(line, self.col(line, entry.col_offset) + 1, ALL, True)


def _all_entries(n: ast.AST) -> list[ast.Constant]:
    """String entries of `__all__ = [...]`, `__all__ += [...]`, `__all__.extend([...])`, `__all__.append(...)`."""
    value: ast.AST | None = None
    if isinstance(n, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in n.targets):
        value = n.value
    elif isinstance(n, ast.AugAssign | ast.AnnAssign) and isinstance(n.target, ast.Name) \
            and n.target.id == "__all__":
        value = n.value
    elif isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr in ("extend", "append") \
            and isinstance(n.func.value, ast.Name) and n.func.value.id == "__all__" and n.args:
        value = n.args[0]
    if isinstance(value, ast.Constant):
        value = ast.List(elts=[value])
    if not isinstance(value, ast.List | ast.Tuple):
        return []
    return [e for e in value.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)
            and e.end_lineno == e.lineno]


def analyse(text: str, name: str, module: str | None = None, is_package: bool = False) -> ModuleNames | None:
    """Every occurrence of `name` in a module's source (None when it does not parse). `module` (dotted) resolves
    the module's relative imports."""
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return None
    return _Analyser(text, name, module, is_package).run(tree)


def module_name(rel: str, import_roots: Iterable[str]) -> tuple[str | None, bool]:
    """(dotted module name, is a package's __init__) of a project file, under the deepest import root holding it."""
    best: str | None = None
    for root in import_roots:
        prefix = root.strip("/").removeprefix(".")
        if not prefix:
            cand = rel
        elif rel.startswith(prefix + "/"):
            cand = rel[len(prefix) + 1:]
        else:
            continue
        if best is None or len(cand) < len(best):
            best = cand
    if best is None or not best.endswith((".py", ".pyi")):
        return None, False
    parts = best.rsplit(".", 1)[0].split("/")
    package = parts[-1] == "__init__"
    if package:
        parts = parts[:-1]
    if not parts or not all(p.isidentifier() for p in parts):
        return None, package
    return ".".join(parts), package


class ProjectScopes:
    """Which occurrences of a module-level name across the project are that global.

    `read(rel)` gives a file's text (None when unreadable); `candidates` are the files that may name it (any file
    where the name occurs as a word). A file *uses* the global when it is the defining module or binds the name
    at module level by importing it from a module that does (re-exports followed to a fixed point)."""

    def __init__(self, target_rel: str, name: str, read: Callable[[str], str | None], candidates: Iterable[str],
                 import_roots: Iterable[str]) -> None:
        self.target_rel = target_rel
        self.name = name
        self.read = read
        self.roots = list(import_roots)
        self._names: dict[str, ModuleNames | None] = {}
        target_module, _pkg = module_name(target_rel, self.roots)
        self.exporters = exporters = {target_module} if target_module else set()
        self.users = {target_rel}
        # only a module with a `from ... import` naming it can re-export it: the others are not parsed here
        imports = re.compile(rf"^[ \t]*from[ \t]+[\w.]+[ \t]+import[ \t]+(?:\([^)]*|[^\n]*)(?<!\w){re.escape(name)}(?!\w)",
                             re.M)
        pending = [r for r in dict.fromkeys(candidates)
                   if r != target_rel and imports.search(self.read(r) or "") is not None]
        changed = True
        while changed and pending:  # each round adds at least one user or stops: at most len(pending) rounds
            changed = False
            for rel in list(pending):
                names = self.names(rel)
                if names is not None and any(src in exporters and orig == name for src, orig in names.imports):
                    self.users.add(rel)
                    module, _ = module_name(rel, self.roots)
                    if module:
                        exporters.add(module)
                    pending.remove(rel)
                    changed = True

    def names(self, rel: str) -> ModuleNames | None:
        if rel not in self._names:
            text = self.read(rel)
            module, package = module_name(rel, self.roots)
            self._names[rel] = None if text is None else analyse(text, self.name, module, package)
        return self._names[rel]

    def classify(self, rel: str, line: int, column: int) -> tuple[bool, str]:
        """(is the global, kind) of the occurrence a language server reported at (line, column), 0-based."""
        names = self.names(rel)
        occ = names.occurrences.get((line, column)) if names is not None else None
        if names is None or occ is None:
            return True, CODE  # not a plain name here (or the file does not parse): the server's word stands
        if occ.kind == ATTRIBUTE:
            return True, ATTRIBUTE
        if occ.source is not None:
            return occ.source in self.exporters, occ.kind
        if not occ.module_level:
            return False, occ.kind
        if rel in self.users:
            return True, occ.kind
        # a module that binds the name itself, or imports it from elsewhere, holds another object of that name
        return not (names.imports or names.defines), occ.kind

    def alias_uses(self) -> list[tuple[str, Occurrence]]:
        """Module-level uses of the global under another name (`from m import name as x`, then `x`), in every
        module that imports it so from a module that exports it."""
        out = []
        for rel, names in sorted(self._names.items()):
            text = self.read(rel) if names is not None and names.aliases else None
            if text is None:
                continue
            module, package = module_name(rel, self.roots)
            for source, alias in names.aliases:
                if source not in self.exporters:
                    continue
                under = analyse(text, alias, module, package)
                out += [(rel, Occurrence(o.line, o.column, ALIAS, True, source))
                        for o in (under.occurrences.values() if under else ()) if o.module_level and o.kind == CODE]
        return out

    def added(self) -> list[tuple[str, Occurrence]]:
        """`__all__` entries and string annotations naming the global, in every file that uses it."""
        out = []
        for rel in sorted(self.users):
            names = self.names(rel)
            if names is not None:
                out += [(rel, o) for o in names.added()]
        return out


# What an occurrence of a member's name can be. jedi answers a member's references and renames by the name when it
# cannot infer the receiver, so a method `Cart.total` came back with the module function `total`, another class's
# `def total`, a parameter `total` and `shop.models.total(...)`; renaming them all broke nothing the type net sees.
MODULE_ATTRIBUTE, OTHER_DEFINITION = "module attribute", "another definition"


def _name_at(lines: list[str], line: int, after: str, name: str) -> int | None:
    m = re.compile(after + rf"({re.escape(name)})(?!\w)").search(lines[line] if 0 <= line < len(lines) else "")
    return m.start(1) if m else None


@dataclass(frozen=True)
class ClassInfo:
    """One class of a module, as the member analysis needs it."""

    rel: str
    chain: tuple[str, ...]  # its name and the classes it is nested in, from module level
    bases: tuple[str, ...]  # the last name of each base expression (`models.Base` -> "Base")
    defines: tuple[int, int] | None  # where its body defines the member name (0-based line, code-point column)


def classes(text: str, rel: str, name: str) -> list[ClassInfo]:
    """The classes of a module (nested in classes, not in functions), each with where it defines `name`."""
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return []
    lines = split_lines(text)
    out: list[ClassInfo] = []

    def walk(body: list[ast.stmt], chain: tuple[str, ...]) -> None:
        for n in body:
            if not isinstance(n, ast.ClassDef):
                continue
            here = (*chain, n.name)
            bases = tuple(b.id if isinstance(b, ast.Name) else b.attr for b in n.bases
                          if isinstance(b, ast.Name | ast.Attribute))
            where = None
            for m in n.body:
                if isinstance(m, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) and m.name == name:
                    c = _name_at(lines, m.lineno - 1, r"(?:def|class)\s+", name)
                    where = (m.lineno - 1, c) if c is not None else where
                elif isinstance(m, ast.Assign | ast.AnnAssign):
                    targets = m.targets if isinstance(m, ast.Assign) else [m.target]
                    if any(isinstance(t, ast.Name) and t.id == name for t in targets):
                        c = _name_at(lines, m.lineno - 1, r"^\s*", name)
                        where = (m.lineno - 1, c) if c is not None else where
            out.append(ClassInfo(rel, here, bases, where))
            walk(n.body, here)

    walk(tree.body, ())
    return out


def member_family(table: list[ClassInfo], owner: ClassInfo) -> tuple[list[ClassInfo], list[ClassInfo]]:
    """The classes whose definition of the member is the same member: the owner, its ancestors that define it,
    and every descendant of those that defines it (an override renamed alone would stop overriding); and the
    lineage: those roots and all their descendants, defining it or not (their `self.member` is this member).
    Bases are matched by name, so two classes of one name are both taken."""
    by_name: dict[str, list[ClassInfo]] = {}
    for c in table:
        by_name.setdefault(c.chain[-1], []).append(c)
    kids: dict[ClassInfo, list[ClassInfo]] = {}
    for c in table:
        for b in c.bases:
            for parent in by_name.get(b, []):
                if parent != c:
                    kids.setdefault(parent, []).append(c)
    roots, seen, todo = [owner], {owner}, [owner]
    while todo:  # up: the ancestors that define the member are the same member
        for b in todo.pop().bases:
            for parent in by_name.get(b, []):
                if parent not in seen:
                    seen.add(parent)
                    todo.append(parent)
                    if parent.defines is not None:
                        roots.append(parent)
    family, lineage, seen, todo = [], [], set(roots), list(roots)
    while todo:  # down from each of them
        c = todo.pop()
        lineage.append(c)
        if c.defines is not None or c == owner:
            family.append(c)
        for k in kids.get(c, []):
            if k not in seen:
                seen.add(k)
                todo.append(k)
    return family, lineage


SELF_ATTRIBUTE = "attribute of self"  # `self.name` in a method of the member's lineage: the member, no doubt
OTHER_CLASS_ATTRIBUTE = "another class's attribute"


def member_occurrences(text: str, name: str, owners: set[tuple[str, ...]],
                       lineage: frozenset[tuple[str, ...]] = frozenset(),
                       definers: frozenset[tuple[str, ...]] = frozenset()
                       ) -> dict[tuple[int, int], tuple[str, bool]] | None:
    """Every occurrence of `name` in a module: (line, column) -> (kind, whether it can be the member `name` of
    one of the classes `owners` of this module, each given as its chain of class names from module level).
    None when the module does not parse.

    A member is reached as `expr.name` (not when `expr` is an imported module), by keyword (`Item(price=1)`:
    a field), or by its bare name in its own class's body, where it is defined. Bare names anywhere else, the
    same name defined in another class or function, parameters and imports are other objects. `self.name` (the
    method's first parameter) in a method of a class of `lineage` is the member (SELF_ATTRIBUTE); in a method of
    a class of `definers` (outside the lineage, defining `name` itself), that class's own (OTHER_CLASS_ATTRIBUTE);
    elsewhere (a mixin's `self`) an ATTRIBUTE like any other."""
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return None
    lines = split_lines(text)

    def col(line: int, byte_col: int) -> int:  # ast counts UTF-8 bytes, answers count code points
        t = lines[line] if 0 <= line < len(lines) else ""
        return len(t.encode("utf-8")[:byte_col].decode("utf-8", "replace"))

    modules = {(a.asname or a.name.split(".")[0]) for n in ast.walk(tree) if isinstance(n, ast.Import)
               for a in n.names}
    out: dict[tuple[int, int], tuple[str, bool]] = {}

    def add(line: int, column: int, kind: str, can: bool) -> None:
        out.setdefault((line, column), (kind, can))

    def visit(node: ast.AST, chain: tuple[str, ...] | None, method: tuple[tuple[str, ...], str] | None) -> None:
        # chain: the classes whose body this node is directly in (None inside a function, lambda or comprehension);
        # method: (class, name of the first parameter) inside a method's body
        for child in ast.iter_child_nodes(node):
            inner, in_method = chain, method
            if isinstance(child, ast.ClassDef):
                inner = (*chain, child.name) if chain is not None else None
                in_method = None
            elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, *_COMPREHENSIONS)):
                inner = None
                if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef) and chain is not None:
                    first = (child.args.posonlyargs + child.args.args)[:1]
                    static = any(isinstance(d, ast.Name) and d.id == "staticmethod" for d in child.decorator_list)
                    in_method = (chain, first[0].arg) if first and not static else None
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and child.name == name:
                c = _name_at(lines, child.lineno - 1, r"(?:def|class)\s+", name)
                if c is not None:
                    own = chain in owners
                    add(child.lineno - 1, c, CODE if own else OTHER_DEFINITION, own)
            elif isinstance(child, ast.Name) and child.id == name:
                add(child.lineno - 1, col(child.lineno - 1, child.col_offset), CODE, chain in owners)
            elif isinstance(child, ast.arg) and child.arg == name:
                add(child.lineno - 1, col(child.lineno - 1, child.col_offset), PARAMETER, False)
            elif isinstance(child, ast.keyword) and child.arg == name:
                add(child.lineno - 1, col(child.lineno - 1, child.col_offset), KEYWORD, True)
            elif isinstance(child, ast.Attribute) and child.attr == name and child.end_lineno is not None:
                root = child.value
                while isinstance(root, ast.Attribute):
                    root = root.value
                on_module = isinstance(root, ast.Name) and root.id in modules
                on_self = (method is not None and isinstance(child.value, ast.Name)
                           and child.value.id == method[1])
                line = child.end_lineno - 1
                where = line, col(line, child.end_col_offset or 0) - len(name)
                if on_self and method is not None and method[0] in lineage:
                    add(*where, SELF_ATTRIBUTE, True)
                elif on_self and method is not None and method[0] in definers:
                    add(*where, OTHER_CLASS_ATTRIBUTE, False)
                else:
                    add(*where, MODULE_ATTRIBUTE if on_module else ATTRIBUTE, not on_module)
            elif isinstance(child, ast.Import | ast.ImportFrom):
                for a in child.names:
                    if name in (a.name, a.asname) and a.lineno is not None:
                        add(a.lineno - 1, col(a.lineno - 1, a.col_offset), IMPORT, False)
            visit(child, inner, in_method)

    visit(tree, (), None)
    return out
