"""The local resident registry: person refs (keyed hashes of ID numbers) and their households."""

from __future__ import annotations

import os
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self

_SCHEMA = """
CREATE TABLE IF NOT EXISTS residents (
    person_ref TEXT PRIMARY KEY CHECK (length(person_ref) = 64),
    masked     TEXT NOT NULL,
    household  TEXT,
    updated    TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))
) WITHOUT ROWID;
"""


@dataclass(frozen=True)
class Resident:
    """One registered person; the raw ID number is never stored."""

    person_ref: str
    masked: str
    household: str | None


class Registry:
    """SQLite table of residents, keyed by person ref; safe to share between threads."""

    def __init__(self, path: Path | str) -> None:
        if str(path) != ":memory:" and not Path(path).exists():
            Path(path).parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))  # -wal/-shm inherit the mode
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.executescript(_SCHEMA)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the database; safe to call again."""
        with self._lock:
            self._db.close()

    def lookup(self, person_ref: str) -> Resident | None:
        """The resident with this ref, or None."""
        with self._lock:
            row = self._db.execute(
                "SELECT person_ref, masked, household FROM residents WHERE person_ref = ?", (person_ref,)
            ).fetchone()
        return Resident(*row) if row else None

    def upsert(self, residents: list[Resident]) -> int:
        """Add or replace residents in one transaction; the number written."""
        with self._lock:
            self._db.execute("BEGIN")
            try:
                self._db.executemany(
                    "INSERT INTO residents (person_ref, masked, household) VALUES (?, ?, ?) "
                    "ON CONFLICT (person_ref) DO UPDATE SET masked = excluded.masked, "
                    "household = excluded.household, updated = strftime('%Y-%m-%dT%H:%M:%SZ', 'now')",
                    [(r.person_ref, r.masked, r.household) for r in residents],
                )
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
        return len(residents)

    def remove(self, person_ref: str) -> bool:
        """Remove one resident; True if they were registered."""
        with self._lock:
            cursor = self._db.execute("DELETE FROM residents WHERE person_ref = ?", (person_ref,))
        return cursor.rowcount > 0

    def count(self) -> int:
        with self._lock:
            (n,) = self._db.execute("SELECT count(*) FROM residents").fetchone()
        return int(n)
