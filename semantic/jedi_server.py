"""jedi-language-server with the project's own code first: `python -m ansf_mcp.semantic.jedi_server`.

Stock jedi gets two things wrong on a real project, and both are fixed here before the server starts:

- Import order. jedi puts the environment's `sys.path` *before* the project's extra paths (`src/`, `lib/`), so
  a package that is also installed beside the server (pytest, click, starlette...) resolves to the installed
  copy: definitions land in site-packages and references through it are lost. Here the project root and its
  import roots come first; the environment follows.
- Bundled stubs. jedi ships typeshed stubs for third-party packages (flask, click, attr, termcolor...) and lets
  them shadow a project that *is* that package: a definition lands on an import line of `__init__.py` (or in
  the stub) instead of the module that defines the name. Here a bundled stub is not used for a module whose
  source lives in the project.
- Forward references. A name used above its module-level definition (annotations under `from __future__ import
  annotations`) resolves to nothing where it stands, so its uses were missing from references; such a name is
  looked up again in the whole module.
- Reference search. jedi parses at most 30 other files that contain the name (`_PARSED_FILE_LIMIT`), so a name
  used in 34 files loses the rest silently. The limit comes from `ANSF_JEDI_PARSE_LIMIT` (default 2000, the
  semantic layer's scan limit); the opened-file limit follows.
- Stale parses. parso reuses a parsed module while the file's modification time is not newer than the parse,
  and that time is coarse (a few ms): a file rewritten right after jedi parsed it kept the old tree, so a
  rename computed against it landed at stale positions. Here a file whose inode, size or nanosecond time
  changed since jedi last looked counts as modified now.
- Its own cache. jedi pickles parsed modules under the user's cache folder, unbounded, written in place (a
  killed server leaves a 0-byte pickle that fails every later load). Here it lives under `ANSF_JEDI_CACHE` (the
  data directory), its share of the semantic layer's disk budget (`ANSF_JEDI_CACHE_BYTES`, set by the spec from
  `semantic/cache.py`) is kept by trimming the oldest pickles first, at start and whenever a save passes it;
  pickles are written to a temporary file and renamed into place, and one that cannot be read (truncated,
  empty, foreign) is deleted, logged and parsed again.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

WRAPPER_VERSION = "ansf-jedi-5"  # part of the cache fingerprint: change it when the patches change answers
DEFAULT_PARSE_LIMIT = 2000
DEFAULT_CACHE_BYTES = 6_000_000  # as semantic/cache.py's JEDI_CACHE_BYTES (this module must not import diskcache)
TRIM_TO = 0.8  # a trim leaves this share of the limit, so the next saves do not trim again at once
RACY_S = 1.0  # as semantic/paths.py: a file read sooner after a write is compared again

log = logging.getLogger("ansf_mcp.semantic.jedi_server")


def _disk_bytes(st: os.stat_result) -> int:
    return max(st.st_size, getattr(st, "st_blocks", 0) * 512)


def trim_cache(cache_dir: Path, limit_bytes: int) -> int:
    """Delete the oldest files under `cache_dir` (by modification time) until it holds at most `limit_bytes` on
    disk, or TRIM_TO of it when it was over; returns the bytes left."""
    files = []
    for dirpath, _dirs, names in os.walk(cache_dir):
        for name in names:
            p = os.path.join(dirpath, name)
            with contextlib.suppress(OSError):
                st = os.stat(p)
                files.append((st.st_mtime_ns, _disk_bytes(st), p))
    total = sum(f[1] for f in files)
    if total <= limit_bytes:
        return total
    target = int(limit_bytes * TRIM_TO)
    removed = 0
    for _mtime, size, p in sorted(files):
        if total <= target:
            break
        with contextlib.suppress(OSError):
            os.unlink(p)
            total -= size
            removed += 1
    log.info("jedi cache over %d bytes: %d oldest file(s) removed, %d bytes left", limit_bytes, removed, total)
    return total


def patch_jedi(parse_limit: int) -> None:
    import jedi.inference.references as references
    from jedi.api.project import Project
    from jedi.inference.cache import inference_state_as_method_param_cache

    references._PARSED_FILE_LIMIT = max(1, parse_limit)
    references._OPENED_FILE_LIMIT = max(references._OPENED_FILE_LIMIT, 5 * parse_limit)

    find_names = references._find_names

    def _find_names(module_context, tree_name):
        found = find_names(module_context, tree_name)
        if len(found) > 1 or tree_name.parent is None:
            return found
        # Unresolved where it stands: a forward reference (an annotation under `from __future__ import
        # annotations`, a string-free `-> Later`) names a module-level definition further down the file.
        try:
            later = module_context.goto(tree_name, None)
        except Exception:
            return found
        return found | set(references._resolve_names(later)) if later else found

    references._find_names = _find_names

    original = Project._get_sys_path

    @inference_state_as_method_param_cache()
    def _get_sys_path(self, inference_state, add_parent_paths=True, add_init_paths=False):
        path = original(self, inference_state, add_parent_paths, add_init_paths)
        first = [str(self._path), *map(str, self.added_sys_path)]
        seen = set(first)
        return [*first, *(p for p in path if p not in seen)]

    Project._get_sys_path = _get_sys_path

    from jedi.inference.gradual import typeshed

    bundled = typeshed.TYPESHED_PATH
    load_from_typeshed = typeshed._load_from_typeshed

    def _load_from_typeshed(inference_state, python_value_set, parent_module_value, import_names):
        stub = load_from_typeshed(inference_state, python_value_set, parent_module_value, import_names)
        if stub is not None and _inside(stub, bundled) and any(
                _inside(v, inference_state.project.path) for v in python_value_set or ()):
            return None  # the project's own source wins over jedi's bundled stub
        return stub

    typeshed._load_from_typeshed = _load_from_typeshed


def patch_parso(cache_dir: Path | None, limit_bytes: int = DEFAULT_CACHE_BYTES) -> None:
    import parso.cache as cache
    from parso.file_io import FileIO

    seen: dict[str, tuple[int, int, int, bool]] = {}

    def get_last_modified(self):
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        now = time.time()
        # the status-change time too: `cp -p` and `tar x` put an old modification time on new content
        changed_ns = max(st.st_mtime_ns, st.st_ctime_ns)
        key, ident = str(self.path), (st.st_ino, st.st_size, changed_ns)
        last = seen.get(key)
        seen[key] = (*ident, now - changed_ns / 1e9 > RACY_S)
        if last is not None and (last[:3] != ident or not last[3]):
            # rewritten since the last look, or last seen too soon after a write for its stat to stand for the
            # content (coarse times, reused inodes): newer than any parse of it
            return max(now, changed_ns / 1e9)
        return changed_ns / 1e9

    FileIO.get_last_modified = get_last_modified

    load = cache._load_from_file_system

    def _load_from_file_system(hashed_grammar, path, p_time, cache_path=None):
        try:
            return load(hashed_grammar, path, p_time, cache_path=cache_path)
        except Exception as exc:  # a truncated, empty or foreign pickle: forget it, parse the file again
            pickle_path = cache._get_hashed_path(hashed_grammar, path, cache_path=cache_path)
            with contextlib.suppress(OSError):
                os.unlink(pickle_path)
            log.warning("jedi cache: unreadable pickle for %s removed (%s); parsing the file again", path,
                        type(exc).__name__)
            return None

    cache._load_from_file_system = _load_from_file_system
    if cache_dir is None:
        return
    cache_dir.mkdir(parents=True, exist_ok=True)
    held = [trim_cache(cache_dir, limit_bytes)]

    def _save_to_file_system(hashed_grammar, path, item, cache_path=None):
        # written beside and renamed into place: a killed server leaves a stray temporary file, never a
        # half-written pickle under the name the next load reads
        target = cache._get_hashed_path(hashed_grammar, path, cache_path=cache_path)
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(target), suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                cache.pickle.dump(item, f, cache.pickle.HIGHEST_PROTOCOL)
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        with contextlib.suppress(OSError):
            held[0] += _disk_bytes(os.stat(target))
        if held[0] > limit_bytes:  # a rewrite counts twice here; the trim counts again exactly
            held[0] = trim_cache(cache_dir, limit_bytes)

    cache._save_to_file_system = _save_to_file_system
    import jedi

    jedi.settings.cache_directory = str(cache_dir)
    cache._default_cache_path = cache_dir / "parso"


def _inside(value, folder) -> bool:
    try:
        path = value.py__file__()
    except Exception:
        return False
    if path is None:
        return False
    folder = Path(folder)
    path = Path(path)
    return path == folder or folder in path.parents


def main() -> None:
    try:
        limit = int(os.environ.get("ANSF_JEDI_PARSE_LIMIT", DEFAULT_PARSE_LIMIT))
    except ValueError:
        limit = DEFAULT_PARSE_LIMIT
    patch_jedi(limit)
    cache = os.environ.get("ANSF_JEDI_CACHE")
    try:
        limit_bytes = int(os.environ.get("ANSF_JEDI_CACHE_BYTES", DEFAULT_CACHE_BYTES))
    except ValueError:
        limit_bytes = DEFAULT_CACHE_BYTES
    # stdout is the language server protocol's channel: log lines go to stderr
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False  # only our lines: pygls's own logging stays as it was
    patch_parso(Path(cache) if cache else None, limit_bytes)
    from jedi_language_server.cli import cli

    cli()


if __name__ == "__main__":
    main()
