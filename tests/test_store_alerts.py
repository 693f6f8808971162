"""Handling alerts in the store (acknowledge, resolve, the joined alert list), on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest
import uuid6
from test_store import T0, entry

from checkpoint.entry import Alert
from office.store.base import Store, StoredAlert


@pytest.fixture
def store(each_store: Store) -> Store:
    return each_store


def fever(seconds: int, entry_id: str | None = None) -> StoredAlert:
    made = Alert(kind="fever", ts=T0 + timedelta(seconds=seconds), detail="body 38.0 °C",
                 id=str(uuid6.uuid7()), entry_id=entry_id or str(uuid6.uuid7()))
    return StoredAlert("s1", "gate-north", made, T0 + timedelta(seconds=seconds + 1))


def test_recent_alerts_join_the_entry_newest_first_and_alerts_after_follows_on(store: Store) -> None:
    stored_entry, raw = entry(1)
    store.insert_entries([(stored_entry, raw)], T0)
    first, second = fever(5, stored_entry.id), fever(9)
    store.insert_alerts([first, second])
    newest, older = store.recent_alerts()
    assert (newest.stored, newest.entry, newest.handling) == (second, None, None)
    assert older.stored == first and older.entry == stored_entry and older.n < newest.n
    assert [v.stored for v in store.alerts_after(0)] == [first, second]
    assert [v.stored for v in store.alerts_after(older.n)] == [second]
    assert store.alerts_after(newest.n) == []
    assert [v.stored for v in store.recent_alerts(limit=1)] == [second]


def test_acknowledge_then_resolve_once_each_and_audited(store: Store) -> None:
    alert = fever(5)
    store.insert_alerts([alert])
    alert_id = alert.alert.id
    assert alert_id is not None
    at = T0 + timedelta(minutes=2)
    assert store.acknowledge_alert(alert_id, by="wang", at=at, note="on my way")
    assert not store.acknowledge_alert(alert_id, by="li", at=at)
    [view] = store.recent_alerts()
    assert view.handling is not None
    handled = view.handling
    assert (handled.acked_by, handled.acked_at, handled.ack_note) == ("wang", at, "on my way")
    assert view.handling.resolved_by is None
    later = at + timedelta(minutes=5)
    assert store.resolve_alert(alert_id, by="li", at=later, note="sent to the clinic")
    assert not store.resolve_alert(alert_id, by="li", at=later, note="again")
    handling = store.alert_handling([alert_id, "nothing"])[alert_id]
    assert (handling.acked_by, handling.resolved_by, handling.resolved_at, handling.resolve_note) == (
        "wang", "li", later, "sent to the clinic")
    assert [(a.who, a.action, a.detail) for a in store.audit_log()] == [
        ("li", "alert.resolve", f"{alert_id} note=sent to the clinic"),
        ("wang", "alert.ack", f"{alert_id} note=on my way")]


def test_resolving_an_unacknowledged_offline_kiosk_acknowledges_it_too(store: Store) -> None:
    key = "offline:s1/gate-north:2026-03-19T07:00:00.000000Z"
    assert store.resolve_alert(key, by="li", at=T0, note="power back")
    handling = store.alert_handling([key])[key]
    assert (handling.acked_by, handling.acked_at, handling.resolved_by) == ("li", T0, "li")
    assert [a.action for a in store.audit_log()] == ["alert.resolve"]


def test_an_alert_without_an_id_is_handled_by_its_number(store: Store) -> None:
    """The contract makes an alert's id optional: one without could not be acknowledged at all."""
    bare = StoredAlert("s1", "gate-north", Alert(kind="fault", ts=T0, detail="thermometer: no answer"), T0)
    store.insert_alerts([bare, fever(3)])
    view = next(v for v in store.recent_alerts() if v.stored == bare)
    assert view.key == f"n:{view.n}" and view.handling is None
    assert store.acknowledge_alert(view.key, by="wang", at=T0, note="去看看")
    handled = next(v for v in store.recent_alerts() if v.stored == bare).handling
    assert handled is not None and handled.acked_by == "wang"
    assert all(v.handling is None for v in store.recent_alerts() if v.stored != bare)
