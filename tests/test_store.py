"""The collector store: one suite, run against SQLite and against a real PostgreSQL server."""

from __future__ import annotations

import json
import random
import sqlite3
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import uuid6
from hypothesis import given
from hypothesis import strategies as st
from pg import fresh_database

from checkpoint.entry import Alert, Entry, Resolution, ResolvedBy, Status, format_ts
from office.store.base import (
    DeadLetter,
    Gap,
    IssuedPass,
    Store,
    StoredAlert,
    StoredResolution,
    StoreError,
    plan_seqs,
)
from office.store.opening import open_store
from office.store.schema import check_aware, to_text_time
from office.store.sqlite import SqliteStore

T0 = datetime(2026, 3, 19, 7, 0, tzinfo=UTC)
REF = "ab" * 32
Pair = tuple[Entry, bytes]


def entry(seq: int, *, site: str = "s1", kiosk: str = "gate-north", ts: datetime | None = None,
          pid: str | None = "P-00017", hh: str | None = "9-23-301", ref: str | None = None,
          entry_id: str | None = None) -> Pair:
    """A real entry and its raw payload, shaped like DESIGN's example."""
    payload: dict[str, Any] = {
        "schema": "checkpoint.entry/1", "id": entry_id or str(uuid6.uuid7()), "site": site, "kiosk": kiosk,
        "seq": seq, "ts": format_ts(ts or T0 + timedelta(seconds=seq)), "direction": "in",
        "decision": "allow", "reasons": [], "override": None,
        "temperature": {"skin_c": 35.1, "body_c": 36.6, "ambient_c": 5.2, "samples": 5},
        "health": {"scheme": "token", "status": "green"},
        "pass": {"pid": pid, "cat": "green", "hh": hh} if pid else None,
        "person": {"ref": ref, "masked": "3701**************"} if ref else None,
        "timing_ms": {"decode": 6.1, "decide": 0.3, "session": 1840.0},
    }
    raw = json.dumps(payload).encode()
    return Entry.model_validate_json(raw), raw


def gaps_of(store: Store) -> list[tuple[int, int]]:
    return [(gap.first, gap.last) for gap in store.gaps()]


@pytest.fixture(params=["sqlite", "postgres"])
def opener(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], Store]]:
    """Opens a store on this test's own fresh database (call it twice for two connections)."""
    if request.param == "sqlite":
        path = tmp_path / "office.sqlite"
        yield lambda: open_store("sqlite", path=path)
    else:
        with fresh_database(request.getfixturevalue("postgres_dsn")) as dsn:
            yield lambda: open_store("postgres", dsn=dsn)


@pytest.fixture
def store(opener: Callable[[], Store]) -> Iterator[Store]:
    with opener() as opened:
        yield opened


def test_insert_returns_new_count_and_ignores_duplicate_ids(store: Store) -> None:
    pairs = [entry(1, ref=REF), entry(2), entry(3)]
    assert store.insert_entries(pairs, T0) == 3
    assert store.insert_entries(pairs[:1], T0) == 0
    assert store.count_entries() == 3
    assert store.entries_between(T0, T0 + timedelta(hours=1)) == [e for e, _ in pairs]


def test_a_batch_of_new_and_duplicate_entries_counts_only_the_new(store: Store) -> None:
    old = [entry(1), entry(2)]
    store.insert_entries(old, T0)
    new = [entry(3), entry(4), entry(5)]
    assert store.insert_entries([old[0], new[0], new[1], old[1], new[2], new[0]], T0) == 3
    assert store.count_entries() == 5
    assert store.insert_entries([], T0) == 0


def test_gaps_open_split_and_close(store: Store) -> None:
    store.insert_entries([entry(1), entry(2), entry(5)], T0)
    assert store.gaps() == [Gap("s1", "gate-north", 3, 4)]
    store.insert_entries([entry(4)], T0)
    assert gaps_of(store) == [(3, 3)]
    store.insert_entries([entry(3)], T0)
    assert store.gaps() == []
    store.insert_entries([entry(20), entry(10, kiosk="gate-south")], T0)
    store.insert_entries([entry(12)], T0)  # splits 6..19
    store.insert_entries([entry(8), entry(7)], T0)
    assert gaps_of(store) == [(6, 6), (9, 11), (13, 19), (1, 9)]
    assert store.gaps(site="s1")[-1] == Gap("s1", "gate-south", 1, 9)
    assert store.gaps(site="s2") == []


