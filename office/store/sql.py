"""The SQL store shared by SQLite and PostgreSQL, and `open_store`, which opens either."""

from __future__ import annotations

import json
from abc import abstractmethod
from collections import defaultdict
from collections.abc import Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any

from checkpoint.entry import Alert, Entry, Resolution, Status
from office.store.alerts import AlertQueries
from office.store.base import (
    DeadLetter,
    Gap,
    IssuedPass,
    KioskState,
    SeqConflict,
    Store,
    StoredAlert,
    StoredResolution,
    StoreError,
    plan_seqs,
)
from office.store.entries import EntryQueries
from office.store.passes import PassQueries
from office.store.reports import ReportQueries
from office.store.schema import (
    SCHEMA_VERSION,
    Cursor,
    Dialect,
    check_aware,
    chunks,
    schema_statements,
    to_text_time,
)
from office.store.users import UserQueries

_CHUNK = 300  # keys per statement where a query lists them (a few parameters each)
Kiosk = tuple[str, str]


class SqlStore(UserQueries, AlertQueries, EntryQueries, PassQueries, ReportQueries, Store):
    """Every `Store` method in portable SQL; a backend supplies transactions and the bulk entry insert."""

    dialect: Dialect

    @abstractmethod
    def _transaction(self, *, write: bool) -> AbstractContextManager[Cursor]:
        """One transaction, serialised with this store's other work; database errors become StoreError."""

    @abstractmethod
    def _insert_entry_rows(self, cur: Cursor, rows: list[tuple[Any, ...]]) -> int:
        """Insert rows (`ENTRY_COLUMNS` order, sorted by id), ignoring known ids; how many were new."""

    def _lock_schema(self, cur: Cursor) -> None:
        """Keep concurrent schema creation apart (nothing to do where a write transaction is exclusive)."""

    def _analyze(self, cur: Cursor) -> None:
        """Refresh the query planner's statistics, where the database does not do it by itself."""

    def _create_schema(self) -> None:
        with self._transaction(write=True) as cur:
            self._lock_schema(cur)
            for statement in schema_statements(self.dialect):
                cur.execute(statement)
            cur.execute("SELECT value FROM meta WHERE key = 'schema_version'")
            row = cur.fetchone()
            if row is None:
                cur.execute("INSERT INTO meta (key, value) VALUES ('schema_version', ?)",
                            (str(SCHEMA_VERSION),))
            elif row[0] != str(SCHEMA_VERSION):
                raise StoreError(f"the database has schema version {row[0]}; this collector knows "
                                 f"{SCHEMA_VERSION}")
            self._analyze(cur)

    def _t(self, value: datetime) -> Any:
        value = check_aware(value)
        return to_text_time(value) if self.dialect.text_times else value

    @staticmethod
    def _dt(value: Any) -> datetime:
        return check_aware(datetime.fromisoformat(value) if isinstance(value, str) else value)

    # -- ingest ----------------------------------------------------------------------------------------

    def _entry_row(self, e: Entry, raw: bytes, received: Any) -> tuple[Any, ...]:
        temp, health, pass_, person = e.temperature, e.health, e.pass_, e.person
        return (
            e.id, e.site, e.kiosk, e.seq, self._t(e.ts), e.direction, e.decision,
            json.dumps([str(reason) for reason in e.reasons]) if e.reasons else "[]", e.override,
            temp.body_c if temp else None, temp.skin_c if temp else None, temp.ambient_c if temp else None,
            temp.samples if temp else None, health.scheme if health else None,
            health.status if health else None, pass_.pid if pass_ else None, pass_.cat if pass_ else None,
            pass_.hh if pass_ else None, person.ref if person else None, person.masked if person else None,
            e.clock_unsynced, received, bytes(raw),
        )

    def insert_entries(self, entries: Sequence[tuple[Entry, bytes]], received_at: datetime) -> int:
        batch: dict[str, tuple[Entry, bytes]] = {}
        for entry, raw in entries:
            batch.setdefault(entry.id, (entry, raw))
        if not batch:
            return 0
        received = self._t(received_at)
        rows = [self._entry_row(*batch[key], received) for key in sorted(batch)]  # id order: no deadlocks
        seqs: dict[Kiosk, list[int]] = defaultdict(list)
        for entry, _raw in batch.values():
            seqs[(entry.site, entry.kiosk)].append(entry.seq)
        with self._transaction(write=True) as cur:
            new = self._insert_entry_rows(cur, rows)
            self._advance_seqs(cur, seqs, received)
        return new

    def _advance_seqs(self, cur: Cursor, seqs: dict[Kiosk, list[int]], received: Any) -> None:
        kiosks = sorted(seqs)
        tops: dict[Kiosk, int] = {}
        for part in chunks(kiosks, _CHUNK):  # locks each kiosk's row, in order, and reads its highest seq
            values = ", ".join(["(?, ?, 0)"] * len(part))
            cur.execute(f"INSERT INTO kiosk_seq (site, kiosk, max_seq) VALUES {values} ON CONFLICT"
                        " (site, kiosk) DO UPDATE SET max_seq = kiosk_seq.max_seq"
                        " RETURNING site, kiosk, max_seq", [name for key in part for name in key])
            tops.update({(site, kiosk): int(top) for site, kiosk, top in cur.fetchall()})
        drop: list[tuple[str, str, int]] = []
        add: list[tuple[str, str, int, int]] = []
        raised: list[tuple[int, str, str]] = []
        for key in kiosks:
            top, mine = tops[key], seqs[key]
            gaps: list[tuple[int, int]] = []
            if min(mine) <= top:
                cur.execute("SELECT first_seq, last_seq FROM seq_gaps WHERE site = ? AND kiosk = ?"
                            " AND first_seq <= ? AND last_seq >= ?", (*key, min(max(mine), top), min(mine)))
                gaps = [(int(first), int(last)) for first, last in cur.fetchall()]
            plan = plan_seqs(top, gaps, mine)
            drop += [(*key, first) for first in plan.drop]
            add += [(*key, first, last) for first, last in plan.add]
            if plan.top != top:
                raised.append((plan.top, *key))
            if plan.reseen:
                self._record_conflicts(cur, key, plan.reseen, received)
        if drop:
            cur.executemany("DELETE FROM seq_gaps WHERE site = ? AND kiosk = ? AND first_seq = ?", drop)
        if add:
            cur.executemany("INSERT INTO seq_gaps (site, kiosk, first_seq, last_seq) VALUES (?, ?, ?, ?)",
                            add)
        if raised:
            cur.executemany("UPDATE kiosk_seq SET max_seq = ? WHERE site = ? AND kiosk = ?", raised)

    def _record_conflicts(self, cur: Cursor, key: Kiosk, seqs: list[int], received: Any) -> None:
        ids: dict[int, list[str]] = defaultdict(list)
        for part in chunks(seqs, _CHUNK):
            cur.execute(f"SELECT seq, id FROM entries WHERE site = ? AND kiosk = ? AND seq IN "
                        f"({', '.join('?' * len(part))})", (*key, *part))
            for seq, entry_id in cur.fetchall():
                ids[int(seq)].append(entry_id)
        rows = [(entry_id, *key, seq, received)
                for seq, held in ids.items() if len(held) > 1 for entry_id in held]
        if rows:
            cur.executemany("INSERT INTO seq_conflicts (id, site, kiosk, seq, detected_at)"
                            " VALUES (?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING", rows)

    def insert_dead_letters(self, letters: Sequence[DeadLetter]) -> None:
        rows = [(self._t(d.received_at), d.topic, d.reason, bytes(d.payload)) for d in letters]
        if rows:
            with self._transaction(write=True) as cur:
                cur.executemany("INSERT INTO dead_letters (received_at, topic, reason, payload)"
                                " VALUES (?, ?, ?, ?)", rows)

    def record_status(self, site: str, kiosk: str, status: Status, received_at: datetime) -> None:
        now = self._t(received_at)
        fields = (status.outbox.backlog if status.outbox else None, status.camera, status.thermometer,
                  status.version)
        with self._transaction(write=True) as cur:
            cur.execute("INSERT INTO kiosk_status (site, kiosk, state, since, last_seen, backlog, camera,"
                        " thermometer, version) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
                        " ON CONFLICT (site, kiosk) DO NOTHING",
                        (site, kiosk, status.state, now, now, *fields))
            if cur.rowcount != 1:
                cur.execute("SELECT state, since, last_seen FROM kiosk_status WHERE site = ? AND kiosk = ?"
                            + self.dialect.for_update, (site, kiosk))
                state, since, last_seen = cur.fetchone()
                if self._dt(last_seen) > check_aware(received_at):
                    return  # stale: a newer status was already applied
                cur.execute("UPDATE kiosk_status SET state = ?, since = ?, last_seen = ?,"
                            " backlog = COALESCE(?, backlog), camera = COALESCE(?, camera),"
                            " thermometer = COALESCE(?, thermometer), version = COALESCE(?, version)"
                            " WHERE site = ? AND kiosk = ?",
                            (status.state, since if state == status.state else now, now, *fields, site,
                             kiosk))
                if state == status.state:
                    return
            cur.execute("INSERT INTO status_events (site, kiosk, state, at) VALUES (?, ?, ?, ?)",
                        (site, kiosk, status.state, now))

    def insert_alerts(self, alerts: Sequence[StoredAlert]) -> int:
        rows: list[tuple[Any, ...]] = []
        seen: set[str] = set()
        for stored in alerts:
            alert = stored.alert
            if alert.id is not None and alert.id in seen:
                continue
            seen.add(alert.id or "")
            rows.append((alert.id, stored.site, stored.kiosk, alert.kind, self._t(alert.ts), alert.entry_id,
                         alert.detail, self._t(stored.received_at)))
        if not rows:
            return 0
        with self._transaction(write=True) as cur:
            cur.executemany("INSERT INTO alerts (id, site, kiosk, kind, ts, entry_id, detail, received_at)"
                            " VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING", rows)
            return int(cur.rowcount)

    def insert_resolutions(self, resolutions: Sequence[StoredResolution]) -> int:
        rows = [(r.resolution.entry_id, r.site, r.kiosk, r.resolution.by, self._t(r.resolution.ts),
                 r.resolution.opened, r.resolution.operator, self._t(r.received_at)) for r in resolutions]
        if not rows:
            return 0
        with self._transaction(write=True) as cur:
            cur.executemany("INSERT INTO resolutions (entry_id, site, kiosk, resolved_by, ts, opened,"
                            " operator, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
                            " ON CONFLICT (entry_id) DO NOTHING", rows)
            return int(cur.rowcount)

    def _select(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        with self._transaction(write=False) as cur:
            cur.execute(sql, params)
            return cur.fetchall()

    @staticmethod
    def _where_site(site: str | None, sql: str, params: list[Any], *, column: str = "site") -> str:
        if site is None:
            return sql
        params.append(site)
        return f"{sql} {'AND' if ' WHERE ' in sql else 'WHERE'} {column} = ?"

    def gaps(self, *, site: str | None = None) -> list[Gap]:
        params: list[Any] = []
        sql = self._where_site(site, "SELECT site, kiosk, first_seq, last_seq FROM seq_gaps", params)
        return [Gap(s, k, int(first), int(last))
                for s, k, first, last in self._select(sql + " ORDER BY site, kiosk, first_seq", params)]

    def seq_conflicts(self, *, site: str | None = None) -> list[SeqConflict]:
        params: list[Any] = []
        sql = self._where_site(site, "SELECT site, kiosk, seq, id, detected_at FROM seq_conflicts", params)
        found: dict[tuple[str, str, int], tuple[list[str], list[datetime]]] = {}
        for s, k, seq, entry_id, at in self._select(sql + " ORDER BY site, kiosk, seq, id", params):
            ids, times = found.setdefault((s, k, int(seq)), ([], []))
            ids.append(entry_id)
            times.append(self._dt(at))
        return [SeqConflict(*key, tuple(ids), min(times)) for key, (ids, times) in found.items()]

    # -- queries ---------------------------------------------------------------------------------------

    def entries_between(
        self,
        start: datetime,
        end: datetime,
        *,
        site: str | None = None,
        kiosk: str | None = None,
        person_ref: str | None = None,
        pid: str | None = None,
        hh: str | None = None,
    ) -> list[Entry]:
        sql = "SELECT payload FROM entries WHERE ts >= ? AND ts < ?"
        params: list[Any] = [self._t(start), self._t(end)]
        for column, value in (("site", site), ("kiosk", kiosk), ("person_ref", person_ref), ("pid", pid),
                              ("hh", hh)):
            if value is not None:
                sql += f" AND {column} = ?"
                params.append(value)
        rows = self._select(sql + " ORDER BY ts, site, kiosk, seq, id", params)
        return [Entry.model_validate_json(bytes(payload)) for (payload,) in rows]

    def kiosks(self, *, site: str | None = None) -> list[tuple[str, str]]:
        params: list[Any] = []
        sql = (self._where_site(site, "SELECT site, kiosk FROM kiosk_seq", params) + " UNION "
               + self._where_site(site, "SELECT site, kiosk FROM kiosk_status", params))
        return [(s, k) for s, k in self._select(sql + " ORDER BY site, kiosk", params)]

    def site_reported(self, site: str) -> bool:
        rows = self._select("SELECT 1 FROM kiosk_seq WHERE site = ? UNION ALL SELECT 1 FROM kiosk_status"
                            " WHERE site = ? UNION ALL SELECT 1 FROM alerts WHERE site = ? LIMIT 1",
                            (site, site, site))
        return bool(rows)

    def kiosk_states(self, *, site: str | None = None) -> list[KioskState]:
        params: list[Any] = []
        sql = self._where_site(site, "SELECT site, kiosk, state, since, last_seen, backlog, camera,"
                                     " thermometer, version FROM kiosk_status", params)
        return [KioskState(s, k, state, self._dt(since), self._dt(seen),
                           None if backlog is None else int(backlog), camera, thermometer, version)
                for s, k, state, since, seen, backlog, camera, thermometer, version
                in self._select(sql + " ORDER BY site, kiosk", params)]

    def offline_intervals(
        self, start: datetime, end: datetime, *, site: str | None = None
    ) -> list[tuple[str, str, datetime, datetime | None]]:
        params: list[Any] = []
        events = self._where_site(site, "SELECT site, kiosk, state, at, LEAD(at) OVER (PARTITION BY"
                                        " site, kiosk ORDER BY at, n) AS back FROM status_events", params)
        params += [self._t(end), self._t(start)]
        rows = self._select(f"SELECT site, kiosk, at, back FROM ({events}) AS e WHERE state = 'offline'"
                            " AND at < ? AND (back IS NULL OR back > ?) ORDER BY site, kiosk, at", params)
        return [(s, k, self._dt(at), None if back is None else self._dt(back)) for s, k, at, back in rows]

    def alerts_between(self, start: datetime, end: datetime, *, site: str | None = None) -> list[StoredAlert]:
        params: list[Any] = [self._t(start), self._t(end)]
        sql = self._where_site(site, "SELECT site, kiosk, id, kind, ts, entry_id, detail, received_at"
                                     " FROM alerts WHERE ts >= ? AND ts < ?", params)
        return [StoredAlert(s, k, Alert.model_validate({"id": alert_id, "kind": kind, "ts": self._dt(ts),
                                                        "entry_id": entry_id, "detail": detail}),
                            self._dt(received))
                for s, k, alert_id, kind, ts, entry_id, detail, received
                in self._select(sql + " ORDER BY ts, n", params)]

    def resolutions_between(self, start: datetime, end: datetime, *,
                            site: str | None = None) -> list[StoredResolution]:
        params: list[Any] = [self._t(start), self._t(end)]
        sql = self._where_site(site, "SELECT site, kiosk, entry_id, resolved_by, ts, opened, operator,"
                                     " received_at FROM resolutions WHERE ts >= ? AND ts < ?", params)
        return [StoredResolution(s, k, Resolution(entry_id=entry_id, by=by, ts=self._dt(ts),
                                                  opened=bool(opened), operator=operator), self._dt(received))
                for s, k, entry_id, by, ts, opened, operator, received
                in self._select(sql + " ORDER BY ts, entry_id", params)]

    def first_seen_passes(self, start: datetime, end: datetime, *, site: str | None = None) -> list[str]:
        # Each pid of the window reads the (pid, ts) index up to its earliest entry (at the site): a NOT
        # EXISTS, or a MIN() with the site, let PostgreSQL scan far more (seconds at a million entries).
        params: list[Any] = [self._t(start), self._t(end)]
        seen = self._where_site(site, "SELECT DISTINCT pid FROM entries WHERE ts >= ? AND ts < ?"
                                " AND pid IS NOT NULL", params)
        same_site = "" if site is None else " AND e.site = ?"
        params += [] if site is None else [site]
        params.append(self._t(start))
        sql = (f"SELECT d.pid FROM ({seen}) AS d WHERE (SELECT e.ts FROM entries AS e"
               f" WHERE e.pid = d.pid{same_site} ORDER BY e.ts LIMIT 1) >= ? ORDER BY d.pid")
        return [pid for (pid,) in self._select(sql, params)]

    def import_registry(self, passes: Sequence[IssuedPass]) -> int:
        rows = list({p.pid: (p.pid, p.cat, p.hh, p.name_masked, p.idh, p.nbf, p.exp, p.kid)
                     for p in passes}.values())
        if rows:
            with self._transaction(write=True) as cur:
                cur.executemany("INSERT INTO registry (pid, cat, hh, name_masked, idh, nbf, exp, kid)"
                                " VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (pid) DO UPDATE SET"
                                " cat = excluded.cat, hh = excluded.hh, name_masked = excluded.name_masked,"
                                " idh = excluded.idh, nbf = excluded.nbf, exp = excluded.exp,"
                                " kid = excluded.kid", rows)
        return len(rows)

    def registry(self) -> list[IssuedPass]:
        rows = self._select("SELECT pid, cat, hh, name_masked, idh, nbf, exp, kid FROM registry ORDER BY pid")
        return [IssuedPass(pid, cat, hh, name, idh, int(nbf), int(exp), kid)
                for pid, cat, hh, name, idh, nbf, exp, kid in rows]

    def purge(self, before: datetime, *, now: datetime) -> int:
        with self._transaction(write=True) as cur:
            cur.execute("DELETE FROM entries WHERE ts < ?", (self._t(before),))
            deleted = int(cur.rowcount)
            # Dead letters hold raw payloads with person refs: they go on the same schedule.
            cur.execute("DELETE FROM dead_letters WHERE received_at < ?", (self._t(before),))
            cur.execute("DELETE FROM resolutions WHERE ts < ?", (self._t(before),))
            cur.execute("INSERT INTO purges (at, before_ts, deleted) VALUES (?, ?, ?)",
                        (self._t(now), self._t(before), deleted))
            self._analyze(cur)
        return deleted

    def purged_between(self, start: datetime, end: datetime) -> int:
        rows = self._select("SELECT COALESCE(SUM(deleted), 0) FROM purges WHERE at >= ? AND at < ?",
                            (self._t(start), self._t(end)))
        return int(rows[0][0])

    def log_trace(self, who: str, query: str, at: datetime) -> None:
        with self._transaction(write=True) as cur:
            cur.execute("INSERT INTO trace_log (at, who, query) VALUES (?, ?, ?)", (self._t(at), who, query))

    def trace_log(self) -> list[tuple[datetime, str, str]]:
        return [(self._dt(at), who, query)
                for at, who, query in self._select("SELECT at, who, query FROM trace_log ORDER BY at, n")]

    def dead_letters(self, *, limit: int = 100) -> list[DeadLetter]:
        rows = self._select("SELECT received_at, topic, reason, payload FROM dead_letters"
                            " ORDER BY received_at DESC, n DESC LIMIT ?", (limit,))
        return [DeadLetter(self._dt(at), topic, reason, bytes(payload))
                for at, topic, reason, payload in rows]

    def count_entries(self) -> int:
        return int(self._select("SELECT COUNT(*) FROM entries")[0][0])

    def ping(self) -> None:
        self._select("SELECT 1")
