"""How the office handles alerts (acknowledge, resolve) and the alert list the web app shows, in portable
SQL: a mixin of `SqlStore`."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any

from checkpoint.entry import Alert, Entry
from office.store.base import AlertHandling, AlertView, StoredAlert
from office.store.schema import Cursor, check_aware, chunks

_INSERT_AUDIT = "INSERT INTO audit (at, who, action, detail) VALUES (?, ?, ?, ?)"
_HANDLING_COLUMNS = "alert_id, acked_by, acked_at, ack_note, resolved_by, resolved_at, resolve_note"
_HANDLED = "LEFT JOIN alert_handling AS h ON h.alert_id = COALESCE(a.id, 'n:' || CAST(a.n AS TEXT))"
_VIEW = ("SELECT a.n, a.site, a.kiosk, a.id, a.kind, a.ts, a.entry_id, a.detail, a.received_at, e.payload, "
         + ", ".join(f"h.{column}" for column in _HANDLING_COLUMNS.split(", "))
         + " FROM alerts AS a LEFT JOIN entries AS e ON e.id = a.entry_id"
         f" {_HANDLED}")


def _when(value: Any) -> datetime:
    return check_aware(datetime.fromisoformat(value) if isinstance(value, str) else value)


def _handling(row: Sequence[Any]) -> AlertHandling | None:
    alert_id, acked_by, acked_at, ack_note, resolved_by, resolved_at, resolve_note = row
    if alert_id is None:
        return None
    return AlertHandling(alert_id, acked_by, _when(acked_at), ack_note, resolved_by,
                         None if resolved_at is None else _when(resolved_at), resolve_note)


def _view(row: Sequence[Any]) -> AlertView:
    n, site, kiosk, alert_id, kind, ts, entry_id, detail, received, payload = row[:10]
    alert = Alert.model_validate({"id": alert_id, "kind": kind, "ts": _when(ts), "entry_id": entry_id,
                                  "detail": detail})
    entry = None if payload is None else Entry.model_validate_json(bytes(payload))
    return AlertView(int(n), StoredAlert(site, kiosk, alert, _when(received)), entry, _handling(row[10:]))


class AlertQueries(ABC):
    """`Store`'s alert-handling methods over the transactions and time columns of a `SqlStore`."""

    @abstractmethod
    def _transaction(self, *, write: bool) -> AbstractContextManager[Cursor]: ...

    @abstractmethod
    def _t(self, value: datetime) -> Any: ...

    @abstractmethod
    def _select(self, sql: str, params: Sequence[Any] = ()) -> list[Any]: ...

    def acknowledge_alert(self, alert_id: str, *, by: str, at: datetime, note: str = "") -> bool:
        when = self._t(at)
        with self._transaction(write=True) as cur:
            cur.execute(f"INSERT INTO alert_handling ({_HANDLING_COLUMNS})"
                        " VALUES (?, ?, ?, ?, NULL, NULL, NULL) ON CONFLICT (alert_id) DO NOTHING",
                        (alert_id, by, when, note))
            if cur.rowcount != 1:
                return False
            cur.execute(_INSERT_AUDIT, (when, by, "alert.ack", f"{alert_id} note={note}"))
        return True

    def resolve_alert(self, alert_id: str, *, by: str, at: datetime, note: str) -> bool:
        when = self._t(at)
        with self._transaction(write=True) as cur:
            cur.execute(f"INSERT INTO alert_handling ({_HANDLING_COLUMNS}) VALUES (?, ?, ?, '', ?, ?, ?)"
                        " ON CONFLICT (alert_id) DO UPDATE SET resolved_by = excluded.resolved_by,"
                        " resolved_at = excluded.resolved_at, resolve_note = excluded.resolve_note"
                        " WHERE alert_handling.resolved_by IS NULL",
                        (alert_id, by, when, by, when, note))
            if cur.rowcount != 1:
                return False
            cur.execute(_INSERT_AUDIT, (when, by, "alert.resolve", f"{alert_id} note={note}"))
        return True

    def recent_alerts(self, *, limit: int = 200) -> list[AlertView]:
        return [_view(row) for row in self._select(f"{_VIEW} ORDER BY a.n DESC LIMIT ?", (limit,))]

    def alerts_after(self, n: int, *, limit: int = 100) -> list[AlertView]:
        return [_view(row) for row in self._select(f"{_VIEW} WHERE a.n > ? ORDER BY a.n LIMIT ?", (n, limit))]

    def alert_handling(self, alert_ids: Sequence[str]) -> dict[str, AlertHandling]:
        found: dict[str, AlertHandling] = {}
        for part in chunks(list(alert_ids), 300):
            marks = ", ".join("?" * len(part))
            for row in self._select(f"SELECT {_HANDLING_COLUMNS} FROM alert_handling"
                                    f" WHERE alert_id IN ({marks})", part):
                handling = _handling(row)
                if handling is not None:
                    found[handling.alert_id] = handling
        return found

    def open_alerts(self, *, limit: int) -> tuple[list[AlertView], int]:
        newest = [_view(row) for row in self._select(f"{_VIEW} WHERE h.resolved_by IS NULL"
                                                     " ORDER BY a.n DESC LIMIT ?", (limit,))]
        (count,), = self._select(f"SELECT COUNT(*) FROM alerts AS a {_HANDLED} WHERE h.resolved_by IS NULL")
        return newest, int(count)
