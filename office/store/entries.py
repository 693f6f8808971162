"""The office's entry list: one page of entries, newest first, filtered in the database and paged by key
(never OFFSET), in portable SQL: a mixin of `SqlStore`."""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from checkpoint.entry import Entry
from office.store.records import KioskCounts
from office.store.schema import Dialect

MAX_PAGE = 1000


class EntryQueries(ABC):
    """`Store.entries_page` over the time columns of a `SqlStore`."""

    dialect: Dialect

    @abstractmethod
    def _t(self, value: datetime) -> Any: ...

    @abstractmethod
    def _select(self, sql: str, params: Sequence[Any] = ()) -> list[Any]: ...

    def entries_page(
        self,
        start: datetime,
        end: datetime,
        *,
        site: str | None = None,
        kiosk: str | None = None,
        decision: str | None = None,
        reason: str | None = None,
        cat: str | None = None,
        pid: str | None = None,
        hh: str | None = None,
        after: tuple[datetime, str] | None = None,
        limit: int = 100,
    ) -> list[Entry]:
        if not 0 < limit <= MAX_PAGE:
            raise ValueError(f"limit: expected 1..{MAX_PAGE}")
        sql = "SELECT payload FROM entries WHERE ts >= ? AND ts < ?"
        params: list[Any] = [self._t(start), self._t(end)]
        for column, value in (("site", site), ("kiosk", kiosk), ("decision", decision), ("cat", cat),
                              ("pid", pid), ("hh", hh)):
            if value is not None:
                sql += f" AND {column} = ?"
                params.append(value)
        if reason is not None:
            if self.dialect.name == "postgres":
                sql += " AND reasons @> CAST(? AS JSONB)"
                params.append(json.dumps([reason]))
            else:
                sql += " AND EXISTS (SELECT 1 FROM json_each(entries.reasons) WHERE json_each.value = ?)"
                params.append(reason)
        if after is not None:
            at, entry_id = after
            sql += " AND (ts, id) < (?, ?)"  # a row value: both databases seek the (ts, id) index
            params += [self._t(at), entry_id]
        rows = self._select(sql + " ORDER BY ts DESC, id DESC LIMIT ?", [*params, limit])
        return [Entry.model_validate_json(bytes(payload)) for (payload,) in rows]

    def counts_by_kiosk(self, start: datetime, end: datetime) -> list[KioskCounts]:
        window = [self._t(start), self._t(end)]
        counts: dict[tuple[str, str], list[int]] = {}
        for site, kiosk, n, allows, denies, attentions in self._select(
                "SELECT site, kiosk, COUNT(*),"
                " SUM(CASE WHEN decision = 'allow' THEN 1 ELSE 0 END),"
                " SUM(CASE WHEN decision = 'deny' THEN 1 ELSE 0 END),"
                " SUM(CASE WHEN decision = 'attention' THEN 1 ELSE 0 END)"
                " FROM entries WHERE ts >= ? AND ts < ? GROUP BY site, kiosk", window):
            counts[(site, kiosk)] = [int(n), int(allows), int(denies), int(attentions), 0]
        for site, kiosk, fevers in self._select(
                "SELECT site, kiosk, COUNT(*) FROM alerts WHERE kind = 'fever' AND ts >= ? AND ts < ?"
                " GROUP BY site, kiosk", window):
            counts.setdefault((site, kiosk), [0, 0, 0, 0, 0])[4] = int(fevers)
        return [KioskCounts(site, kiosk, *numbers) for (site, kiosk), numbers in sorted(counts.items())]