def test_a_redelivered_entry_changes_no_gap(store: Store) -> None:
    five = entry(5)
    store.insert_entries([entry(1), five], T0)
    assert store.insert_entries([five], T0 + timedelta(seconds=1)) == 0
    assert gaps_of(store) == [(2, 4)]
    assert store.seq_conflicts() == []


def test_gaps_do_not_depend_on_arrival_order(opener: Callable[[], Store]) -> None:
    rng = random.Random(7)
    seqs = rng.sample(range(1, 200), 120)
    pairs = [entry(seq) for seq in seqs]
    missing = sorted(set(range(1, max(seqs) + 1)) - set(seqs))
    with opener() as store:
        rng.shuffle(pairs)
        for start in range(0, len(pairs), 17):
            store.insert_entries(pairs[start:start + 17], T0)
        covered = [seq for first, last in gaps_of(store) for seq in range(first, last + 1)]
    assert covered == missing


def test_a_kiosk_restarting_its_seq_keeps_every_entry_and_records_the_conflict(store: Store) -> None:
    first_life = [entry(seq) for seq in range(1, 6)]
    store.insert_entries(first_life, T0)
    second_life = [entry(1), entry(2)]
    assert store.insert_entries(second_life, T0 + timedelta(days=1)) == 2
    assert store.count_entries() == 7
    assert store.gaps() == []  # below the highest seq seen: no gap, nothing filled
    conflicts = store.seq_conflicts()
    assert [(c.seq, c.entry_ids) for c in conflicts] == [
        (n, tuple(sorted([first_life[n - 1][0].id, second_life[n - 1][0].id]))) for n in (1, 2)]
    assert conflicts[0].detected_at == T0 + timedelta(days=1)
    store.insert_entries([entry(6), entry(8)], T0)
    assert gaps_of(store) == [(7, 7)]
    assert store.seq_conflicts(site="s2") == []


def test_dead_letters_keep_raw_bytes(store: Store) -> None:
    big = bytes(range(256)) * 4096  # 1 MiB, every byte value
    letters = [DeadLetter(T0, "checkpoint/v1/s1/gate-north/entry", "invalid JSON", b"\xff\xfe\x00{not json"),
               DeadLetter(T0 + timedelta(seconds=1), "checkpoint/v1/s1/gate-north/entry", "too large", big),
               DeadLetter(T0 + timedelta(seconds=2), "checkpoint/v1/s1/x/alert", "empty", b"")]
    store.insert_dead_letters(letters)
    assert store.dead_letters() == letters[::-1]
    assert store.dead_letters(limit=1) == [letters[2]]
    assert store.dead_letters(limit=2)[1].payload == big


def online(at: datetime, **extra: Any) -> Status:
    return Status.model_validate({"state": "online", "ts": at, "camera": "ok", "thermometer": "ok",
                                  "outbox": {"backlog": 3}, "version": "0.1.0", **extra})


def test_status_transitions_make_states_and_offline_intervals(store: Store) -> None:
    t1, t2, t3, t5 = (T0 + timedelta(hours=h) for h in (1, 2, 3, 5))
    store.record_status("s1", "gate-north", online(t1), t1)
    store.record_status("s1", "gate-north", Status(state="offline"), t2)
    store.record_status("s1", "gate-north", online(t3, camera="fault"), t3)
    store.record_status("s1", "gate-north", online(t3), t3 + timedelta(minutes=1))  # no transition
    store.record_status("s1", "gate-north", Status(state="offline"), t2)  # stale: ignored
    [state] = store.kiosk_states()
    assert (state.state, state.since, state.last_seen) == ("online", t3, t3 + timedelta(minutes=1))
    assert (state.backlog, state.camera, state.thermometer, state.version) == (3, "ok", "ok", "0.1.0")
    assert store.offline_intervals(T0, t5) == [("s1", "gate-north", t2, t3)]
    assert store.offline_intervals(t3, t5) == []  # came back exactly at the window's start
    store.record_status("s1", "gate-north", Status(state="offline"), t5)
    assert store.offline_intervals(t5, t5 + timedelta(hours=1)) == [("s1", "gate-north", t5, None)]
    assert store.offline_intervals(T0, t2) == []
    [state] = store.kiosk_states()
    assert (state.state, state.since, state.camera, state.version) == ("offline", t5, "ok", "0.1.0")
    store.record_status("s2", "gate-west", Status(state="offline"), t1)  # first heard of: offline
    assert store.offline_intervals(T0, t2, site="s2") == [("s2", "gate-west", t1, None)]
    assert [s.kiosk for s in store.kiosk_states(site="s2")] == ["gate-west"]


