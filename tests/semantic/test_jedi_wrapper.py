"""The jedi wrapper's parse freshness and its own cache (run in a child: the patches are process-wide)."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def test_rewrites_within_the_clock_granularity_are_reparsed_and_bad_pickles_healed(tmp_path):
    script = textwrap.dedent(f"""
        import os, pathlib
        from ansf_mcp.semantic.jedi_server import patch_parso
        cache = pathlib.Path({str(tmp_path / "cache")!r})
        (cache / "junk").mkdir(parents=True)
        (cache / "junk" / "big").write_bytes(b"x" * 2_000_000)
        patch_parso(cache, cache_mb=1.0)
        assert not (cache / "junk").exists()  # over its bound: emptied
        import jedi, parso
        assert jedi.settings.cache_directory == str(cache)
        from parso.file_io import FileIO
        src = pathlib.Path({str(tmp_path / "m.py")!r})
        src.write_text("def alpha():\\n    pass\\n")
        st = os.stat(src)
        grammar = parso.load_grammar()
        first = grammar.parse(path=src, cache=True).children[0].name.value
        tmp = src.with_suffix(".new")
        tmp.write_text("def bravo():\\n    pass\\n")
        os.utime(tmp, ns=(st.st_atime_ns, st.st_mtime_ns))  # the same modification time, a new inode
        os.replace(tmp, src)
        second = grammar.parse(path=src, cache=True).children[0].name.value
        print(first, second)
        import parso.cache as pc
        bad = pathlib.Path(pc._get_hashed_path(grammar._hashed, src, cache_path=pc._default_cache_path))
        bad.parent.mkdir(parents=True, exist_ok=True)
        bad.write_bytes(b"")  # a pickle a killed server left half-written
        pc.parser_cache.clear()
        third = grammar.parse(path=src, cache=True).children[0].name.value
        print(third, bad.exists() and bad.stat().st_size > 0)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                         env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["alpha", "bravo", "bravo", "True"]
