"""Opening the configured store: SQLite (the default) or PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from office.store.base import Store
from office.store.postgres import PostgresStore
from office.store.sqlite import SqliteStore


def open_store(kind: Literal["sqlite", "postgres"], *, path: Path | None = None,
               dsn: str | None = None) -> Store:
    """Open (creating the schema if need be) the SQLite store at `path` or the PostgreSQL store at `dsn`."""
    if kind == "sqlite":
        if path is None or dsn is not None:
            raise ValueError("a SQLite store takes a path (and no dsn)")
        return SqliteStore(path)
    if kind == "postgres":
        if dsn is None or path is not None:
            raise ValueError("a PostgreSQL store takes a dsn (and no path)")
        return PostgresStore(dsn)
    raise ValueError(f"unknown store kind {kind!r}: 'sqlite' or 'postgres'")
