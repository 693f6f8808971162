"""Sessions on the shipped broker config: a client's id is its user name, so no user takes over another's.

Without that binding any user could connect with another client's id: with clean start the broker
discards that client's session, and with it the entries queued for a collector that is away, although
the kiosks already had their PUBACKs; or it disconnects the client that holds the id.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from mqtt_helpers import wait_for
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from test_broker_acl import NOT_AUTHORIZED, OK, Site, puback

from bench.ingest import entry_payloads
from checkpoint.tomlconfig import ConfigError
from checkpoint.topics import topics
from office.config import OfficeConfig, parse_collector_config
from office.ingest.subscriber import Ingest
from office.ingest.writer import BatchWriter
from office.store.base import Store
from office.store.opening import open_store

NORTH, SOUTH = topics("s1", "gate-north"), topics("s1", "gate-south")
SUCCESS = 0  # PUBACK: delivered to a subscriber (queued in its session), not "No matching subscribers"


class Watched:
    """A connected paho client that records why the broker disconnected it."""

    def __init__(self, site: Site, user: str, *, client_id: str, clean_start: bool = True) -> None:
        self.disconnects: list[str] = []
        connected = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        self.client.username_pw_set(user, site.password(user))
        self.client.reconnect_delay_set(1, 1)
        self.client.on_connect = lambda c, u, f, rc, p: connected.set()
        self.client.on_disconnect = self._on_disconnect
        self.client.connect(site.host, site.port, clean_start=clean_start)
        self.client.loop_start()
        assert connected.wait(5) and self.client.is_connected(), f"{user} could not connect"

    def _on_disconnect(self, client: mqtt.Client, userdata: object, flags: mqtt.DisconnectFlags,
                       reason: ReasonCode, properties: Properties | None) -> None:
        self.disconnects.append(str(reason))

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def quiet(check: Callable[[], object], timeout_s: float) -> None:
    """Wait timeout_s and fail as soon as check() returns something (that must not happen)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = check()
        assert not found, found
        time.sleep(0.02)


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    (tmp_path / "broker").mkdir()
    made = Site(tmp_path / "broker")
    made.broker.start()
    try:
        yield made
    finally:
        made.close()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with open_store("sqlite", path=tmp_path / "office.sqlite") as opened:
        yield opened


def collector_config(site: Site, user: str) -> OfficeConfig:
    return parse_collector_config(
        f'[broker]\nhost = "{site.host}"\nport = {site.port}\nusername = "{user}"\n'
        f'password_file = "{site.pw_file(user)}"\nreconnect_min_s = 1\nreconnect_max_s = 1\n'
        "[ingest]\nbatch_size = 10\nbatch_ms = 20\n")


def start_collector(config: OfficeConfig, store: Store) -> Ingest:
    stop = threading.Event()
    writer = BatchWriter(store, max_payload=config.ingest.max_payload_bytes, stop=stop)
    ingest = Ingest(config.broker, config.ingest, writer, stop=stop, password=config.broker.password())
    ingest.start()
    return ingest


def test_a_kiosk_user_cannot_discard_the_collectors_session(site: Site, store: Store) -> None:
    config = collector_config(site, "collector-1")
    entries = entry_payloads("s1", "gate-north", 4, validate=True)
    kiosk = Watched(site, "s1/gate-north", client_id="s1/gate-north")
    collector = start_collector(config, store)
    try:
        wait_for(lambda: collector.connected, 5, "the collector's connection")
        wait_for(lambda: puback(kiosk.client, NORTH.entry, entries[0]) == SUCCESS, 5, "its subscription")
        wait_for(lambda: store.count_entries() == 1, 5, "the first entry stored")
    finally:
        collector.close()
    for payload in entries[1:]:  # acknowledged to the kiosk, queued in the away collector's session
        assert puback(kiosk.client, NORTH.entry, payload) == SUCCESS

    rival = Watched(site, "s1/gate-south", client_id=config.broker.client_id, clean_start=True)
    assert puback(rival.client, SOUTH.entry) in OK
    rival.close()

    collector = start_collector(config, store)
    try:
        wait_for(lambda: store.count_entries() == 4, 10, "the 3 entries queued while the collector was away")
        assert kiosk.disconnects == []
    finally:
        collector.close()
        kiosk.close()
    assert store.gaps() == []


def test_a_kiosk_cannot_kick_another_off(site: Site) -> None:
    north = Watched(site, "s1/gate-north", client_id="s1/gate-north")
    south = Watched(site, "s1/gate-south", client_id="s1/gate-north", clean_start=True)
    try:
        assert puback(south.client, SOUTH.entry) in OK
        assert puback(north.client, NORTH.entry) in OK
        quiet(lambda: north.disconnects, 1.0)
        assert puback(south.client, NORTH.entry) == NOT_AUTHORIZED  # its rights stay its user's
        assert north.client.is_connected() and south.client.is_connected()
        assert north.disconnects == south.disconnects == []
    finally:
        north.close()
        south.close()


def test_client_id_patterns_mean_the_user_name(tmp_path: Path) -> None:
    """With the client id bound to the user, an ACL written with %c confines a kiosk as %u does."""
    made = Site(tmp_path)
    made.acl.write_text(made.acl.read_text(encoding="utf-8").replace("%u", "%c"), encoding="utf-8")
    made.broker.start()
    try:
        spoof = Watched(made, "s1/gate-south", client_id="s1/gate-north")
        assert puback(spoof.client, NORTH.entry) == NOT_AUTHORIZED
        assert puback(spoof.client, SOUTH.entry) in OK
        spoof.close()
    finally:
        made.close()


def test_collectors_with_their_own_users_share_the_entries(site: Site, store: Store) -> None:
    configs = [collector_config(site, "collector-1"), collector_config(site, "collector-2")]
    assert [c.broker.client_id for c in configs] == ["collector-1", "collector-2"]
    collectors = [start_collector(config, store) for config in configs]
    kiosk = Watched(site, "s1/gate-north", client_id="s1/gate-north")
    try:
        wait_for(lambda: all(c.subscribed for c in collectors), 5, "both collectors subscribed")
        first, *rest = entry_payloads("s1", "gate-north", 20, validate=True)
        wait_for(lambda: puback(kiosk.client, NORTH.entry, first) == SUCCESS, 5, "their subscriptions")
        for payload in rest:
            assert puback(kiosk.client, NORTH.entry, payload) == SUCCESS
        wait_for(lambda: store.count_entries() == 20, 10, "all entries")
        assert all(c.connected and c.stats().entries > 0 for c in collectors)
    finally:
        kiosk.close()
        for collector in collectors:
            collector.close()


# -- the office config: the collector's client id is its broker user name ------------------------------


def test_collector_client_id_is_its_user_name() -> None:
    assert parse_collector_config('[broker]\nusername = "collector-2"\n').broker.client_id == "collector-2"
    same = '[broker]\nusername = "collector-2"\nclient_id = "collector-2"\n'
    assert parse_collector_config(same).broker.client_id == "collector-2"
    assert parse_collector_config('[broker]\nclient_id = "sim"\n').broker.client_id == "sim"  # no users
    assert OfficeConfig().broker.client_id == "collector-1"
    with pytest.raises(ConfigError) as caught:
        parse_collector_config('[broker]\nusername = "collector-2"\nclient_id = "collector-1"\n',
                               source="office.toml")
    assert len(caught.value.problems) == 1 and "\n" not in caught.value.problems[0]
    assert caught.value.problems[0].startswith("broker.client_id (line 3): got 'collector-1'; expected ")
    assert "'collector-2'" in caught.value.problems[0]
