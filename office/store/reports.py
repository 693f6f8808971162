"""The daily and zero reports kept for the web app's history, in portable SQL: a mixin of `SqlStore`.

Every report made is kept as its own row (a day made again is a new version; the history lists each),
with its JSON, CSV and PNG, so a web process on another machine than the ingest's can serve them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from office.store.schema import Cursor, check_aware

_COLUMNS = "n, site, day, made_at, made_by, zero"


@dataclass(frozen=True)
class KeptReport:
    """One report made: `site` is '' for every site; `made_by` a user name or "schedule"."""

    n: int
    site: str
    day: date
    made_at: datetime
    made_by: str
    zero: bool


@dataclass(frozen=True)
class KeptReportFiles:
    """A kept report with what it was rendered to."""

    report: KeptReport
    json_text: str
    csv_text: str
    png: bytes | None


def _kept(row: Sequence[Any]) -> KeptReport:
    n, site, day, made_at, made_by, zero = row
    at = check_aware(datetime.fromisoformat(made_at) if isinstance(made_at, str) else made_at)
    return KeptReport(int(n), site, date.fromisoformat(day), at, made_by, bool(zero))


class ReportQueries(ABC):
    """Each report made, with its JSON, CSV and PNG."""

    @abstractmethod
    def _transaction(self, *, write: bool) -> AbstractContextManager[Cursor]: ...

    @abstractmethod
    def _t(self, value: datetime) -> Any: ...

    @abstractmethod
    def _select(self, sql: str, params: Sequence[Any] = ()) -> list[Any]: ...

    def keep_report(self, site: str | None, day: date, *, made_at: datetime, made_by: str, zero: bool,
                    json_text: str, csv_text: str, png: bytes | None) -> int:
        with self._transaction(write=True) as cur:
            cur.execute("INSERT INTO reports (site, day, made_at, made_by, zero, json, csv, png)"
                        " VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING n",
                        (site or "", day.isoformat(), self._t(made_at), made_by, zero, json_text, csv_text,
                         png))
            return int(cur.fetchone()[0])

    def kept_reports(self, *, limit: int = 200) -> list[KeptReport]:
        return [_kept(row) for row in self._select(
            f"SELECT {_COLUMNS} FROM reports ORDER BY day DESC, n DESC LIMIT ?", (limit,))]

    def kept_report(self, n: int) -> KeptReportFiles | None:
        rows = self._select(f"SELECT {_COLUMNS}, json, csv, png FROM reports WHERE n = ?", (n,))
        if not rows:
            return None
        row = rows[0]
        return KeptReportFiles(_kept(row[:6]), row[6] if isinstance(row[6], str) else str(row[6]), row[7],
                               None if row[8] is None else bytes(row[8]))
