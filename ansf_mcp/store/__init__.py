"""Persistence: one `Store` interface (base.py), SQLite and PostgreSQL engines beside each other, migrations."""
