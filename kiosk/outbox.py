"""The durable outbox: entries and alerts are committed to SQLite before anything acts on them.

A row leaves the pending set only when the broker acknowledges it (PUBACK with a success code). `seq`
comes from a counter row per (site, kiosk), so it continues across restarts and is never reused, even
after delivered rows are pruned. Undelivered rows are never deleted: past `outbox_max_entries` the
outbox reports itself `full` (an alert, amber) and still records every entry, since a gate must.
Household passages are kept in their own small table for the daily quota, independent of pruning.

An attention entry is recorded with a row in `attention` in the same transaction, and its resolution
(a `resolution` row to publish) removes that row in one transaction too: the open attentions survive a
crash, and each is resolved once.
"""

from __future__ import annotations

import logging
import os
import re
import sqlite3
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Literal

from pydantic import ValidationError
from uuid6 import uuid7

from checkpoint.entry import (
    ENTRY_SCHEMA,
    Alert,
    AlertKind,
    Entry,
    EntryDraft,
    OutboxState,
    Resolution,
    ResolvedBy,
    utc_now,
)
from checkpoint.topics import topics
from kiosk.config import SiteConfig, StorageConfig

log = logging.getLogger(__name__)

RowKind = Literal["entry", "alert", "resolution"]
QUOTA_WINDOW_S = 2 * 86_400  # household passages kept this long: a "day" since local midnight and then some
MAX_DETAIL = 500
_OUTBOX_TABLE = """
CREATE TABLE IF NOT EXISTS outbox (
    num INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL CHECK (kind IN ('entry', 'alert', 'resolution')),
    topic TEXT NOT NULL,
    id TEXT NOT NULL UNIQUE,
    seq INTEGER,
    payload BLOB NOT NULL,
    created REAL NOT NULL,
    delivered REAL,
    attempts INTEGER NOT NULL DEFAULT 0,
    refused INTEGER,
    UNIQUE (topic, seq)
);
"""
_SCHEMA = """
CREATE TABLE IF NOT EXISTS counter (
    site TEXT NOT NULL, kiosk TEXT NOT NULL, last_seq INTEGER NOT NULL, PRIMARY KEY (site, kiosk)
) WITHOUT ROWID;
""" + _OUTBOX_TABLE + """
CREATE INDEX IF NOT EXISTS outbox_pending ON outbox (num) WHERE delivered IS NULL;
CREATE INDEX IF NOT EXISTS outbox_pending_kind ON outbox (kind, num) WHERE delivered IS NULL;
CREATE INDEX IF NOT EXISTS outbox_delivered ON outbox (delivered) WHERE delivered IS NOT NULL;
CREATE TABLE IF NOT EXISTS passage (hh TEXT NOT NULL, ts REAL NOT NULL, direction TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS passage_hh ON passage (hh, ts);
CREATE TABLE IF NOT EXISTS attention (
    entry_id TEXT PRIMARY KEY, opened REAL NOT NULL, hh TEXT, direction TEXT NOT NULL
) WITHOUT ROWID;
"""
_VERSION = 2
# Version 1 allowed only entries and alerts: the outbox table is rebuilt with the new CHECK.
_MIGRATE_1 = """
ALTER TABLE outbox RENAME TO outbox_v1;
""" + _OUTBOX_TABLE + """
INSERT INTO outbox SELECT * FROM outbox_v1;
DROP TABLE outbox_v1;
"""
_COLUMNS = "num, kind, topic, id, seq, payload, created, attempts, refused"


class OutboxError(Exception):
    """The outbox could not be opened or written: the entry is NOT recorded (keep the gate shut)."""


@dataclass(frozen=True, slots=True)
class OutboxRow:
    """One undelivered message: what to publish where, and how it fared so far."""

    row: int
    kind: RowKind
    topic: str
    id: str
    seq: int | None
    payload: bytes
    created: float
    attempts: int
    refused: int | None  # the broker's reason code for the last refusal, None if not refused


def clean_detail(text: str) -> str:
    """An alert detail that always validates: control characters replaced, length capped."""
    text = re.sub(r"[\x00-\x08\x0b-\x1f\x7f]", "?", text)
    return text if len(text) <= MAX_DETAIL else text[: MAX_DETAIL - 1] + "…"


