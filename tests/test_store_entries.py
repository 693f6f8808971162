"""`Store.entries_page`, the entries list of the office web app, on SQLite and PostgreSQL: filters in the
database (decision, one reason of several), newest first, and keyset pages that neither skip nor repeat."""

from __future__ import annotations

from datetime import timedelta

import pytest
import uuid6
from fixtures.collector_data import at, insert, make_entry

from checkpoint.entry import Alert, Entry
from office.store.base import KioskCounts, Store, StoredAlert

T = at("2026-03-19T08:00:00.000Z")
S = timedelta(seconds=1)
DAY = timedelta(days=1)


@pytest.fixture
def store(each_store: Store) -> Store:
    return each_store


@pytest.fixture
def entries(store: Store) -> list[Entry]:
    made = [
        make_entry("s1", "gate-north", 1, T, pass_=("P-1", "green", "9-1-101")),
        make_entry("s1", "gate-north", 2, T + S, decision="deny", reasons=["no_health_code", "pass_expired"],
                   pass_=("P-2", "blue", "9-1-102")),
        make_entry("s1", "gate-south", 1, T + 2 * S, decision="attention", reasons=["fever"], body_c=38.2,
                   pass_=("P-1", "green", "9-1-101")),
        make_entry("s2", "gate-north", 1, T + 3 * S, decision="deny", reasons=["pass_expired"]),
        make_entry("s1", "gate-north", 3, T + DAY, pass_=("P-1", "green", "9-1-101")),
    ]
    insert(store, made)
    return made


def ids(found: list[Entry]) -> list[str]:
    return [e.id for e in found]


def test_newest_first_within_the_window(store: Store, entries: list[Entry]) -> None:
    assert ids(store.entries_page(T, T + DAY)) == ids(entries[3::-1])


def test_filters_run_in_the_database(store: Store, entries: list[Entry]) -> None:
    a, b, c, d, _ = entries
    assert ids(store.entries_page(T, T + DAY, decision="deny")) == [d.id, b.id]
    assert ids(store.entries_page(T, T + DAY, reason="pass_expired")) == [d.id, b.id]
    assert ids(store.entries_page(T, T + DAY, reason="no_health_code")) == [b.id]
    assert ids(store.entries_page(T, T + DAY, reason="pass")) == []  # a whole reason, not a part of one
    assert ids(store.entries_page(T, T + DAY, decision="deny", site="s1")) == [b.id]
    assert ids(store.entries_page(T, T + DAY, kiosk="gate-south")) == [c.id]
    assert ids(store.entries_page(T, T + DAY, pid="P-1")) == [c.id, a.id]
    assert ids(store.entries_page(T, T + DAY, hh="9-1-102")) == [b.id]
    assert ids(store.entries_page(T, T + DAY, cat="green")) == [c.id, a.id]
    assert ids(store.entries_page(T, T + 2 * DAY, pid="P-1", reason="fever")) == [c.id]


def test_keyset_pages_neither_skip_nor_repeat(store: Store) -> None:
    same_time = [make_entry("s1", "gate-north", seq, T + (seq // 3) * S) for seq in range(1, 11)]
    insert(store, same_time)
    seen: list[str] = []
    after = None
    while True:
        page = store.entries_page(T, T + DAY, after=after, limit=3)
        seen += ids(page)
        if len(page) < 3:
            break
        after = (page[-1].ts, page[-1].id)
    expected = sorted(same_time, key=lambda e: (e.ts, e.id), reverse=True)
    assert seen == ids(expected)


def test_a_page_has_a_size(store: Store) -> None:
    for limit in (0, 1001):
        with pytest.raises(ValueError, match="limit"):
            store.entries_page(T, T + DAY, limit=limit)


def test_counts_by_kiosk_are_made_in_the_database(store: Store, entries: list[Entry]) -> None:
    fever = Alert(kind="fever", ts=T + 2 * S, detail="body 38.2 °C", id=str(uuid6.uuid7()),
                  entry_id=entries[2].id)
    old = Alert(kind="fever", ts=T - DAY, detail="body 38.0 °C", id=str(uuid6.uuid7()))
    store.insert_alerts([StoredAlert("s1", "gate-south", fever, T), StoredAlert("s1", "gate-east", old, T)])
    assert store.counts_by_kiosk(T, T + DAY) == [
        KioskCounts("s1", "gate-north", 2, 1, 1, 0, 0),
        KioskCounts("s1", "gate-south", 1, 0, 0, 1, 1),
        KioskCounts("s2", "gate-north", 1, 0, 1, 0, 0),
    ]
    assert store.counts_by_kiosk(T - DAY, T) == [KioskCounts("s1", "gate-east", 0, 0, 0, 0, 1)]
    assert store.counts_by_kiosk(T + 2 * DAY, T + 3 * DAY) == []