def test_alerts_are_stored_once_by_id(store: Store) -> None:
    def alert(seconds: int, *, with_id: bool = True, site: str = "s1") -> StoredAlert:
        made = Alert(kind="fever", ts=T0 + timedelta(seconds=seconds), detail="37.9 °C",
                     id=str(uuid6.uuid7()) if with_id else None, entry_id=str(uuid6.uuid7()))
        return StoredAlert(site, "gate-north", made, T0 + timedelta(minutes=1))

    first, second, anonymous = alert(5), alert(2, site="s2"), alert(9, with_id=False)
    assert store.insert_alerts([first, first, second, anonymous]) == 3
    assert store.insert_alerts([first, second, anonymous]) == 1  # without an id it cannot be deduplicated
    got = store.alerts_between(T0, T0 + timedelta(seconds=10))
    assert got == [second, first, anonymous, anonymous]
    assert store.alerts_between(T0, T0 + timedelta(seconds=5), site="s1") == []
    assert store.alerts_between(T0, T0 + timedelta(seconds=6), site="s1") == [first]


def test_an_attention_is_resolved_once(store: Store) -> None:
    def resolution(entry_id: str, seconds: int, by: ResolvedBy, *, site: str = "s1") -> StoredResolution:
        made = Resolution(entry_id=entry_id, by=by, ts=T0 + timedelta(seconds=seconds), opened=by == "staff")
        return StoredResolution(site, "gate-north", made, T0 + timedelta(minutes=1))

    fever, yellow = str(uuid6.uuid7()), str(uuid6.uuid7())
    opened, acked = resolution(fever, 30, "staff"), resolution(yellow, 10, "ack", site="s2")
    assert store.insert_resolutions([opened, acked]) == 2
    assert store.insert_resolutions([resolution(fever, 40, "timeout"), opened]) == 0  # the first one stands
    assert store.resolutions_between(T0, T0 + timedelta(minutes=1)) == [acked, opened]
    assert store.resolutions_between(T0, T0 + timedelta(minutes=1), site="s1") == [opened]
    assert opened.resolution.opened and not acked.resolution.opened


def test_entries_between_filters_and_orders(store: Store) -> None:
    a = entry(1, ts=T0 + timedelta(minutes=3), ref=REF, pid=None, hh=None)
    b = entry(1, site="s2", kiosk="east", ts=T0 + timedelta(minutes=1), pid="P-2", hh="h2")
    c = entry(2, ts=T0 + timedelta(minutes=1), pid="P-3", hh="h2")
    d = entry(1, kiosk="west", ts=T0 + timedelta(minutes=1), pid="P-3", hh=None)
    late = entry(3, ts=T0 + timedelta(hours=1))
    store.insert_entries([a, b, c, d, late], T0)
    window = (T0, T0 + timedelta(hours=1))
    assert [(e.site, e.kiosk, e.seq) for e in store.entries_between(*window)] == [
        ("s1", "gate-north", 2), ("s1", "west", 1), ("s2", "east", 1), ("s1", "gate-north", 1)]
    assert store.entries_between(*window, site="s2") == [b[0]]
    assert store.entries_between(*window, kiosk="west") == [d[0]]
    assert store.entries_between(*window, person_ref=REF) == [a[0]]
    assert store.entries_between(*window, pid="P-3") == [c[0], d[0]]
    assert store.entries_between(*window, hh="h2", site="s1") == [c[0]]
    assert store.entries_between(T0 + timedelta(hours=1), T0 + timedelta(hours=2)) == [late[0]]


