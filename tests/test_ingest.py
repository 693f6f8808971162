"""Collector config, message classification, ack-after-commit ingest, the daily schedule and the service."""

from __future__ import annotations

import argparse
import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from mqtt_helpers import publish, wait_for
from paho.mqtt.enums import MQTTErrorCode

from bench.ingest import Fleet, collector_config, entry_payloads
from checkpoint.entry import Alert, Entry, Resolution, Status
from checkpoint.tomlconfig import ConfigError
from checkpoint.topics import topics
from kiosk.mqtt.local_broker import LocalBroker
from office.cli import run as run_cmd
from office.config import OfficeConfig, load_office_config, parse_collector_config
from office.ingest.service import Collector, Schedule, due_days, report_day
from office.ingest.subscriber import Ingest, Message
from office.ingest.writer import BatchWriter, classify
from office.store.base import Store
from office.store.opening import open_store

ROOT = Path(__file__).resolve().parents[1]
T = topics("s1", "gate-north")
NOW = datetime(2026, 3, 19, 8, 0, tzinfo=UTC)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with open_store("sqlite", path=tmp_path / "office.sqlite") as opened:
        yield opened


def good(count: int = 1, *, kiosk: str = "gate-north", first_seq: int = 1) -> list[bytes]:
    return entry_payloads("s1", kiosk, count, first_seq=first_seq, validate=True)


# -- config -------------------------------------------------------------------------------------------


def test_example_config_parses_with_documented_defaults() -> None:
    config = load_office_config(ROOT / "config" / "office.example.toml")
    defaults = OfficeConfig()
    assert config.ingest == defaults.ingest and config.retention == defaults.retention
    assert config.report == defaults.report and config.store == defaults.store
    assert config.broker.client_id == "collector-1" and config.broker.session_expiry_s == 7 * 86_400
    assert config.ingest.receive_maximum == 1000
    assert set(config.sites) == {"s1"}


def test_config_errors_name_key_and_line() -> None:
    text = '[broker]\nport = 0\n\n[ingest]\nbatch_sise = 10\n\n[report]\ntime = "24:00"\n' \
           'timezone = "Mars/Olympus"\n\n[retention]\ndays = 0\n\n[store]\nkind = "postgres"\n'
    with pytest.raises(ConfigError) as caught:
        parse_collector_config(text, source="c.toml")
    problems = "\n".join(caught.value.problems)
    assert "broker.port (line 2)" in problems
    assert "ingest.batch_sise (line 5): unknown key" in problems
    assert "report.time (line 8)" in problems and "report.timezone (line 9)" in problems
    assert "retention.days (line 12)" in problems
    assert "dsn_file or store.dsn_credential" in problems


def test_relative_paths_and_secrets(tmp_path: Path) -> None:
    (tmp_path / "dsn").write_text("host=db user=collector password=s3cret\n")
    (tmp_path / "pw").write_text("hunter2\n")
    (tmp_path / "c.toml").write_text('[broker]\nusername = "collector-1"\npassword_file = "pw"\n'
                                     '[store]\nkind = "postgres"\ndsn_file = "dsn"\n'
                                     '[sites.s1]\nhmac_key_file = "k"\n')
    config = load_office_config(tmp_path / "c.toml")
    assert config.store.dsn() == "host=db user=collector password=s3cret"
    assert config.broker.password() == b"hunter2"
    assert config.sites["s1"].hmac_key_file == tmp_path / "k"


def test_run_command_reports_config_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "c.toml").write_text("[ingest]\nbatch_size = 0\n")
    parser = argparse.ArgumentParser()
    run_cmd.add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["run", "--config", str(tmp_path / "c.toml")])
    assert args.handler(args) == 2
    assert "ingest.batch_size (line 2)" in capsys.readouterr().err


# -- classification -----------------------------------------------------------------------------------


