"""Passes issued in the web app and revocations, in portable SQL: a mixin of `SqlStore`.

A pass issued in the web app is a `registry` row (the same registry `kiosk-office registry import` fills,
so the registry comparison sees it) and an `issued_passes` row with its site, who issued it and when, and
its signed QR text for printing again. A pid is unique across the registry: a pass whose pid is taken is
refused, and with it the whole batch. Each site's revocations are numbered by a serial that goes up with
every list signed (by one, or to the Unix time if that is higher), in the same transaction as the change,
so list n holds every revocation up to n.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from office.store.records import IssuedPass
from office.store.schema import Cursor, check_aware

_INSERT_AUDIT = "INSERT INTO audit (at, who, action, detail) VALUES (?, ?, ?, ?)"
_PASS_COLUMNS = ("r.pid, r.cat, r.hh, r.name_masked, r.idh, r.nbf, r.exp, r.kid, i.site, i.issued_at,"
                 " i.issued_by, i.text")
_FROM = "FROM registry r LEFT JOIN issued_passes i ON i.pid = r.pid"


@dataclass(frozen=True)
class Revocation:
    """A pass revoked at a site: by whom, when and why."""

    site: str
    pid: str
    at: datetime
    by: str
    note: str


@dataclass(frozen=True)
class PassRecord:
    """A registry pass; `site`, `issued_*` and `text` only for one issued in the web app."""

    issued: IssuedPass
    site: str | None
    issued_at: datetime | None
    issued_by: str | None
    text: str | None
    revoked: tuple[Revocation, ...] = ()


@dataclass(frozen=True)
class RevocationState:
    """A site's revocation list: its serial, the newest serial published, and every revoked pid."""

    site: str
    serial: int
    published_serial: int | None
    published_at: datetime | None
    revoked: tuple[str, ...]

    @property
    def published(self) -> bool:
        return self.serial == 0 or (self.published_serial or 0) >= self.serial


class PassTaken(Exception):
    """Raised inside the issuing transaction to roll it back: these pids are taken."""

    def __init__(self, pids: list[str]) -> None:
        super().__init__(", ".join(pids))
        self.pids = pids


def _time(value: Any) -> datetime:
    return check_aware(datetime.fromisoformat(value) if isinstance(value, str) else value)


