"""MCP tool surface: one module per tool family, thin adapters over the core."""
