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
        for i in range(4):  # 4 x 300 kB, oldest first
            (cache / "junk" / f"f{{i}}").write_bytes(b"x" * 300_000)
            os.utime(cache / "junk" / f"f{{i}}", ns=(10**18 + i, 10**18 + i))
        patch_parso(cache, limit_bytes=1_000_000)
        # over its bound: the oldest removed until 80 % of it is left
        assert sorted(p.name for p in (cache / "junk").iterdir()) == ["f2", "f3"]
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


def test_saves_past_the_limit_trim_the_oldest_pickles_and_write_whole_files(tmp_path):
    script = textwrap.dedent(f"""
        import os, pathlib
        from ansf_mcp.semantic.jedi_server import patch_parso
        cache = pathlib.Path({str(tmp_path / "cache")!r})
        patch_parso(cache, limit_bytes=200_000)
        import parso
        grammar = parso.load_grammar()
        src = pathlib.Path({str(tmp_path / "src")!r})
        src.mkdir()
        for i in range(40):
            f = src / f"m{{i}}.py"
            f.write_text("".join(f"def f{{i}}_{{k}}(a, b):\\n    return a + b * {{k}}\\n" for k in range(40)))
            grammar.parse(path=f, cache=True)
        pickles = sorted(cache.rglob("*.pkl"))
        size = sum(max(p.stat().st_size, p.stat().st_blocks * 512) for p in cache.rglob("*") if p.is_file())
        print(len(pickles), size <= 200_000, not list(cache.rglob("*.tmp")))
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                         env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert out.returncode == 0, out.stderr
    kept, within, no_temp = out.stdout.split()
    assert 1 < int(kept) < 40 and within == "True" and no_temp == "True", out.stdout


def test_the_wrapper_default_is_the_budget_share():
    from ansf_mcp.semantic.cache import JEDI_CACHE_BYTES
    from ansf_mcp.semantic.jedi_server import DEFAULT_CACHE_BYTES

    assert DEFAULT_CACHE_BYTES == JEDI_CACHE_BYTES
