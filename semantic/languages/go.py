"""Go through gopls (modules are never downloaded on our behalf)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

from ansf_mcp.semantic.languages._record import Language, LanguageUnavailable, Progress

if TYPE_CHECKING:
    from ansf_mcp.semantic.lsp import ServerSpec

EXTENSIONS = frozenset({".go"})


def spec(_root: Path, _lsp_dir: Path | None = None, _progress: Progress | None = None) -> ServerSpec:
    from ansf_mcp.semantic.lsp import ServerSpec

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


LANGUAGE = Language(key="go", name="Go", extensions=EXTENSIONS, spec=spec)