def test_classify_accepts_valid_and_dead_letters_the_rest() -> None:
    entry, other = good(2)
    status = Status(state="online", ts=NOW, camera="ok").to_json()
    alert = Alert(kind="fever", ts=NOW, detail="38.1").to_json()
    wrong_schema = entry.replace(b"checkpoint.entry/1", b"checkpoint.entry/2")
    wrong_type = entry.replace(b'"seq":1', b'"seq":"1"')
    items = [
        (T.entry, entry), (T.entry, entry), (T.entry, other),
        (T.status, status), (T.alert, alert),
        (T.entry, b"{not json"), (T.entry, b"\xff\xfe\x00junk"), (T.entry, b"[1, 2]"),
        (T.entry, wrong_schema), (T.entry, wrong_type),
        (topics("s1", "gate-south").entry, entry),
        (T.entry, b" " * 20_000),
        (T.status, b'{"state":"sleeping"}'), (T.alert, b'{"kind":"fever"}'),
        ("checkpoint/v1/s 1/gate/entry", entry),
    ]
    batch = classify(items, max_payload=16_384, received_at=NOW)
    assert [e.seq for e, _ in batch.entries] == [1, 2] and batch.in_batch_duplicates == 1
    assert batch.statuses == [("s1", "gate-north", Status(state="online", ts=NOW, camera="ok"))]
    assert [a.alert.kind for a in batch.alerts] == ["fever"]
    reasons = [d.reason.split(":")[0] for d in batch.dead]
    assert reasons == ["malformed entry", "malformed entry", "malformed entry", "wrong_schema entry",
                       "invalid entry", "topic_mismatch entry", "oversized entry", "invalid status",
                       "invalid alert", "unknown_topic"]
    assert batch.dead[0].payload == b"{not json" and len(batch.dead[6].payload) == 16_384
    assert "seq" in batch.dead[4].reason and "gate-south" in batch.dead[5].reason


# -- ingest against a real broker ---------------------------------------------------------------------


def make_ingest(tmp_path: Path, broker: LocalBroker, store: Store, *, batch_size: int = 50,
                client_id: str = "collector-1") -> Ingest:
    config = load_office_config(collector_config(tmp_path / client_id, broker, client_id=client_id,
                                                    batch_size=batch_size, batch_ms=20))
    stop = threading.Event()
    writer = BatchWriter(store, max_payload=config.ingest.max_payload_bytes, stop=stop)
    return Ingest(config.broker, config.ingest, writer, stop=stop)


def test_ingest_stores_entries_statuses_alerts_and_dead_letters(tmp_path: Path, store: Store) -> None:
    with LocalBroker() as broker:
        publish(broker, T.status, Status(state="online", ts=NOW, camera="ok").to_json(), retain=True)
        ingest = make_ingest(tmp_path, broker, store)
        ingest.start()
        try:
            wait_for(lambda: ingest.connected, 5, "connected")
            wait_for(lambda: ingest.stats().statuses == 1, 5, "the retained status")
            for payload in good(5):
                publish(broker, T.entry, payload)
            publish(broker, T.alert, Alert(kind="fault", ts=NOW, detail="camera").to_json())
            publish(broker, T.entry, b"garbage")
            wait_for(lambda: ingest.stats().received >= 8, 5, "all messages")
        finally:
            ingest.close()
        assert store.count_entries() == 5 and store.gaps() == []
        assert [s.state for s in store.kiosk_states()] == ["online"]
        alerts = store.alerts_between(NOW - timedelta(1), NOW + timedelta(1))
        assert [a.alert.detail for a in alerts] == ["camera"]
        assert [d.payload for d in store.dead_letters()] == [b"garbage"]
        stats = ingest.stats()
        assert (stats.entries, stats.dead_letters, stats.alerts, stats.open_gaps) == (5, 1, 1, 0)


