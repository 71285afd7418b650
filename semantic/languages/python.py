"""Python through jedi-language-server (our wrapper: the project's own code first)."""

from __future__ import annotations

import importlib.util
import sys
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

from ansf_mcp.semantic.languages._record import Language, LanguageUnavailable, Progress

if TYPE_CHECKING:
    from ansf_mcp.semantic.lsp import ServerSpec

EXTENSIONS = frozenset({".py", ".pyi"})


def project_env(root: Path) -> str | None:
    """The project's own virtualenv interpreter, when it has one."""
    for d in (".venv", "venv", "env", ".env"):
        for py in (root / d / "bin" / "python", root / d / "Scripts" / "python.exe"):
            if py.exists():
                return str(py)
    return None


def extra_paths(root: Path) -> list[str]:
    """Import roots from the layout: src/ layout, lib/, and the root itself."""
    paths = [str(root)]
    for d in ("src", "lib", "python"):
        p = root / d
        if p.is_dir() and any((c.is_dir() and (c / "__init__.py").exists()) or c.suffix == ".py"
                              for c in p.iterdir()):
            paths.append(str(p))
    return paths


def spec(root: Path, lsp_dir: Path | None = None, _progress: Progress | None = None,
         parse_limit: int = 2000) -> ServerSpec:
    from ansf_mcp.semantic.cache import JEDI_CACHE_BYTES
    from ansf_mcp.semantic.jedi_server import WRAPPER_VERSION
    from ansf_mcp.semantic.lsp import ServerSpec
    from ansf_mcp.semantic.positions import UTF32

    if importlib.util.find_spec("jedi_language_server") is None:
        raise LanguageUnavailable("Python", "Python needs jedi-language-server: `pip install jedi-language-server` "
                                  "into the environment that runs ansf-mcp")
    try:
        version = (f"jls-{metadata.version('jedi-language-server')}+jedi-{metadata.version('jedi')}"
                   f"+{WRAPPER_VERSION}")
    except metadata.PackageNotFoundError:  # pragma: no cover
        version = f"unknown+{WRAPPER_VERSION}"
    env_python = project_env(root)
    init: dict = {
        # jedi's diagnostics are syntax errors (compile()), cheap, published 1 s after a change: get_diagnostics
        "diagnostics": {"enable": True, "didOpen": True, "didChange": True, "didSave": False},
        "hover": {"enable": True},  # signature and docstring for find_symbol(include_info=True)
        "completion": {"disableSnippets": True},
        "workspace": {
            "extraPaths": extra_paths(root),
            "symbols": {"maxSymbols": 0},
        },
    }
    if env_python:
        init["workspace"]["environmentPath"] = env_python
    env = {"ANSF_JEDI_PARSE_LIMIT": str(parse_limit)}
    if lsp_dir is not None:  # jedi's pickles under the data directory, bounded, never the user's cache
        env["ANSF_JEDI_CACHE"] = str(lsp_dir / "jedi-cache")
        env["ANSF_JEDI_CACHE_BYTES"] = str(JEDI_CACHE_BYTES)  # its share of the semantic layer's disk budget
    # Our wrapper around jedi-language-server (the project's own code first, no 30-file reference limit), run
    # by this interpreter, which has both installed.
    return ServerSpec(language="Python", key="python",
                      cmd=[sys.executable, "-m", "ansf_mcp.semantic.jedi_server"], version=version,
                      init_options=init, env=env,
                      language_ids={".py": "python", ".pyi": "python"}, server_name="jedi-language-server",
                      # jedi-language-server announces UTF-16 but passes jedi's columns through unconverted:
                      # code points (tests/semantic/test_positions.py pins this down).
                      position_encoding=UTF32)


TYPE_CHECKER_KEY = "python-types"


def type_checker_spec(root: Path) -> ServerSpec:
    """basedpyright as a language server, for type-aware diagnostics only (jedi keeps navigation and edits):
    pyright's standard checks, over the files asked about (`openFilesOnly`), with the project's interpreter and
    import roots. It keeps its analysis in memory and writes nothing to disk."""
    from ansf_mcp.semantic.lsp import ServerSpec

    if importlib.util.find_spec("basedpyright") is None:
        raise LanguageUnavailable("Python type checking", "type checking needs basedpyright: `pip install "
                                  "basedpyright` into the environment that runs ansf-mcp")
    try:
        version = f"basedpyright-{metadata.version('basedpyright')}"
    except metadata.PackageNotFoundError:  # pragma: no cover
        version = "basedpyright-unknown"
    analysis = {"typeCheckingMode": "standard", "diagnosticMode": "openFilesOnly", "autoSearchPaths": True,
                "extraPaths": extra_paths(root)[1:], "useLibraryCodeForTypes": True}
    python = {"pythonPath": project_env(root) or sys.executable}
    # pyright asks for sections by dotted name ("basedpyright.analysis") as well as whole
    settings = {"python": {**python, "analysis": analysis}, "python.analysis": analysis,
                "basedpyright": {"analysis": analysis}, "basedpyright.analysis": analysis}
    return ServerSpec(language="Python", key=TYPE_CHECKER_KEY,
                      cmd=[sys.executable, "-c", "from basedpyright.langserver import main; main()", "--stdio"],
                      version=version, settings=settings, language_ids={".py": "python", ".pyi": "python"},
                      server_name="basedpyright",
                      # it may publish a file's diagnostics more than once while it checks: the last one counts
                      diagnostics_settle_s=0.5)


LANGUAGE = Language(key="python", name="Python", extensions=EXTENSIONS, spec=spec)