class PassQueries(ABC):
    """The pass registry written from the web app, and each site's revocations."""

    @abstractmethod
    def _transaction(self, *, write: bool) -> AbstractContextManager[Cursor]: ...

    @abstractmethod
    def _t(self, value: datetime) -> Any: ...

    @abstractmethod
    def _select(self, sql: str, params: Sequence[Any] = ()) -> list[Any]: ...

    def issue_passes(self, site: str, passes: Sequence[tuple[IssuedPass, str]], *, by: str,
                     at: datetime) -> list[str]:
        pids = [p.pid for p, _ in passes]
        repeated = sorted({pid for pid in pids if pids.count(pid) > 1})
        if repeated or not passes:
            return repeated or []
        when = self._t(at)
        try:
            with self._transaction(write=True) as cur:
                taken = []
                for p, _ in passes:
                    cur.execute("INSERT INTO registry (pid, cat, hh, name_masked, idh, nbf, exp, kid)"
                                " VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (pid) DO NOTHING",
                                (p.pid, p.cat, p.hh, p.name_masked, p.idh, p.nbf, p.exp, p.kid))
                    if cur.rowcount != 1:
                        taken.append(p.pid)
                if taken:
                    raise PassTaken(taken)
                cur.executemany("INSERT INTO issued_passes (pid, site, issued_at, issued_by, text)"
                                " VALUES (?, ?, ?, ?, ?)",
                                [(p.pid, site, when, by, text) for p, text in passes])
                cur.execute(_INSERT_AUDIT, (when, by, "pass.issue", f"site={site} pids={','.join(pids)}"))
        except PassTaken as exc:
            return exc.pids
        return []

    def _records(self, where: str, params: Sequence[Any], order: str, limit: int) -> list[PassRecord]:
        rows = self._select(f"SELECT {_PASS_COLUMNS} {_FROM}{where} ORDER BY {order} LIMIT ?",
                            (*params, limit))
        revoked: dict[str, list[Revocation]] = {}
        pids = [row[0] for row in rows]
        for start in range(0, len(pids), 300):
            chunk = pids[start:start + 300]
            marks = ", ".join("?" * len(chunk))
            for r in self._revocation_rows(f" WHERE pid IN ({marks})", chunk):
                revoked.setdefault(r.pid, []).append(r)
        return [PassRecord(IssuedPass(pid, cat, hh, name, idh, int(nbf), int(exp), kid), site,
                           None if at is None else _time(at), issued_by, text, tuple(revoked.get(pid, ())))
                for pid, cat, hh, name, idh, nbf, exp, kid, site, at, issued_by, text in rows]

    def pass_records(self, *, cat: str | None = None, hh: str | None = None, pid: str | None = None,
                     limit: int = 300) -> list[PassRecord]:
        clauses, params = [], []
        for column, value in (("r.cat", cat), ("r.hh", hh), ("r.pid", pid)):
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        where = " WHERE " + " AND ".join(clauses) if clauses else ""
        return self._records(where, params, "(i.issued_at IS NULL), i.issued_at DESC, r.nbf DESC, r.pid DESC",
                             limit)

    def passes_of(self, pids: Sequence[str]) -> list[PassRecord]:
        found: dict[str, PassRecord] = {}
        for start in range(0, len(pids), 300):
            chunk = list(pids[start:start + 300])
            marks = ", ".join("?" * len(chunk))
            for record in self._records(f" WHERE r.pid IN ({marks})", chunk, "r.pid", len(chunk)):
                found[record.issued.pid] = record
        return [found[pid] for pid in dict.fromkeys(pids) if pid in found]

    def expiring_passes(self, start: datetime, end: datetime, *, limit: int = 1000) -> list[PassRecord]:
        return self._records(" WHERE r.exp >= ? AND r.exp < ?",
                             (int(check_aware(start).timestamp()), int(check_aware(end).timestamp())),
                             "r.exp, r.pid", limit)

    def _revocation_rows(self, where: str, params: Sequence[Any]) -> list[Revocation]:
        rows = self._select(f"SELECT site, pid, at, revoked_by, note FROM revocations{where}"
                            " ORDER BY at DESC, site, pid", params)
        return [Revocation(site, pid, _time(at), by, note) for site, pid, at, by, note in rows]

    def revocations(self, *, site: str | None = None) -> list[Revocation]:
        return self._revocation_rows(*((" WHERE site = ?", (site,)) if site is not None else ("", ())))

    def _state(self, cur: Cursor, site: str) -> RevocationState:
        cur.execute("SELECT serial, published_serial, published_at FROM revocation_serials WHERE site = ?",
                    (site,))
        row = cur.fetchone()
        cur.execute("SELECT pid FROM revocations WHERE site = ? ORDER BY pid", (site,))
        revoked = tuple(pid for (pid,) in cur.fetchall())
        if row is None:
            return RevocationState(site, 0, None, None, revoked)
        serial, published, published_at = row
        return RevocationState(site, int(serial), None if published is None else int(published),
                               None if published_at is None else _time(published_at), revoked)

    def _next_serial(self, cur: Cursor, site: str, at: datetime) -> None:
        # The next serial is one more than the last, and at least the Unix time of `at`: what
        # `kiosk-admin revoke` numbers its lists by, so a kiosk that took one of those takes the next one
        # from here. The row lock taken here keeps two lists of one site from sharing a serial.
        floor = int(check_aware(at).timestamp())
        cur.execute("INSERT INTO revocation_serials (site, serial) VALUES (?, ?) ON CONFLICT (site)"
                    " DO UPDATE SET serial = CASE WHEN revocation_serials.serial < excluded.serial"
                    " THEN excluded.serial ELSE revocation_serials.serial + 1 END", (site, floor))

    def revoke_passes(self, site: str, pids: Sequence[str], *, by: str, at: datetime,
                      note: str) -> tuple[list[str], RevocationState]:
        when = self._t(at)
        with self._transaction(write=True) as cur:
            new = []
            for pid in dict.fromkeys(pids):
                cur.execute("INSERT INTO revocations (site, pid, at, revoked_by, note) VALUES (?, ?, ?, ?, ?)"
                            " ON CONFLICT (site, pid) DO NOTHING", (site, pid, when, by, note))
                if cur.rowcount == 1:
                    new.append(pid)
            if new:
                self._next_serial(cur, site, at)
                cur.execute(_INSERT_AUDIT, (when, by, "pass.revoke",
                                            f"site={site} pids={','.join(new)} note={note}"))
            return new, self._state(cur, site)

    def revocation_state(self, site: str) -> RevocationState:
        with self._transaction(write=False) as cur:
            return self._state(cur, site)

    def renumber_revocations(self, site: str, *, by: str, at: datetime) -> RevocationState:
        when = self._t(at)
        with self._transaction(write=True) as cur:
            self._next_serial(cur, site, at)
            state = self._state(cur, site)
            cur.execute(_INSERT_AUDIT, (when, by, "pass.revoke.publish",
                                        f"site={site} serial={state.serial} pids={','.join(state.revoked)}"))
            return state

    def revocations_published(self, site: str, serial: int, *, at: datetime) -> None:
        with self._transaction(write=True) as cur:
            cur.execute("UPDATE revocation_serials SET published_serial = ?, published_at = ? WHERE site = ?"
                        " AND (published_serial IS NULL OR published_serial < ?)",
                        (serial, self._t(at), site, serial))
