"""Persistence: the SQLite store and its migrations."""