def test_kiosks_come_from_entries_and_statuses(store: Store) -> None:
    store.insert_entries([entry(1, site="s2", kiosk="b"), entry(1, kiosk="z")], T0)
    store.record_status("s1", "a", online(T0), T0)
    store.record_status("s1", "z", online(T0), T0)
    assert store.kiosks() == [("s1", "a"), ("s1", "z"), ("s2", "b")]
    assert store.kiosks(site="s1") == [("s1", "a"), ("s1", "z")]


def test_first_seen_passes(store: Store) -> None:
    today = T0.replace(hour=0)
    yesterday = today - timedelta(days=1)
    store.insert_entries([entry(1, pid="P-OLD", ts=yesterday + timedelta(hours=9)),
                          entry(2, pid="P-OLD", ts=today + timedelta(hours=8)),
                          entry(3, pid="P-NEW", ts=today + timedelta(hours=9)),
                          entry(4, pid="P-NEW", ts=today + timedelta(hours=10)),
                          entry(1, site="s2", pid="P-S2", ts=yesterday),
                          entry(5, pid="P-S2", ts=today + timedelta(hours=11)),
                          entry(6, pid=None, ts=today + timedelta(hours=12))], T0)
    assert store.first_seen_passes(today, today + timedelta(days=1)) == ["P-NEW"]
    assert store.first_seen_passes(today, today + timedelta(days=1), site="s1") == ["P-NEW", "P-S2"]
    assert store.first_seen_passes(yesterday, today) == ["P-OLD", "P-S2"]


def test_registry_import_adds_and_replaces(store: Store) -> None:
    def issued(pid: str, name: str, hh: str | None = None) -> IssuedPass:
        return IssuedPass(pid, "green", hh, name, "0" * 64, 1_700_000_000, 1_800_000_000, "a" * 16)

    assert store.import_registry([issued("P-2", "Li*"), issued("P-1", "Wang*", "9-23-301")]) == 2
    assert store.import_registry([issued("P-2", "Zhao*"), issued("P-3", "Sun*")]) == 2
    assert store.registry() == [issued("P-1", "Wang*", "9-23-301"), issued("P-2", "Zhao*"),
                                issued("P-3", "Sun*")]


def test_purge_deletes_old_entries_and_logs_it(store: Store) -> None:
    store.insert_entries([entry(1, ts=T0 - timedelta(days=30)), entry(2, ts=T0 - timedelta(days=29)),
                          entry(3, ts=T0), entry(5, ts=T0)], T0)
    now = T0 + timedelta(hours=1)
    assert store.purge(T0 - timedelta(days=28), now=now) == 2
    assert store.count_entries() == 2
    assert store.purge(T0 - timedelta(days=28), now=now + timedelta(minutes=1)) == 0
    assert store.purged_between(now, now + timedelta(hours=1)) == 2
    assert store.purged_between(T0, now) == 0
    assert gaps_of(store) == [(4, 4)]  # seq bookkeeping outlives the entries
    assert store.insert_entries([entry(4)], now) == 1
    assert store.gaps() == []


def test_purge_also_drops_old_dead_letters(store: Store) -> None:
    store.insert_dead_letters([DeadLetter(T0 - timedelta(days=30), "t", "bad", b"old"),
                               DeadLetter(T0, "t", "bad", b"new")])
    store.purge(T0 - timedelta(days=28), now=T0)
    assert [d.payload for d in store.dead_letters()] == [b"new"]


def test_trace_log_is_kept_oldest_first(store: Store) -> None:
    store.log_trace("alice", '{"pid": "P-1"}', T0 + timedelta(minutes=2))
    store.log_trace("bob", '{"hh": "9-23-301"}', T0)
    store.log_trace("carol", '{"kiosk": "gate-north"}', T0 + timedelta(minutes=2))
    assert store.trace_log() == [(T0, "bob", '{"hh": "9-23-301"}'),
                                 (T0 + timedelta(minutes=2), "alice", '{"pid": "P-1"}'),
                                 (T0 + timedelta(minutes=2), "carol", '{"kiosk": "gate-north"}')]


