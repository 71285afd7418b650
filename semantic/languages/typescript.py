"""TypeScript and JavaScript through typescript-language-server, installed from npm on first use."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from ansf_mcp.semantic.languages._record import Language, LanguageUnavailable, Progress

if TYPE_CHECKING:
    from ansf_mcp.semantic.lsp import ServerSpec

log = logging.getLogger(__name__)

NAME = "TypeScript/JavaScript"
EXTENSIONS = frozenset({".ts", ".tsx", ".js", ".jsx", ".mjs", ".cjs", ".mts", ".cts"})
PACKAGES = ["typescript-language-server@4.4.1", "typescript@5.9.3"]
_install_lock = threading.Lock()


def _exe(lsp_dir: Path) -> Path:
    return lsp_dir / "typescript" / "node_modules" / ".bin" / "typescript-language-server"


def installed(lsp_dir: Path) -> bool:
    return _exe(lsp_dir).exists()


def ensure_server(lsp_dir: Path, progress: Progress | None = None) -> Path:
    """Install typescript-language-server + typescript from npm into `lsp_dir/typescript` on first use."""
    prefix = lsp_dir / "typescript"
    exe = _exe(lsp_dir)
    tsserver = prefix / "node_modules" / "typescript" / "lib" / "tsserver.js"
    with _install_lock:
        if exe.exists() and tsserver.exists():
            return prefix
        npm = shutil.which("npm")
        node = shutil.which("node")
        if not npm or not node:
            raise LanguageUnavailable(NAME, "TypeScript/JavaScript needs Node.js and npm to "
                                      "install typescript-language-server on first use; npm was not found on "
                                      "PATH (install nodejs/npm, e.g. `apt-get install nodejs npm`)")
        prefix.mkdir(parents=True, exist_ok=True)
        if progress:
            progress(f"installing {' '.join(PACKAGES)} with npm into {prefix}")
        log.info("installing %s into %s", PACKAGES, prefix)
        proc = subprocess.run(
            [npm, "install", "--prefix", str(prefix), "--no-audit", "--no-fund", "--loglevel=error",
             "--no-save", *PACKAGES],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=600, check=False,
        )
        if proc.returncode != 0 or not exe.exists():
            tail = proc.stdout.decode("utf-8", "replace")[-800:]
            raise LanguageUnavailable(NAME, f"npm install of typescript-language-server "
                                      f"failed (rc={proc.returncode}): {tail}")
        if progress:
            progress("typescript-language-server installed")
        return prefix


def spec(_root: Path, lsp_dir: Path, progress: Progress | None = None) -> ServerSpec:
    from ansf_mcp.semantic.lsp import ServerSpec

    prefix = ensure_server(lsp_dir, progress)
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
    return ServerSpec(language=NAME, key="typescript", cmd=[str(exe), "--stdio"],
                      version="+".join(versions),
                      init_options={"tsserver": {"path": str(tsserver), "useSyntaxServer": "never"},
                                    "preferences": {},
                                    "disableAutomaticTypingAcquisition": True},
                      language_ids=ids, diagnostics_settle_s=1.5)


LANGUAGE = Language(key="typescript", name=NAME, extensions=EXTENSIONS, spec=spec, installed=installed)
