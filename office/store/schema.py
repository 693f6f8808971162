"""The collector's SQL schema and the store logic shared by SQLite and PostgreSQL.

All SQL is written once, portable, with `?` placeholders; a `Dialect` supplies column types and the few
words that differ, and each backend supplies its connections, transactions and bulk insert of entries.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

SCHEMA_VERSION = 1
T = TypeVar("T")

ENTRY_COLUMNS = (
    "id", "site", "kiosk", "seq", "ts", "direction", "decision", "reasons", "override", "body_c", "skin_c",
    "ambient_c", "samples", "health_scheme", "health_status", "pid", "cat", "hh", "person_ref",
    "person_masked", "clock_unsynced", "received_at", "payload",
)
INSERT_ENTRY = (f"INSERT INTO entries ({', '.join(ENTRY_COLUMNS)})"
                f" VALUES ({', '.join('?' * len(ENTRY_COLUMNS))}) ON CONFLICT (id) DO NOTHING")


@dataclass(frozen=True)
class Dialect:
    """Column types and SQL words of one database."""

    name: str
    integer: str
    real: str
    timestamp: str
    json: str
    blob: str
    boolean: str
    serial: str  # an auto-numbered primary key: insertion order
    table_suffix: str
    for_update: str
    text_times: bool  # times stored as fixed-width ISO 8601 UTC text, which sorts and compares as time


SQLITE = Dialect("sqlite", "INTEGER", "REAL", "TEXT", "TEXT", "BLOB", "INTEGER", "INTEGER PRIMARY KEY",
                 " STRICT", "", text_times=True)
POSTGRES = Dialect("postgres", "BIGINT", "DOUBLE PRECISION", "TIMESTAMPTZ", "JSONB", "BYTEA", "BOOLEAN",
                   "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY", "", " FOR UPDATE", text_times=False)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL){table_suffix};
CREATE TABLE IF NOT EXISTS entries (
    -- id is the idempotency key. (site, kiosk, seq) is deliberately not unique: a kiosk whose outbox was
    -- reset restarts its seq, and its entries are kept too: seq_conflicts lists the ids sharing a seq.
    id TEXT PRIMARY KEY, site TEXT NOT NULL, kiosk TEXT NOT NULL, seq {integer} NOT NULL,
    ts {timestamp} NOT NULL, direction TEXT NOT NULL, decision TEXT NOT NULL, reasons {json} NOT NULL,
    override TEXT, body_c {real}, skin_c {real}, ambient_c {real}, samples {integer},
    health_scheme TEXT, health_status TEXT, pid TEXT, cat TEXT, hh TEXT, person_ref TEXT, person_masked TEXT,
    clock_unsynced {boolean} NOT NULL, received_at {timestamp} NOT NULL, payload {blob} NOT NULL
){table_suffix};
-- (ts, id): the entries page's newest-first keyset order, and every query over a time window
CREATE INDEX IF NOT EXISTS entries_ts_id ON entries (ts, id);
DROP INDEX IF EXISTS entries_ts;
CREATE INDEX IF NOT EXISTS entries_site_ts ON entries (site, ts);
CREATE INDEX IF NOT EXISTS entries_person ON entries (person_ref, ts);
CREATE INDEX IF NOT EXISTS entries_pid ON entries (pid, ts);
CREATE INDEX IF NOT EXISTS entries_hh ON entries (hh, ts);
CREATE INDEX IF NOT EXISTS entries_kiosk_seq ON entries (site, kiosk, seq);
CREATE TABLE IF NOT EXISTS dead_letters (
    n {serial}, received_at {timestamp} NOT NULL, topic TEXT NOT NULL, reason TEXT NOT NULL,
    payload {blob} NOT NULL
){table_suffix};
CREATE INDEX IF NOT EXISTS dead_letters_received ON dead_letters (received_at);
CREATE TABLE IF NOT EXISTS kiosk_seq (
    site TEXT NOT NULL, kiosk TEXT NOT NULL, max_seq {integer} NOT NULL, PRIMARY KEY (site, kiosk)
){table_suffix};
CREATE TABLE IF NOT EXISTS seq_gaps (
    site TEXT NOT NULL, kiosk TEXT NOT NULL, first_seq {integer} NOT NULL, last_seq {integer} NOT NULL,
    PRIMARY KEY (site, kiosk, first_seq)
){table_suffix};
CREATE TABLE IF NOT EXISTS seq_conflicts (
    id TEXT PRIMARY KEY, site TEXT NOT NULL, kiosk TEXT NOT NULL, seq {integer} NOT NULL,
    detected_at {timestamp} NOT NULL
){table_suffix};
CREATE INDEX IF NOT EXISTS seq_conflicts_kiosk ON seq_conflicts (site, kiosk, seq);
CREATE TABLE IF NOT EXISTS kiosk_status (
    site TEXT NOT NULL, kiosk TEXT NOT NULL, state TEXT NOT NULL, since {timestamp} NOT NULL,
    last_seen {timestamp} NOT NULL, backlog {integer}, camera TEXT, thermometer TEXT, version TEXT,
    PRIMARY KEY (site, kiosk)
){table_suffix};
CREATE TABLE IF NOT EXISTS status_events (
    n {serial}, site TEXT NOT NULL, kiosk TEXT NOT NULL, state TEXT NOT NULL, at {timestamp} NOT NULL
){table_suffix};
CREATE INDEX IF NOT EXISTS status_events_kiosk ON status_events (site, kiosk, at);
CREATE TABLE IF NOT EXISTS alerts (
    n {serial}, id TEXT UNIQUE, site TEXT NOT NULL, kiosk TEXT NOT NULL, kind TEXT NOT NULL,
    ts {timestamp} NOT NULL, entry_id TEXT, detail TEXT NOT NULL, received_at {timestamp} NOT NULL
){table_suffix};
CREATE INDEX IF NOT EXISTS alerts_ts ON alerts (ts);
CREATE TABLE IF NOT EXISTS resolutions (
    entry_id TEXT PRIMARY KEY, site TEXT NOT NULL, kiosk TEXT NOT NULL, resolved_by TEXT NOT NULL,
    ts {timestamp} NOT NULL, opened {boolean} NOT NULL, operator TEXT, received_at {timestamp} NOT NULL
){table_suffix};
CREATE INDEX IF NOT EXISTS resolutions_ts ON resolutions (ts);
CREATE TABLE IF NOT EXISTS registry (
    pid TEXT PRIMARY KEY, cat TEXT NOT NULL, hh TEXT, name_masked TEXT NOT NULL, idh TEXT NOT NULL,
    nbf {integer} NOT NULL, exp {integer} NOT NULL, kid TEXT NOT NULL
){table_suffix};
CREATE TABLE IF NOT EXISTS purges (
    n {serial}, at {timestamp} NOT NULL, before_ts {timestamp} NOT NULL, deleted {integer} NOT NULL
){table_suffix};
CREATE TABLE IF NOT EXISTS trace_log (
    n {serial}, at {timestamp} NOT NULL, who TEXT NOT NULL, query TEXT NOT NULL
){table_suffix};
CREATE TABLE IF NOT EXISTS users (
    name TEXT PRIMARY KEY, role TEXT NOT NULL CHECK (role IN ('guard', 'office', 'admin')),
    password_hash TEXT NOT NULL, disabled {boolean} NOT NULL, created {timestamp} NOT NULL,
    updated {timestamp} NOT NULL
){table_suffix};
CREATE TABLE IF NOT EXISTS audit (
    -- who: a user name, or what acted for nobody signed in ("cli:root", or the name tried at a sign-in)
    n {serial}, at {timestamp} NOT NULL, who TEXT NOT NULL, action TEXT NOT NULL, detail TEXT NOT NULL
){table_suffix};
CREATE INDEX IF NOT EXISTS audit_at ON audit (at);
CREATE TABLE IF NOT EXISTS web_sessions (
    -- session_hash: SHA-256 of the secret id in the browser's signed cookie (signing out deletes the row)
    session_hash TEXT PRIMARY KEY, username TEXT NOT NULL, created {timestamp} NOT NULL,
    expires {timestamp} NOT NULL
){table_suffix};
CREATE INDEX IF NOT EXISTS web_sessions_user ON web_sessions (username);
CREATE TABLE IF NOT EXISTS signin_failures (
    failure_key TEXT NOT NULL, at {timestamp} NOT NULL
){table_suffix};
CREATE INDEX IF NOT EXISTS signin_failures_key ON signin_failures (failure_key, at);
CREATE TABLE IF NOT EXISTS alert_handling (
    -- alert_id: an alert's id, "n:<n>" for one sent without an id, or "offline:<site>/<kiosk>:<since>"
    alert_id TEXT PRIMARY KEY, acked_by TEXT NOT NULL, acked_at {timestamp} NOT NULL, ack_note TEXT NOT NULL,
    resolved_by TEXT, resolved_at {timestamp}, resolve_note TEXT
){table_suffix};
CREATE TABLE IF NOT EXISTS reports (
    -- every daily or zero report made (site '' for all sites), each version kept (json as made, not JSONB)
    n {serial}, site TEXT NOT NULL, day TEXT NOT NULL, made_at {timestamp} NOT NULL, made_by TEXT NOT NULL,
    zero {boolean} NOT NULL, json TEXT NOT NULL, csv TEXT NOT NULL, png {blob}
){table_suffix};
CREATE INDEX IF NOT EXISTS reports_day ON reports (day, n);
CREATE TABLE IF NOT EXISTS issued_passes (
    -- a registry pass issued in the web app: its site, by whom and when, and its signed QR text to print
    pid TEXT PRIMARY KEY, site TEXT NOT NULL, issued_at {timestamp} NOT NULL, issued_by TEXT NOT NULL,
    text TEXT NOT NULL
){table_suffix};
CREATE INDEX IF NOT EXISTS issued_passes_at ON issued_passes (issued_at);
CREATE TABLE IF NOT EXISTS revocations (
    site TEXT NOT NULL, pid TEXT NOT NULL, at {timestamp} NOT NULL, revoked_by TEXT NOT NULL,
    note TEXT NOT NULL, PRIMARY KEY (site, pid)
){table_suffix};
CREATE TABLE IF NOT EXISTS revocation_serials (
    -- serial: of the newest list signed, published_serial: of the newest one the broker took
    site TEXT PRIMARY KEY, serial {integer} NOT NULL, published_serial {integer}, published_at {timestamp}
){table_suffix};
"""


