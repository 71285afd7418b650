"""What the suites that run PostgreSQL (scale, chaos) must say of the server they measured."""

from __future__ import annotations

import json
from typing import Any


def store_role_url(pg_cluster: Any, role: str) -> str:
    """A --store URL for a role of its own with a password, which the report must never print."""
    pg_cluster.admin(f"CREATE ROLE {role} LOGIN CREATEDB PASSWORD 'do-not-print-me'")
    return pg_cluster.url(user=role, password="do-not-print-me")


def assert_store_server_named(result: dict, text: str, pg_cluster: Any, role: str) -> None:
    """The report names the --store server by version, host, port and database in its first line; never the URL's
    user or password."""
    server = result["postgresql"]
    assert server["source"] == "store" and server["version_num"] >= 100000 and server["version"]
    assert (server["host"], server["port"], server["database"]) == ("127.0.0.1", pg_cluster.port, "postgres")
    assert (f"PostgreSQL server: {server['version']} (server_version_num {server['version_num']}), the --store "
            f"server (127.0.0.1:{pg_cluster.port}, database postgres;") in text.splitlines()[0], text
    for shown in (json.dumps(result), text):
        assert "do-not-print-me" not in shown and role not in shown
