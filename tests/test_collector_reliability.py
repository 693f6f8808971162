"""The collector on a real mosquitto (the shipped tuning, persistence on): killed, doubled, broker restarted,
fed garbage; every entry stored exactly once. Collectors are `kiosk-office run` processes on SQLite.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from mqtt_helpers import Observer, wait_for
from proc_helpers import children, running

from bench.ingest import (
    Fleet,
    collector_command,
    collector_config,
    entry_payloads,
    fleet_streams,
    shipped_broker_config,
    start_collector,
    stop_process,
    wait_log,
)
from checkpoint.entry import Alert, utc_now
from checkpoint.topics import topics
from kiosk.mqtt.local_broker import LocalBroker
from office.store.base import Store
from office.store.opening import open_store

pytestmark = pytest.mark.timeout(90)
KIOSKS, PER_KIOSK = 10, 2000
STOPPED = re.compile(r"ingest stopped: (\d+) messages, (\d+) new entries, (\d+) duplicates")


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[LocalBroker]:
    persist = tmp_path / "broker"
    persist.mkdir()
    with LocalBroker(persistence_dir=persist, extra_config=shipped_broker_config()) as started:
        yield started


@pytest.fixture(scope="module")
def command() -> list[str]:
    return collector_command()


class Collectors:
    """Collector processes sharing one SQLite file, and a reader of that file."""

    def __init__(self, tmp: Path, broker: LocalBroker, command: list[str]) -> None:
        self.tmp, self.broker, self.command = tmp, broker, command
        self.db = tmp / "office.sqlite"
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.store: Store | None = None

    def log(self, client_id: str) -> Path:
        return self.tmp / client_id / f"{client_id}.log"

    def start(self, client_id: str = "collector-1", *, shared: bool = True) -> subprocess.Popen[bytes]:
        config = collector_config(self.tmp / client_id, self.broker, client_id=client_id, db=self.db,
                                  shared=shared)
        log = self.log(client_id)
        offset = log.stat().st_size if log.exists() else 0
        proc = self.procs[client_id] = start_collector(self.command, config, log)
        wait_log(log, "connected to", after=offset)
        if self.store is None:
            self.store = open_store("sqlite", path=self.db)
        return proc

    def count(self) -> int:
        assert self.store is not None
        return self.store.count_entries()

    def stop(self, client_id: str) -> tuple[int, int, int]:
        """SIGTERM; (messages, new entries, duplicates) from its last 'ingest stopped' line."""
        assert stop_process(self.procs.pop(client_id)) == 0
        found = STOPPED.findall(self.log(client_id).read_text())
        assert found, self.log(client_id).read_text()[-2000:]
        messages, new, duplicates = (int(n) for n in found[-1])
        return messages, new, duplicates

    def close(self) -> None:
        for proc in self.procs.values():
            proc.kill()
            proc.wait()
        if self.store is not None:
            self.store.close()


@pytest.fixture
def collectors(tmp_path: Path, broker: LocalBroker, command: list[str]) -> Iterator[Collectors]:
    group = Collectors(tmp_path, broker, command)
    try:
        yield group
    finally:
        group.close()


def assert_exactly_once(store: Store, total: int) -> None:
    assert store.count_entries() == total
    everything = store.entries_between(datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC))
    ids = [e.id for e in everything]
    assert len(ids) == len(set(ids)) == total
    assert store.gaps() == []


def test_collector_killed_mid_stream_loses_and_doubles_nothing(collectors: Collectors,
                                                               broker: LocalBroker) -> None:
    collectors.start()
    fleet = Fleet(broker, fleet_streams(KIOSKS, PER_KIOSK, validate=True)).start()
    try:
        wait_for(lambda: collectors.count() >= 3000, 30, "a first part stored")
        killed = collectors.procs.pop("collector-1")
        orphans = children(killed.pid)  # the store writer: it commits what it holds, then exits
        assert orphans, "the collector runs its store writer as a child process"
        killed.send_signal(signal.SIGKILL)
        killed.wait(10)
        wait_for(lambda: not any(running(pid) for pid in orphans), 10, "the orphaned writer to exit")
        at_kill = collectors.count()
        collectors.start()
        fleet.wait(60)
        wait_for(lambda: collectors.count() == KIOSKS * PER_KIOSK, 60, "every entry stored")
    finally:
        fleet.close()
    _, new, _ = collectors.stop("collector-1")
    assert collectors.store is not None
    assert_exactly_once(collectors.store, KIOSKS * PER_KIOSK)
    assert at_kill < KIOSKS * PER_KIOSK and new == KIOSKS * PER_KIOSK - at_kill


def test_two_collectors_share_the_stream(collectors: Collectors, broker: LocalBroker) -> None:
    collectors.start("collector-1")
    collectors.start("collector-2")
    fleet = Fleet(broker, fleet_streams(KIOSKS, 1000)).start()
    try:
        fleet.wait(60)
        wait_for(lambda: collectors.count() == KIOSKS * 1000, 60, "every entry stored")
    finally:
        fleet.close()
    first = collectors.stop("collector-1")
    second = collectors.stop("collector-2")
    assert collectors.store is not None
    assert_exactly_once(collectors.store, KIOSKS * 1000)
    assert first[1] > 0 and second[1] > 0, f"both took part: {first}, {second}"
    assert first[1] + second[1] == KIOSKS * 1000 and first[2] == second[2] == 0


@pytest.mark.parametrize("shared", [True, False], ids=["shared-retrying-kiosks", "plain-subscription"])
def test_broker_restart_during_ingest_loses_nothing(collectors: Collectors, broker: LocalBroker,
                                                    shared: bool) -> None:
    """mosquitto 2.0 does not restore shared subscriptions after a restart: until the collector subscribes
    again it answers kiosks "No matching subscribers" and drops the entry. Kiosks that send such entries
    again lose nothing; with plain subscriptions (`ingest.shared = false`) there is no such window.
    """
    collectors.start(shared=shared)
    fleet = Fleet(broker, fleet_streams(KIOSKS, PER_KIOSK), retry_unrouted=shared).start()
    try:
        wait_for(lambda: collectors.count() >= 3000, 30, "a first part stored")
        broker.stop()
        broker.start()
        fleet.wait(60)
        wait_for(lambda: collectors.count() == KIOSKS * PER_KIOSK, 60, "every entry stored")
    finally:
        fleet.close()
    log = collectors.log("collector-1").read_text()
    assert "disconnected from the broker" in log and "(session resumed)" in log
    collectors.stop("collector-1")
    assert collectors.store is not None
    assert_exactly_once(collectors.store, KIOSKS * PER_KIOSK)


def garbage(count: int) -> dict[str, list[bytes]]:
    """`count` bad messages of many kinds, by topic."""
    t, other = topics("s1", "k00"), topics("s1", "k01")
    entry = entry_payloads("s1", "k00", 1, first_seq=10**6)[0]
    kinds: list[tuple[str, bytes]] = [
        (t.entry, b"{not json"), (t.entry, entry.replace(b'"seq":', b'"seq":"x", "s":')),
        (t.entry, entry.replace(b'"body_c":36.6', b'"body_c":"hot"')), (t.entry, b"x" * 40_000),
        (t.entry, entry.replace(b"checkpoint.entry/1", b"checkpoint.entry/9")), (other.entry, entry),
        (t.entry, bytes(range(256))), (t.status, b'{"state":"asleep"}'), (t.alert, b'{"kind":"fire"}'),
        (t.entry, b"null"), ("checkpoint/v1/s1/no such kiosk/entry", entry),
    ]
    out: dict[str, list[bytes]] = {}
    for n in range(count):
        topic, payload = kinds[n % len(kinds)]
        out.setdefault(topic, []).append(payload)
    return out


def test_garbage_is_dead_lettered_and_good_entries_stored(collectors: Collectors,
                                                          broker: LocalBroker) -> None:
    proc = collectors.start()
    good = fleet_streams(4, 500, site="s1")
    bad = garbage(10_000)
    streams = {topic: [*good.get(topic, []), *bad.get(topic, [])] for topic in {*good, *bad}}
    streams[topics("s1", "k02").alert] = [Alert(kind="fault", ts=utc_now(), detail="ok").to_json()]
    fleet = Fleet(broker, streams).start()
    try:
        fleet.wait(60)
        assert collectors.store is not None
        store = collectors.store
        wait_for(lambda: collectors.count() == 2000 and len(store.dead_letters(limit=20_000)) == 10_000, 60,
                 "every message handled")
    finally:
        fleet.close()
    assert proc.poll() is None, "the collector is still running"
    letters = store.dead_letters(limit=20_000)
    reasons = {d.reason.split(":")[0] for d in letters}
    assert reasons == {"malformed entry", "invalid entry", "oversized entry", "wrong_schema entry",
                       "topic_mismatch entry", "invalid status", "invalid alert", "unknown_topic"}
    assert max(len(d.payload) for d in letters) == 16_384
    _, new, _ = collectors.stop("collector-1")
    assert new == 2000
    assert_exactly_once(store, 2000)


def received(observer: Observer, topic: str, expected: int) -> set[int]:
    """The seqs the observer got, once it has `expected` messages (and a moment later, no more)."""
    wait_for(lambda: len(observer.messages) >= expected, 20, f"{expected} messages")
    time.sleep(0.5)
    return {json.loads(p)["seq"] for p in observer.on(topic)}


def test_shipped_broker_config_queues_more_than_mosquittos_default(tmp_path: Path) -> None:
    """An offline persistent-session subscriber gets all 3,000 messages, across a broker restart too."""
    payloads = entry_payloads("s1", "k00", 3000)
    topic = topics("s1", "k00").entry
    for config, expected in ((shipped_broker_config(), 3000), ("", 1000)):
        persist = tmp_path / f"broker-{expected}"
        persist.mkdir()
        broker = LocalBroker(persistence_dir=persist, extra_config=config).start()
        try:
            observer = Observer(broker, "checkpoint/v1/+/+/entry", client_id="offline-sub", persistent=True)
            observer.close()
            fleet = Fleet(broker, {topic: payloads}).start()
            fleet.wait(30)
            fleet.close()
            broker.stop()
            broker.start()
            observer = Observer(broker, "checkpoint/v1/+/+/entry", client_id="offline-sub", persistent=True)
            try:
                got = received(observer, topic, expected)
            finally:
                observer.close()
            assert len(got) == expected, "mosquitto's default max_queued_messages (1000) drops the rest"
        finally:
            broker.stop()
