"""The tool families `ansf serve --tools` chooses from; server/app.py registers each under its name."""

TOOL_FAMILIES = ("board", "system", "semantic", "bench")
