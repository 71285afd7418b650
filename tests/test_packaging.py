"""Packaging and settings facts a newcomer relies on."""

from __future__ import annotations

import tomllib
from pathlib import Path

from ansf_mcp.settings import ENV_VARS, Settings

REPO = Path(__file__).resolve().parents[1]


def test_every_package_folder_is_listed_in_pyproject() -> None:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    mapping = config["package-dir"]
    found = set()
    for prefix, folder in mapping.items():
        for init in (REPO / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(REPO / folder)
            found.add(".".join([prefix, *rel.parts]))
    # A package under ansf_mcp/ but mapped elsewhere (tools, semantic) is found through its own mapping.
    assert found - listed == set(), "add these to [tool.setuptools] packages"
    assert "tools" not in listed and "semantic" not in listed


def test_every_environment_variable_is_documented() -> None:
    from ansf_mcp.dashboard.config import ENV_VARS as DASHBOARD_ENV_VARS

    readme = (REPO / "README.md").read_text()
    assert [env for env in (*ENV_VARS, *DASHBOARD_ENV_VARS) if env not in readme] == []


def test_data_dir_is_absolute_even_when_given_relative(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ANSF_DATA_DIR", "relative/data")
    settings = Settings.load()
    assert settings.data_dir == (tmp_path / "relative" / "data").resolve()
    assert settings.data_dir.is_absolute()


def test_default_data_dir_follows_xdg(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("ANSF_DATA_DIR", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert Settings.load().data_dir == (tmp_path / "xdg" / "ansf-mcp").resolve()


def test_flags_override_environment(monkeypatch) -> None:
    monkeypatch.setenv("ANSF_PORT", "9000")
    assert Settings.load().port == 9000
    assert Settings.load(port=9100).port == 9100


def test_every_command_line_flag_is_in_the_readme_synopsis() -> None:
    """The README's "Command line" lists each command's flags; `ansf serve`'s lacked --log-level and --dashboard,
    and the store commands --data-dir. `ansf train` is left out: the README points at the profile's record."""
    import argparse

    from ansf_mcp.cli import _parser

    readme = (REPO / "README.md").read_text()
    section = readme.split("## Command line", 1)[1].split("\n## ", 1)[0]
    commands = next(a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction)).choices
    missing = []
    for name, parser in commands.items():
        if name == "train":
            continue
        item = next((block for block in section.split("\n- ") if block.startswith(f"`ansf {name} ")), "")
        missing += [f"ansf {name} {flag}" for action in parser._actions for flag in action.option_strings
                    if flag.startswith("--") and flag != "--help" and flag not in item
                    and (name, flag) != ("prune-functions", "--data-dir")]  # it needs --store's PostgreSQL
    assert missing == []
