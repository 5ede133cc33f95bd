"""Persistence: one async Store interface over SQLite (default) and PostgreSQL."""

from f0mesh.store.store import Store
from f0mesh.store.url import default_store_url, to_engine_url

__all__ = ["Store", "default_store_url", "to_engine_url"]
