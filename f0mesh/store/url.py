"""Store URLs as operators write them, mapped to the drivers the store runs on."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from f0mesh.errors import ConfigError

# The stdlib's sqlite3 and psycopg 3; the async drivers' names of earlier releases still open a store.
_DRIVERS = {
    "sqlite": "sqlite+pysqlite",
    "sqlite+pysqlite": "sqlite+pysqlite",
    "sqlite+aiosqlite": "sqlite+pysqlite",
    "postgresql": "postgresql+psycopg",
    "postgres": "postgresql+psycopg",
    "postgresql+psycopg": "postgresql+psycopg",
    "postgresql+asyncpg": "postgresql+psycopg",
}


def default_store_url(data_dir: str | Path) -> str:
    return f"sqlite:///{Path(data_dir).resolve() / 'mesh.db'}"


def to_engine_url(store_url: str) -> URL:
    """``sqlite:///PATH`` or ``postgresql://...`` -> the URL of its driver; anything else is a ConfigError."""
    try:
        url = make_url(store_url)
    except ArgumentError as exc:
        raise ConfigError(
            f"bad --store URL {store_url!r}: expected sqlite:///PATH or postgresql://USER@HOST/DB"
        ) from exc
    driver = _DRIVERS.get(url.drivername)
    if driver is None:
        raise ConfigError(
            f"unsupported --store scheme {url.drivername!r}: expected sqlite:///PATH or postgresql://..."
        )
    if driver.startswith("sqlite") and not url.database:
        raise ConfigError(f"bad --store URL {store_url!r}: sqlite needs a file path (sqlite:///PATH)")
    return url.set(drivername=driver)


def redact(store_url: str) -> str:
    """The URL with any password hidden, for logs and errors."""
    try:
        return make_url(store_url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparseable store URL>"