def test_two_writers_with_overlapping_batches_store_each_entry_once(opener: Callable[[], Store]) -> None:
    pairs = [entry(seq, kiosk=f"k{seq % 3}") for seq in range(1, 601)]
    ranges = [(0, 400), (200, 600)]
    news: list[int] = []
    errors: list[BaseException] = []
    with opener() as first, opener() as second:
        def write(store: Store, lo: int, hi: int) -> None:
            try:
                chunk = pairs[lo:hi]
                random.Random(lo).shuffle(chunk)
                for start in range(0, len(chunk), 50):
                    news.append(store.insert_entries(chunk[start:start + 50], T0))
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=write, args=(first, *ranges[0])),
                   threading.Thread(target=write, args=(second, *ranges[1])),
                   threading.Thread(target=write, args=(first, *ranges[1]))]  # same store, two threads
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert errors == []
        assert sum(news) == 600
        assert first.count_entries() == 600
        # seq % 3 spreads seqs 1..600 over three kiosks, so each misses the others' seqs: k0 has 200 gaps
        # (1..2 to 598..599), k1 199 (2..3 to 596..597), k2 200 (1..1 to 597..598)
        assert len(second.gaps()) == 599
        assert second.seq_conflicts() == []


def test_reopening_keeps_the_data_and_the_schema(opener: Callable[[], Store]) -> None:
    with opener() as store:
        store.insert_entries([entry(1), entry(3)], T0)
    with opener() as store:
        assert store.count_entries() == 2
        assert gaps_of(store) == [(2, 2)]


def test_a_failure_inside_a_batch_writes_nothing(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object) -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(store, "_advance_seqs", broken)  # fails after the entries went in
    with pytest.raises(RuntimeError, match="fire"):
        store.insert_entries([entry(1), entry(2)], T0)
    monkeypatch.undo()
    assert store.count_entries() == 0
    assert store.insert_entries([entry(1), entry(3)], T0) == 2
    assert gaps_of(store) == [(2, 2)]


def test_sqlite_is_durable_wal(tmp_path: Path) -> None:
    with SqliteStore(tmp_path / "c.sqlite") as store:
        store.insert_entries([entry(1)], T0)
        assert store._writer.execute("PRAGMA synchronous").fetchone() == (2,)  # FULL
    with sqlite3.connect(tmp_path / "c.sqlite") as other:
        assert other.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert other.execute("SELECT count(*) FROM entries").fetchone() == (1,)
    other.close()


def test_naive_times_are_refused(store: Store) -> None:
    with pytest.raises(ValueError, match="naive"):
        store.entries_between(datetime(2026, 1, 1), T0)


def test_a_closed_store_raises_store_error(opener: Callable[[], Store]) -> None:
    store = opener()
    store.close()
    store.close()
    with pytest.raises(StoreError, match="closed"):
        store.count_entries()


def test_a_dropped_postgres_connection_raises_then_reconnects(postgres_dsn: str) -> None:
    import psycopg

    with fresh_database(postgres_dsn) as dsn, open_store("postgres", dsn=dsn) as store:
        store.insert_entries([entry(1)], T0)
        with psycopg.connect(dsn, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                          " WHERE datname = current_database() AND pid <> pg_backend_pid()")
        with pytest.raises(StoreError, match="postgres"):
            store.insert_entries([entry(2)], T0)
        assert store.insert_entries([entry(2)], T0) == 1
        assert store.count_entries() == 2


def test_sqlite_errors_are_store_errors(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="sqlite"):
        open_store("sqlite", path=tmp_path)  # a directory
    with pytest.raises(ValueError, match="dsn"):
        open_store("postgres")


def test_plan_seqs_splits_gaps_and_finds_reseen_seqs() -> None:
    plan = plan_seqs(10, [(3, 8)], [12, 5, 3, 2, 5, 15])
    assert (plan.top, plan.drop, plan.reseen) == (15, [3], [2])
    assert plan.add == [(4, 4), (6, 8), (11, 11), (13, 14)]


@given(moment=st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(9999, 12, 30),
                           timezones=st.sampled_from([UTC, timezone(timedelta(hours=8)),
                                                      timezone(timedelta(hours=-5, minutes=-30))])))