def test_no_ack_before_commit_and_retry_while_the_store_fails(tmp_path: Path, store: Store) -> None:
    committed: list[float] = []
    acked: list[tuple[float, int]] = []
    failures = [3]
    real_insert = store.insert_entries

    def flaky(entries: object, received_at: datetime) -> int:
        if failures[0] > 0:
            failures[0] -= 1
            raise OSError("disk on fire")
        new = real_insert(entries, received_at)  # type: ignore[arg-type]
        committed.append(time.monotonic())
        return new

    store.insert_entries = flaky  # type: ignore[method-assign]
    with LocalBroker() as broker:
        ingest = make_ingest(tmp_path, broker, store)
        real_ack = ingest.client.ack

        def ack(mid: int, qos: int) -> MQTTErrorCode:
            acked.append((time.monotonic(), mid))
            return real_ack(mid, qos)

        ingest.client.ack = ack  # type: ignore[method-assign]
        ingest.start()
        try:
            wait_for(lambda: ingest.connected, 5, "connected")
            for payload in good(3):
                publish(broker, T.entry, payload)
            wait_for(lambda: not ingest.healthy, 5, "the store failure")
            assert acked == []
            wait_for(lambda: store.count_entries() == 3, 10, "the retried commit")
            wait_for(lambda: len(acked) == 3, 5, "acks")
        finally:
            ingest.close()
        assert ingest.healthy and ingest.stats().store_failures == 3
        assert min(t for t, _ in acked) >= committed[0]


def test_receive_maximum_is_two_batches(tmp_path: Path, store: Store) -> None:
    gate = threading.Event()
    real_insert = store.insert_entries

    def blocked(entries: object, received_at: datetime) -> int:
        gate.wait(10)
        return real_insert(entries, received_at)  # type: ignore[arg-type]

    store.insert_entries = blocked  # type: ignore[method-assign]
    with LocalBroker() as broker:
        ingest = make_ingest(tmp_path, broker, store, batch_size=10)
        ingest.start()
        try:
            wait_for(lambda: ingest.connected, 5, "connected")
            fleet = Fleet(broker, {T.entry: good(60)}).start()
            time.sleep(1.0)
            held = ingest.queued + 10  # one batch is in the blocked commit
            assert held == 20, "the broker sends Receive Maximum (2 x batch_size) unacknowledged messages"
            gate.set()
            fleet.wait(10)
            wait_for(lambda: store.count_entries() == 60, 10, "everything")
            fleet.close()
        finally:
            gate.set()
            ingest.close()


def test_acks_of_an_old_connection_are_not_sent(tmp_path: Path, store: Store) -> None:
    with LocalBroker() as broker:
        ingest = make_ingest(tmp_path, broker, store)
    sent: list[int] = []
    ingest.client.ack = lambda mid, qos: sent.append(mid)  # type: ignore[method-assign,assignment,return-value]
    ingest._generation, ingest.connected = 2, True
    ingest._ack([Message(T.entry, b"", mid=1, generation=1), Message(T.entry, b"", mid=2, generation=2),
                 Message(T.entry, b"", mid=3, qos=0, generation=2)])
    assert sent == [2]


# -- the schedule -------------------------------------------------------------------------------------


def test_due_days() -> None:
    tz = ZoneInfo("Asia/Shanghai")
    at = clock(23, 55)
    before = datetime(2026, 3, 19, 23, 54, tzinfo=tz)
    after = datetime(2026, 3, 19, 23, 56, tzinfo=tz)
    assert due_days(None, before, tz, at) == [date(2026, 3, 18)]
    assert due_days(None, after, tz, at) == [date(2026, 3, 19)]
    assert due_days(date(2026, 3, 18), before, tz, at) == []
    assert due_days(date(2026, 3, 16), after, tz, at) == [date(2026, 3, d) for d in (17, 18, 19)]
    assert len(due_days(date(2025, 1, 1), after, tz, at)) == 8  # a week of catch-up and today
    assert report_day(date(2026, 3, 19), at) == date(2026, 3, 19)
    assert report_day(date(2026, 3, 19), clock(0, 10)) == date(2026, 3, 18)