def schema_statements(dialect: Dialect) -> list[str]:
    """The CREATE statements (all idempotent) of the schema in `dialect`."""
    text = _SCHEMA.format(**{k: v for k, v in vars(dialect).items() if isinstance(v, str)})
    return [stmt.strip() for stmt in text.split(";") if stmt.strip()]


class Cursor(Protocol):
    """The DB-API cursor subset the shared logic uses (`?` placeholders)."""

    @property
    def rowcount(self) -> int: ...

    def execute(self, sql: str, params: Sequence[Any] = (), /) -> Any: ...

    def executemany(self, sql: str, params: Iterable[Sequence[Any]], /) -> Any: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...


def to_text_time(value: datetime) -> str:
    """'2026-03-19T07:02:11.123000Z': UTC, microseconds, fixed width, so text order is time order."""
    utc = value if value.tzinfo is UTC else value.astimezone(UTC)  # the common case costs no conversion
    return utc.isoformat(timespec="microseconds")[:-6] + "Z"  # "+00:00" becomes "Z"


def check_aware(value: datetime) -> datetime:
    """`value` in UTC; a naive datetime is refused rather than guessed."""
    if value.tzinfo is UTC:
        return value
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"naive datetime {value!r}: the store takes timezone-aware datetimes")
    return value.astimezone(UTC)


def chunks(items: Sequence[T], size: int) -> Iterable[Sequence[T]]:
    """`items` in slices of at most `size`."""
    for start in range(0, len(items), size):
        yield items[start:start + size]
