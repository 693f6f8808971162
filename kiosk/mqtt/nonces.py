"""The nonces of the commands a kiosk obeyed, kept on disk until they have expired by a time that only grows.

Why a replay is refused even when the clock is not synced: a command is obeyed only if its nonce was not
stored yet and its `exp` is not before the floor, the largest trusted time ever seen (stored here with the
nonces, so it survives restarts and never goes back, while the system clock may). A nonce is removed only
once its `exp` is before the floor; any later copy of that command is then refused as expired, since the
floor has only grown. Without a synced clock the floor is the kiosk's last trusted time plus the time since
(kiosk/clock.py), a lower bound of the real time, so nothing is refused for a wrong clock ahead of time.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from pathlib import Path
from types import TracebackType

_SCHEMA = """
CREATE TABLE IF NOT EXISTS nonce (nonce TEXT PRIMARY KEY, exp INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS floor (one INTEGER PRIMARY KEY CHECK (one = 1), unix REAL NOT NULL);
"""


class NonceStore:
    """SQLite (synchronous=FULL) set of used nonces and the time floor; thread-safe."""

    def __init__(self, path: Path) -> None:
        self.path = path
        if not path.exists():
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, timeout=10, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)

    def advance(self, now_unix: float) -> float:
        """Raise the floor to `now_unix` if that is later, forget nonces expired before it; the floor."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                row = self._db.execute("SELECT unix FROM floor").fetchone()
                floor = max(now_unix, row[0] if row else now_unix)
                self._db.execute("INSERT INTO floor VALUES (1, ?) ON CONFLICT (one) DO UPDATE SET unix = ?",
                                 (floor, floor))
                self._db.execute("DELETE FROM nonce WHERE exp < ?", (floor,))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return floor

    def claim(self, nonce: str, exp: int) -> bool:
        """Store `nonce` (until `exp`); False if it was used before."""
        with self._lock:
            cursor = self._db.execute("INSERT OR IGNORE INTO nonce VALUES (?, ?)", (nonce, exp))
        return cursor.rowcount == 1

    def close(self) -> None:
        """Close the database; safe to call twice."""
        with self._lock:
            self._db.close()

    def __enter__(self) -> NonceStore:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
