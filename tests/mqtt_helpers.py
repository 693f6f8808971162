"""MQTT test helpers: a recording subscriber, a one-shot publisher, and the exactly-once check."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from checkpoint.entry import Entry
from checkpoint.topics import topics
from kiosk.mqtt.local_broker import LocalBroker

T = topics("s1", "gate-north")


def wait_for(check: Callable[[], object], timeout_s: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


class Observer:
    """A test subscriber that records what arrives (optionally in a session that survives restarts)."""

    def __init__(self, broker: LocalBroker, topic: str = "checkpoint/#", *, client_id: str = "observer",
                 persistent: bool = False, username: str | None = None, password: str | None = None) -> None:
        self.messages: list[tuple[str, bytes, bool]] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        if username is not None:
            self.client.username_pw_set(username, password)
        self.client.reconnect_delay_set(1, 1)
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(topic, qos=1)
        self.client.on_subscribe = lambda c, u, mid, rcs, p: self._subscribed.set()
        self.client.on_message = self._on_message
        props = None
        if persistent:
            props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            props.SessionExpiryInterval = 300
        # clean_start=False even the first time: mosquitto 2.0.11 does not persist a session begun clean
        self.client.connect(broker.host, broker.port, clean_start=not persistent, properties=props)
        self.client.loop_start()
        assert self._subscribed.wait(5), "observer did not subscribe"

    def _on_message(self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.messages.append((message.topic, bytes(message.payload), bool(message.retain)))

    def on(self, topic: str) -> list[bytes]:
        with self._lock:
            return [payload for t, payload, _ in self.messages if t == topic]

    def entries(self, topic: str = T.entry) -> list[Entry]:
        return [Entry.model_validate_json(p) for p in self.on(topic)]

    def json(self, topic: str) -> list[dict[str, Any]]:
        return [json.loads(p) for p in self.on(topic)]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def publish(broker: LocalBroker, topic: str, payload: bytes | str, *, retain: bool = False,
            username: str | None = None, password: str | None = None) -> ReasonCode:
    """Publish one QoS 1 message and return the PUBACK's reason code."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    if username is not None:
        client.username_pw_set(username, password)
    acked: list[ReasonCode] = []
    client.on_publish = lambda c, u, mid, rc, p: acked.append(rc)
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        client.publish(topic, payload, qos=1, retain=retain)
        wait_for(lambda: acked, 5, "PUBACK")
    finally:
        client.disconnect()
        client.loop_stop()
    return acked[0]


def assert_complete(observer: Observer, count: int, topic: str = T.entry) -> None:
    """Every seq 1..count arrived, first arrivals in seq order, duplicates only as the same id."""
    entries = observer.entries(topic)
    first: dict[int, str] = {}
    order: list[int] = []
    for entry in entries:
        if entry.seq not in first:
            first[entry.seq] = entry.id
            order.append(entry.seq)
        assert first[entry.seq] == entry.id, "one seq, two ids"
    assert order == list(range(1, count + 1))
    assert len({e.id for e in entries}) == count


