"""Semantic code layer over real language servers (multilspy), cached on disk."""
