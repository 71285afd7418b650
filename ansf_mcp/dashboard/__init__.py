"""The live monitoring dashboard: collection, alerts, a WebSocket-fed page, /metrics (issue 6)."""