def test_schedule_makes_missed_reports_once_and_purges(tmp_path: Path, store: Store) -> None:
    tz = ZoneInfo("Asia/Shanghai")
    day = date(2026, 3, 18)
    start = datetime(2026, 3, 18, 9, 0, tzinfo=tz)
    payloads = [*entry_payloads("s1", "gate-north", 3, start=start),
                *entry_payloads("s1", "gate-north", 1, first_seq=4, start=start - timedelta(days=40))]
    store.insert_entries([(Entry.model_validate_json(p), p) for p in payloads], NOW)
    text = (f'[report]\nout_dir = "{tmp_path / "reports"}"\nformats = ["json", "csv"]\n'
            '[sites.s2]\nhmac_key_file = "k"\n')
    config = parse_collector_config(text, base_dir=tmp_path)
    published: list[tuple[str, bytes]] = []
    now = [datetime(2026, 3, 20, 10, 0, tzinfo=tz)]  # down over the 19th's 23:55 and 03:30 of the 20th

    def record(topic: str, payload: bytes) -> bool:
        published.append((topic, payload))
        return True

    def make() -> Schedule:
        return Schedule(config, store, publish=record, now=lambda: now[0])

    schedule = make()
    schedule.state = {"report": "2026-03-17", "purge": "2026-03-19"}
    schedule.tick()
    assert (tmp_path / "reports" / "s1" / f"s1-{day}.json").exists()
    assert (tmp_path / "reports" / "s2" / "s2-2026-03-19.csv").exists()
    s1, s2 = "checkpoint/v1/s1/report", "checkpoint/v1/s2/report"
    assert sorted(t for t, _ in published) == [s1, s1, s2, s2]
    report = json.loads(next(p for t, p in published if t.endswith("s1/report")))
    assert report["date"] == str(day) and report["totals"]["entries"] == 3
    assert store.count_entries() == 3  # the 40-day-old one went
    again = make()
    assert again.state == {"report": "2026-03-19", "purge": "2026-03-20"}
    again.tick()
    assert len(published) == 4


# -- the service --------------------------------------------------------------------------------------


@pytest.mark.parametrize("writer", ["process", "thread"])
def test_service_notifies_systemd_and_stops_cleanly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                    writer: str) -> None:
    address = str(tmp_path / "notify")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(address)
    listener.settimeout(5)
    monkeypatch.setenv("NOTIFY_SOCKET", address)
    with LocalBroker() as broker:
        config = load_office_config(collector_config(tmp_path, broker, writer=writer))
        stop = threading.Event()
        collector = Collector(config, stop=stop)
        threads = {"ingest", "schedule"} | ({"store-results"} if writer == "process" else set())
        thread = threading.Thread(target=collector.run, name="collector-under-test")
        thread.start()
        try:
            got = [listener.recv(100) for _ in range(2)]
            assert got == [b"READY=1", b"WATCHDOG=1"]
            assert {t.name for t in threading.enumerate()} >= threads
            publish(broker, T.entry, good(1)[0])
            ingest = collector.ingest
            assert ingest is not None
            wait_for(lambda: ingest.stats().entries == 1, 5, "the entry")
        finally:
            stop.set()
            thread.join(15)
        assert not thread.is_alive()
        messages = []
        while True:
            try:
                messages.append(listener.recv(100))
            except TimeoutError:
                break
            listener.settimeout(0.2)
        assert messages[-1] == b"STOPPING=1"
        assert not {t.name for t in threading.enumerate()} & threads
    listener.close()
    assert os.environ["NOTIFY_SOCKET"] == address


def test_ingest_stores_each_attention_resolution_once(tmp_path: Path, store: Store) -> None:
    entry_id = Entry.model_validate_json(good(1)[0]).id
    resolution = Resolution(entry_id=entry_id, by="remote", ts=NOW, opened=True, operator="wang").to_json()
    with LocalBroker() as broker:
        ingest = make_ingest(tmp_path, broker, store)
        ingest.start()
        try:
            wait_for(lambda: ingest.connected, 5, "connected")
            publish(broker, T.entry, good(1)[0])
            publish(broker, T.resolution, resolution)
            publish(broker, T.resolution, resolution)  # a redelivery
            publish(broker, T.resolution, b'{"entry_id": "nope"}')
            wait_for(lambda: ingest.stats().received >= 4, 5, "all messages")
        finally:
            ingest.close()
    [stored] = store.resolutions_between(NOW - timedelta(1), NOW + timedelta(1))
    assert (stored.site, stored.kiosk, stored.resolution.entry_id) == ("s1", "gate-north", entry_id)
    ended = stored.resolution
    assert (ended.by, ended.opened, ended.operator) == ("remote", True, "wang")
    assert [d.topic for d in store.dead_letters()] == [T.resolution]