class Outbox:
    """SQLite (WAL, synchronous=FULL) queue of entries and alerts for one kiosk; thread-safe."""

    def __init__(self, path: Path, *, site: str, kiosk: str, max_entries: int = 1_000_000,
                 retention_s: float = 7 * 86_400) -> None:
        self.path = path
        self.site = site
        self.kiosk = kiosk
        self.max_entries = max_entries
        self.retention_s = retention_s
        self._topics = topics(site, kiosk)
        self._lock = threading.Lock()
        try:
            if not path.exists():
                os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))  # -wal/-shm inherit the mode
            self._db = sqlite3.connect(path, timeout=10, isolation_level=None, check_same_thread=False)
            mode = self._db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if mode != "wal":
                raise OutboxError(f"{path}: cannot use WAL mode (got {mode!r})")
            self._db.execute("PRAGMA synchronous=FULL")  # a commit survives power loss
            self._migrate()
        except (OSError, sqlite3.Error) as exc:
            raise OutboxError(f"{path}: {exc}") from exc

    def _migrate(self) -> None:
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version > _VERSION:
            raise OutboxError(f"{self.path}: made by a newer version (schema {version}, this reads "
                              f"{_VERSION})")
        script = _MIGRATE_1 if version == 1 else ""
        self._db.executescript(
            f"BEGIN IMMEDIATE; {script} {_SCHEMA} PRAGMA user_version = {_VERSION}; COMMIT;")

    @classmethod
    def from_config(cls, storage: StorageConfig, site: SiteConfig) -> Outbox:
        """The kiosk's outbox at `<state_dir>/outbox.sqlite`."""
        try:
            storage.state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise OutboxError(f"{storage.state_dir}: {exc.strerror or exc}") from exc
        return cls(storage.state_dir / "outbox.sqlite", site=site.id, kiosk=site.kiosk,
                   max_entries=storage.outbox_max_entries, retention_s=storage.delivered_retention_s)

    def close(self) -> None:
        """Close the database; safe to call twice."""
        with self._lock:
            self._db.close()

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def append(self, draft: EntryDraft, *, attention: bool = False) -> Entry:
        """Give the entry its id (UUIDv7) and the next `seq`, and commit it durably before returning.

        With `attention`, the entry is also an open attention until `resolve` names it.
        """
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    entry = self._insert_entry(draft)
                    if attention:
                        hh = entry.pass_.hh if entry.pass_ is not None else None
                        self._db.execute("INSERT INTO attention VALUES (?, ?, ?, ?)",
                                         (entry.id, time.time(), hh, entry.direction))
                    self._db.execute("COMMIT")
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                raise OutboxError(f"{self.path}: entry not recorded: {exc}") from exc
        return entry

    def _insert_entry(self, draft: EntryDraft) -> Entry:
        row = self._db.execute("SELECT last_seq FROM counter WHERE site = ? AND kiosk = ?",
                               (self.site, self.kiosk)).fetchone()
        last = row[0] if row else 0
        top = self._db.execute("SELECT max(seq) FROM outbox WHERE topic = ?",
                               (self._topics.entry,)).fetchone()
        seq = max(last, top[0] or 0) + 1
        entry = Entry.model_validate({**draft.model_dump(), "schema": ENTRY_SCHEMA, "id": str(uuid7()),
                                      "site": self.site, "kiosk": self.kiosk, "seq": seq})
        self._db.execute(
            "INSERT INTO outbox (kind, topic, id, seq, payload, created) VALUES ('entry', ?, ?, ?, ?, ?)",
            (self._topics.entry, entry.id, seq, entry.to_json(), time.time()))
        self._db.execute("INSERT INTO counter VALUES (?, ?, ?) "
                         "ON CONFLICT (site, kiosk) DO UPDATE SET last_seq = excluded.last_seq",
                         (self.site, self.kiosk, seq))
        if entry.passed and entry.pass_ is not None and entry.pass_.hh is not None:
            self._db.execute("INSERT INTO passage VALUES (?, ?, ?)",
                             (entry.pass_.hh, entry.ts.timestamp(), entry.direction))
        return entry

    def append_alert(self, kind: AlertKind, detail: str, entry_id: str | None = None) -> Alert:
        """Record an alert durably; it is published like an entry and never dropped."""
        try:
            alert = Alert(kind=kind, ts=utc_now(), entry_id=entry_id, detail=clean_detail(detail),
                          id=str(uuid7()))
        except ValidationError as exc:
            raise ValueError(f"not a valid alert: {exc.errors()[0]['msg']}") from None
        with self._lock:
            try:
                self._db.execute(
                    "INSERT INTO outbox (kind, topic, id, payload, created) VALUES ('alert', ?, ?, ?, ?)",
                    (self._topics.alert, alert.id, alert.to_json(), time.time()))
            except sqlite3.Error as exc:
                raise OutboxError(f"{self.path}: alert not recorded: {exc}") from exc
        return alert

    def resolve(self, entry_id: str, *, by: ResolvedBy, opened: bool, operator: str | None = None,
                ts: datetime | None = None) -> Resolution | None:
        """Close an open attention durably with its resolution (to publish); None if it is not open."""
        resolution = Resolution(entry_id=entry_id, by=by, opened=opened, operator=operator,
                                ts=ts if ts is not None else utc_now())
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    row = self._db.execute("DELETE FROM attention WHERE entry_id = ? "
                                           "RETURNING hh, direction", (entry_id,)).fetchone()
                    if row is not None:
                        self._db.execute(
                            "INSERT INTO outbox (kind, topic, id, payload, created) "
                            "VALUES ('resolution', ?, ?, ?, ?)",
                            (self._topics.resolution, f"resolution:{entry_id}", resolution.to_json(),
                             time.time()))
                        if opened and row[0] is not None:
                            self._db.execute("INSERT INTO passage VALUES (?, ?, ?)",
                                             (row[0], resolution.ts.timestamp(), row[1]))
                    self._db.execute("COMMIT")
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
            except sqlite3.Error as exc:
                raise OutboxError(f"{self.path}: resolution not recorded: {exc}") from exc
        return resolution if row is not None else None

    def open_attentions(self) -> list[str]:
        """The entry ids of the attentions not yet resolved, oldest first."""
        with self._lock:
            rows = self._db.execute("SELECT entry_id FROM attention ORDER BY opened, entry_id").fetchall()
        return [row[0] for row in rows]

    def pending(self, limit: int, *, kind: RowKind | None = None, after_row: int = 0) -> list[OutboxRow]:
        """Up to `limit` undelivered rows after `after_row`, oldest first (entries in `seq` order)."""
        where = "delivered IS NULL AND num > ?" + (" AND kind = ?" if kind else "")
        params: tuple[object, ...] = (after_row, kind, limit) if kind else (after_row, limit)
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_COLUMNS} FROM outbox WHERE {where} ORDER BY num LIMIT ?", params).fetchall()
        return [OutboxRow(*r) for r in rows]

    def mark_delivered(self, *rows: int) -> int:
        """Record the broker's acknowledgement of these rows; returns how many were pending."""
        if not rows:
            return 0
        now = time.time()
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                cursor = self._db.executemany(
                    "UPDATE outbox SET delivered = ?, attempts = attempts + 1, refused = NULL "
                    "WHERE num = ? AND delivered IS NULL", [(now, r) for r in rows])
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback()
                raise OutboxError(f"{self.path}: {exc}") from exc
        return cursor.rowcount

    def mark_refused(self, row: int, reason_code: int) -> None:
        """Record that the broker refused this row (it stays pending and is retried)."""
        with self._lock:
            try:
                self._db.execute("UPDATE outbox SET attempts = attempts + 1, refused = ? "
                                 "WHERE num = ? AND delivered IS NULL", (reason_code, row))
            except sqlite3.Error as exc:
                raise OutboxError(f"{self.path}: {exc}") from exc

    def backlog(self, now: float | None = None) -> OutboxState:
        """Undelivered entries, the age of the oldest undelivered row, refusals and pending alerts."""
        now = time.time() if now is None else now
        with self._lock:
            rows = self._db.execute(
                "SELECT kind, count(*), min(created), count(refused) FROM outbox WHERE delivered IS NULL "
                "GROUP BY kind").fetchall()
        counts = {kind: count for kind, count, _, _ in rows}
        oldest = min((first for _, _, first, _ in rows), default=None)
        total = sum(counts.values())
        return OutboxState(backlog=counts.get("entry", 0), alerts=counts.get("alert", 0),
                           resolutions=counts.get("resolution", 0),
                           oldest_s=None if oldest is None else round(max(0.0, now - oldest), 3),
                           refused=sum(r for _, _, _, r in rows), full=total >= self.max_entries)

    def prune(self, now: float | None = None, *, limit: int = -1) -> int:
        """Delete delivered rows past retention, then the oldest delivered ones past the cap.

        At most `limit` rows per call (-1: all), so a caller can prune in short transactions.
        """
        now = time.time() if now is None else now
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                deleted = self._db.execute(
                    "DELETE FROM outbox WHERE num IN (SELECT num FROM outbox WHERE delivered IS NOT NULL "
                    "AND delivered < ? LIMIT ?)", (now - self.retention_s, limit)).rowcount
                total = self._db.execute("SELECT count(*) FROM outbox").fetchone()[0]
                if total > self.max_entries and (limit < 0 or deleted < limit):
                    over = total - self.max_entries
                    over = over if limit < 0 else min(over, limit - deleted)
                    deleted += self._db.execute(
                        "DELETE FROM outbox WHERE num IN (SELECT num FROM outbox WHERE delivered IS NOT NULL "
                        "ORDER BY num LIMIT ?)", (over,)).rowcount
                self._db.execute("DELETE FROM passage WHERE ts < ?", (now - QUOTA_WINDOW_S,))
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback()
                raise OutboxError(f"{self.path}: {exc}") from exc
        if deleted:
            log.debug("outbox: pruned %d delivered rows", deleted)
        return deleted

    def count_allowed(self, hh: str, since: datetime | float, *, direction: str | None = None) -> int:
        """How often a household's passes went through (allowed or overridden) since a time."""
        start = since.timestamp() if isinstance(since, datetime) else since
        sql = "SELECT count(*) FROM passage WHERE hh = ? AND ts >= ?"
        params: tuple[object, ...] = (hh, start)
        if direction is not None:
            sql, params = sql + " AND direction = ?", (*params, direction)
        with self._lock:
            count: int = self._db.execute(sql, params).fetchone()[0]
        return count

    def last_seq(self) -> int:
        """The last `seq` given out for this kiosk (0 before the first entry)."""
        with self._lock:
            row = self._db.execute("SELECT last_seq FROM counter WHERE site = ? AND kiosk = ?",
                                   (self.site, self.kiosk)).fetchone()
        return int(row[0]) if row else 0

    def _rollback(self) -> None:
        if self._db.in_transaction:
            self._db.execute("ROLLBACK")
