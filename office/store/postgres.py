"""The collector's PostgreSQL store: psycopg 3, one connection, explicit transactions, COPY for entries."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from functools import lru_cache
from typing import Any, Literal

import psycopg
from psycopg.conninfo import conninfo_to_dict

from office.store.base import StoreError
from office.store.schema import ENTRY_COLUMNS, INSERT_ENTRY, POSTGRES, Cursor, Dialect
from office.store.sql import SqlStore

_SCHEMA_LOCK = 0x636B7031  # pg_advisory_xact_lock key ("ckp1") held while creating the schema
_COLUMNS = ", ".join(ENTRY_COLUMNS)


@lru_cache(maxsize=1024)
def _placeholders(sql: str) -> str:
    return sql.replace("?", "%s")  # the shared SQL has no other '?' and no '%'


class _PgCursor:
    """A psycopg cursor that takes the shared SQL's `?` placeholders."""

    def __init__(self, raw: psycopg.Cursor[Any]) -> None:
        self.raw = raw

    @property
    def rowcount(self) -> int:
        return self.raw.rowcount

    def execute(self, sql: str, params: Sequence[Any] = (), /) -> Any:
        return self.raw.execute(_placeholders(sql), params)

    def executemany(self, sql: str, params: Iterable[Sequence[Any]], /) -> Any:
        return self.raw.executemany(_placeholders(sql), params)

    def fetchone(self) -> Any:
        return self.raw.fetchone()

    def fetchall(self) -> list[Any]:
        return self.raw.fetchall()


class PostgresStore(SqlStore):
    """A PostgreSQL database. Thread-safe (one connection, locked); reconnects after a dropped connection.

    `bulk="copy"` (the default) COPYs a batch of entries into a temporary table and inserts from it with
    `ON CONFLICT DO NOTHING`; `bulk="executemany"` sends one pipelined INSERT per entry instead.
    """

    dialect: Dialect = POSTGRES

    def __init__(self, dsn: str, *, bulk: Literal["copy", "executemany"] = "copy",
                 connect_timeout_s: int = 10) -> None:
        try:
            self._params: dict[str, Any] = conninfo_to_dict(dsn)
        except psycopg.Error as exc:
            raise StoreError(f"postgres: bad DSN: {exc}") from None
        self._params.setdefault("connect_timeout", connect_timeout_s)
        self._bulk = bulk
        self._lock = threading.Lock()
        self._conn: psycopg.Connection[Any] | None = None
        self._staging = False  # the temporary table exists on this connection
        self._closed = False
        try:
            self._create_schema()
        except BaseException:
            self.close()
            raise

    def _where(self) -> str:
        p = self._params
        return f"{p.get('host', '')}:{p.get('port', '')}/{p.get('dbname', '')}"

    def _connection(self) -> psycopg.Connection[Any]:
        if self._closed:
            raise StoreError(f"postgres {self._where()}: the store is closed")
        if self._conn is not None and not self._conn.closed and not self._conn.broken:
            return self._conn
        if self._conn is not None:
            self._conn.close()
        self._conn, self._staging = None, False
        try:
            conn = psycopg.connect(autocommit=False, **self._params)
            conn.execute("SET TIME ZONE 'UTC'")
            conn.commit()
        except psycopg.Error as exc:
            raise StoreError(f"postgres {self._where()}: cannot connect: {exc}") from exc
        self._conn = conn
        return conn

    @contextmanager
    def _transaction(self, *, write: bool) -> Iterator[Cursor]:
        with self._lock:
            conn = self._connection()
            try:
                with conn.cursor() as raw:
                    yield _PgCursor(raw)
                conn.commit()
            except psycopg.Error as exc:
                self._abort(conn)
                raise StoreError(f"postgres {self._where()}: {exc}") from exc
            except BaseException:
                self._abort(conn)
                raise

    def _abort(self, conn: psycopg.Connection[Any]) -> None:
        self._staging = False  # created in the rolled-back transaction, perhaps
        try:
            conn.rollback()
        except psycopg.Error:
            conn.close()  # the next transaction reconnects

    def _lock_schema(self, cur: Cursor) -> None:
        cur.execute("SELECT pg_advisory_xact_lock(?)", (_SCHEMA_LOCK,))

    def _analyze(self, cur: Cursor) -> None:
        # After the daily purge: autovacuum would get there too, but a plan made on stale statistics (the
        # site index for a pass's earliest entry) cost seconds a report at a million entries.
        cur.execute("ANALYZE entries")

    def _insert_entry_rows(self, cur: Cursor, rows: list[tuple[Any, ...]]) -> int:
        if not isinstance(cur, _PgCursor):
            raise TypeError("a PostgresStore cursor expected")
        if self._bulk == "executemany":
            cur.executemany(INSERT_ENTRY, rows)
            return cur.rowcount
        raw = cur.raw
        if not self._staging:
            raw.execute("CREATE TEMP TABLE IF NOT EXISTS entries_in (LIKE entries) ON COMMIT DELETE ROWS")
            self._staging = True
        with raw.copy(f"COPY entries_in ({_COLUMNS}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        raw.execute(f"INSERT INTO entries ({_COLUMNS}) SELECT {_COLUMNS} FROM entries_in ORDER BY id"
                    " ON CONFLICT (id) DO NOTHING")
        return raw.rowcount

    def close(self) -> None:
        with self._lock:
            self._closed = True
            conn, self._conn = self._conn, None
            if conn is not None:
                conn.close()
