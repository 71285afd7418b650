"""ANSF-MCP: a coordination server for agent swarms over the Model Context Protocol."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("ansf-mcp")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+source"
