"""The live board as an MCP App (the SDK's `mcp.server.apps`, extension `io.modelcontextprotocol/ui`): a `ui://`
HTML view that an Apps-capable host renders beside the `swarm_status` answer. The tool's `_meta.ui.resourceUri`
names the view; the tool's text and structured answer are unchanged, so clients without Apps lose nothing.

The view draws what the host hands it (the tool's structured content, `ui/notifications/tool-result`); it makes
no network calls of its own, so it needs no CSP domains.
"""

from __future__ import annotations

from importlib import resources as files
from typing import Any

from mcp.server.apps import APP_MIME_TYPE, Apps

BOARD_VIEW = "ui://ansf/board.html"
BOARD_META: dict[str, Any] = {"ui": {"resourceUri": BOARD_VIEW}}


def board_html() -> str:
    return files.files("ansf_mcp.dashboard").joinpath("static/board_app.html").read_text(encoding="utf-8")


def extension() -> Apps:
    """The Apps extension holding the board view; passed to the server at construction (extensions are fixed then),
    which advertises `io.modelcontextprotocol/ui` and serves the view under `resources/list` and `resources/read`."""
    apps = Apps()
    apps.add_html_resource(BOARD_VIEW, board_html(), name="board view", title="Live board (MCP App)",
                           description="An HTML view of one swarm's board: counts per state, agents and tasks, drawn "
                           "from the swarm_status answer by hosts that render MCP Apps.", prefers_border=True)
    return apps


__all__ = ["APP_MIME_TYPE", "BOARD_META", "BOARD_VIEW", "board_html", "extension"]
