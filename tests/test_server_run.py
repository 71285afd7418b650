"""Process-wide settings a server applies when it starts serving."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from ansf_mcp.server.run import ConfigError, serve
from ansf_mcp.settings import Settings


def test_a_server_hands_the_interpreter_between_threads_at_the_set_interval(monkeypatch: pytest.MonkeyPatch,
                                                                             tmp_path: Path):
    monkeypatch.setenv("ANSF_GIL_SWITCH_MS", "2")
    settings = Settings.load(data_dir=tmp_path, transport="stdio")
    before = sys.getswitchinterval()
    try:
        with pytest.raises(ConfigError):  # refused right after the process-wide settings, before building anything
            serve(settings, dashboard=True)
        assert sys.getswitchinterval() == pytest.approx(0.002)
    finally:
        sys.setswitchinterval(before)
    assert Settings.load(data_dir=tmp_path).gil_switch_ms == 2.0
    monkeypatch.delenv("ANSF_GIL_SWITCH_MS")
    assert Settings.load(data_dir=tmp_path).gil_switch_ms == 1.0  # Python's own default is 5 ms
    monkeypatch.setenv("ANSF_GIL_SWITCH_MS", "0")
    with pytest.raises(ValidationError):
        Settings.load(data_dir=tmp_path)
