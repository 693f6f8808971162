"""The collector's SQLite store: WAL, synchronous=FULL, one writer and one reader connection."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

from office.store.base import StoreError
from office.store.schema import INSERT_ENTRY, SQLITE, Cursor, Dialect
from office.store.sql import SqlStore


class SqliteStore(SqlStore):
    """A SQLite file. Thread-safe: writes go through one connection and reads through another, each locked.

    `synchronous="FULL"` (the default) makes a commit durable across a power cut; the collector acks the
    broker only after it, so NORMAL (which may lose the last commits in WAL mode) would lose entries.
    """

    dialect: Dialect = SQLITE if sqlite3.sqlite_version_info >= (3, 37) else replace(SQLITE, table_suffix="")

    def __init__(self, path: Path, *, synchronous: Literal["FULL", "NORMAL"] = "FULL",
                 busy_timeout_s: float = 10.0) -> None:
        if sqlite3.sqlite_version_info < (3, 35):
            raise StoreError(f"SQLite {sqlite3.sqlite_version} is too old: the store needs 3.35 or later")
        self.path = path
        self._closed = False
        self._write_lock = threading.Lock()
        self._read_lock = threading.Lock()
        if str(path) != ":memory:" and not Path(path).exists():
            try:
                os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))  # -wal/-shm inherit the mode
            except OSError as exc:
                raise StoreError(f"sqlite {path}: {exc.strerror or exc}") from exc
        self._writer = self._connect(synchronous, busy_timeout_s)
        self._reader: sqlite3.Connection | None = None
        try:
            mode = self._writer.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(path) != ":memory:" and mode != "wal":
                raise StoreError(f"sqlite {path}: cannot use WAL (journal_mode is {mode})")
            self._create_schema()
            self._reader = self._connect(synchronous, busy_timeout_s) if str(path) != ":memory:" else None
            if self._reader is not None:
                self._reader.execute("PRAGMA query_only=1")
        except sqlite3.Error as exc:
            self.close()
            raise StoreError(f"sqlite {path}: {exc}") from exc
        except BaseException:
            self.close()
            raise

    def _connect(self, synchronous: str, busy_timeout_s: float) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(self.path, timeout=busy_timeout_s, isolation_level=None,
                                   check_same_thread=False)
            conn.execute(f"PRAGMA busy_timeout={int(busy_timeout_s * 1000)}")
            conn.execute(f"PRAGMA synchronous={synchronous}")
            conn.execute("PRAGMA analysis_limit=1000")
        except sqlite3.Error as exc:
            raise StoreError(f"sqlite {self.path}: {exc}") from exc
        return conn

    @contextmanager
    def _transaction(self, *, write: bool) -> Iterator[Cursor]:
        lock = self._write_lock if write or self._reader is None else self._read_lock
        with lock:
            conn = self._writer if write or self._reader is None else self._reader
            if self._closed:
                raise StoreError(f"sqlite {self.path}: the store is closed")
            try:
                cur = conn.cursor()
                cur.execute("BEGIN IMMEDIATE" if write else "BEGIN")
                yield cur
                cur.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback(conn)
                raise StoreError(f"sqlite {self.path}: {exc}") from exc
            except BaseException:
                self._rollback(conn)
                raise

    @staticmethod
    def _rollback(conn: sqlite3.Connection) -> None:
        if conn.in_transaction:
            with contextlib.suppress(sqlite3.Error):  # the original error is the one to report
                conn.execute("ROLLBACK")

    def _analyze(self, cur: Cursor) -> None:
        cur.execute("ANALYZE")  # bounded by analysis_limit; without statistics SQLite may pick the site index

    def _insert_entry_rows(self, cur: Cursor, rows: list[tuple[Any, ...]]) -> int:
        cur.executemany(INSERT_ENTRY, rows)
        return int(cur.rowcount)

    def close(self) -> None:
        with self._write_lock, self._read_lock:
            self._closed = True
            for conn in (self._reader, self._writer):
                if conn is not None:
                    conn.close()