def test_text_times_are_utc_fixed_width_and_sort_as_time(moment: datetime) -> None:
    text = to_text_time(moment)
    assert len(text) == 27 and text.endswith("Z")
    assert datetime.fromisoformat(text) == moment
    later = to_text_time(moment + timedelta(microseconds=1))
    assert later > text
    assert check_aware(moment) == moment and check_aware(moment).utcoffset() == timedelta(0)


def test_users_are_added_once_changed_and_audited_in_one_transaction(store: Store) -> None:
    assert store.add_user("wang", "guard", "$argon2id$h1", by="cli:root", at=T0)
    assert not store.add_user("wang", "admin", "$argon2id$h2", by="cli:root", at=T0)
    assert store.user("nobody") is None
    later = T0 + timedelta(minutes=5)
    assert store.update_user("wang", by="cli:root", at=later, password_hash="$argon2id$h3", role="office")
    assert store.update_user("wang", by="admin", at=later + timedelta(seconds=1), disabled=True)
    assert not store.update_user("nobody", by="cli:root", at=later, disabled=True)
    wang = store.user("wang")
    assert wang is not None
    assert (wang.role, wang.password_hash, wang.disabled) == ("office", "$argon2id$h3", True)
    assert (wang.created, wang.updated) == (T0, later + timedelta(seconds=1))
    assert [u.name for u in store.users()] == ["wang"]
    assert [(a.who, a.action, a.detail) for a in store.audit_log()] == [
        ("admin", "user.disable", "wang"),
        ("cli:root", "user.role", "wang role=office"),
        ("cli:root", "user.passwd", "wang"),
        ("cli:root", "user.add", "wang role=guard"),
    ]
    with pytest.raises(ValueError, match="role"):
        store.add_user("li", "root", "h", by="cli:root", at=T0)  # type: ignore[arg-type]


def test_web_sessions_open_expire_and_close(store: Store) -> None:
    hour = timedelta(hours=1)
    store.open_web_session("a" * 64, "wang", at=T0, expires=T0 + hour)
    store.open_web_session("b" * 64, "wang", at=T0, expires=T0 + 2 * hour)
    store.open_web_session("c" * 64, "li", at=T0, expires=T0 + hour)
    assert store.web_session_user("a" * 64, now=T0) == "wang"
    assert store.web_session_user("a" * 64, now=T0 + hour) is None  # expired
    assert store.web_session_user("d" * 64, now=T0) is None
    assert store.close_web_sessions(session_hash="c" * 64) == 1
    assert store.web_session_user("c" * 64, now=T0) is None
    assert store.close_web_sessions(user="wang") == 2
    assert store.web_session_user("b" * 64, now=T0) is None
    with pytest.raises(ValueError, match="session_hash or user"):
        store.close_web_sessions()


def test_failed_sign_ins_are_counted_per_key_and_forgotten(store: Store) -> None:
    store.signin_failed(["address:a", "user:wang"], at=T0, forget_before=T0)
    store.signin_failed(["user:wang"], at=T0 + timedelta(seconds=10), forget_before=T0)
    found = store.signin_failures(["user:wang", "address:a", "user:li"], since=T0)
    assert found == {"user:wang": [T0, T0 + timedelta(seconds=10)], "address:a": [T0], "user:li": []}
    assert store.signin_failures(["user:wang"], since=T0 + timedelta(seconds=5))["user:wang"] == [
        T0 + timedelta(seconds=10)]
    store.signin_failed(["user:li"], at=T0 + timedelta(seconds=20), forget_before=T0 + timedelta(seconds=5))
    assert store.signin_failures(["address:a"], since=T0 - timedelta(days=1)) == {"address:a": []}
    store.signin_succeeded(["user:wang"])
    assert store.signin_failures(["user:wang", "user:li"], since=T0)["user:wang"] == []


def test_the_audit_log_reads_newest_first_and_limited(store: Store) -> None:
    for n in range(5):
        store.audit("wang", "signin", f"from 10.0.0.{n}", T0 + timedelta(seconds=n))
    log = store.audit_log(limit=3)
    assert [a.detail for a in log] == ["from 10.0.0.4", "from 10.0.0.3", "from 10.0.0.2"]
    assert log[0].at == T0 + timedelta(seconds=4) and log[0].at.tzinfo is not None
