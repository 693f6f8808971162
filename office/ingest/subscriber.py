"""MQTT v5 entries, statuses and alerts into the store, each acknowledged only after it is committed.

Delivery. One paho client with a stable client id and a persistent session (`clean_start=False`,
Session Expiry), QoS 1 and `manual_ack=True`. The client id is the broker username (`broker.client_id`):
the broker binds every client id to its user, so no other user can take this session over. Its network
thread only queues each message; the `ingest` worker takes up to `batch_size` of them (or what
`batch_ms` brings), has its writer validate them and write them to the store (office/ingest/writer.py:
in this thread, or in a child process), and only then acknowledges them. A crash before the commit
means no PUBACK, so the broker redelivers from the session, and inserts are idempotent by entry id. A
failing store is retried with backoff, nothing acknowledged, while the process stays up.

Flow control. With manual acks the broker keeps at most Receive Maximum (a CONNECT property) messages
unacknowledged; without it mosquitto allows only `max_inflight_messages` (20), and batches could never
fill. We ask for two batches, so one fills while the other commits.

Acks and reconnects. A PUBACK names a packet id, which is only meaningful on the connection the message
came on: after a reconnect the broker resends unacknowledged messages and may reuse ids. Each message is
tagged with its connection's generation and acknowledged only if that connection is still the current
one (paho's `ack` merely queues a packet and wakes the network thread, so calling it from the worker or
the writer's results thread is safe); the rest come again and are stored once.

Subscriptions. Entries and alerts come through the shared subscriptions `$share/{group}/…`, so several
collectors split them. Retained messages are never sent to a shared subscription (MQTT v5 §4.8.2), and a
kiosk's current status is exactly its retained `…/status` (or its last will), so every collector also
subscribes to `checkpoint/v1/+/+/status` without sharing: each one sees every status, and the current
one at every (re)subscribe. Statuses are few, and recording one twice changes nothing.

Broker restarts. mosquitto 2.0 keeps a session's queued messages over a restart, but not its shared
subscriptions: until the collector has subscribed again, entries have no subscriber, and the broker
answers the kiosk "No matching subscribers" (PUBACK 16) and drops them. A kiosk must treat that code as
not delivered and send the entry again; `ingest.shared = false` (plain subscriptions, which mosquitto
does restore) avoids the window where one collector is enough.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, replace
from functools import partial
from typing import NamedTuple

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from checkpoint.topics import TOPIC_ROOT, KioskKind, shared_subscription
from office.config import BrokerSection, IngestSection
from office.ingest.writer import Writer, Written

log = logging.getLogger(__name__)

UNREACHABLE_LOG_S = 60.0
QOS0_BACKLOG_MAX = 100_000  # QoS 0 messages bypass Receive Maximum; past this backlog they are dropped


class Message(NamedTuple):
    """One received MQTT message as the network thread hands it to the worker."""

    topic: str
    payload: bytes
    mid: int = 0
    qos: int = 1
    generation: int = 0


@dataclass(frozen=True)
class IngestStats:
    """Counters since start (a snapshot)."""

    received: int = 0
    entries: int = 0  # new entries stored
    duplicates: int = 0  # entries already stored (redeliveries)
    statuses: int = 0
    alerts: int = 0
    dead_letters: int = 0
    batches: int = 0
    store_failures: int = 0
    dropped_qos0: int = 0
    open_gaps: int | None = None  # None until first counted


class Ingest:
    """The MQTT client and the `ingest` worker; `start()`, then `close()` after the stop event is set."""

    def __init__(self, broker: BrokerSection, settings: IngestSection, writer: Writer, *,
                 stop: threading.Event | None = None, password: bytes | None = None) -> None:
        self._broker = broker
        self._settings = settings
        self._writer = writer
        self._stop = stop or threading.Event()
        # The network thread appends; the worker is woken only by the first message and by a full batch.
        self._inbox: list[Message] = []
        self._inbox_changed = threading.Condition(threading.Lock())
        self._first_at = 0.0  # when the oldest message in the inbox arrived (monotonic)
        self._lock = threading.Lock()  # generation, acks, stats
        self._generation = 0
        self.connected = False  # the broker connection is up
        self.subscribed = False  # ... and the broker granted this connection's subscriptions
        self.healthy = True  # False while store writes fail
        self._stats = IngestStats()
        self._unreachable_logged = -UNREACHABLE_LOG_S
        self._heartbeat = time.monotonic()
        self._publish_results: dict[int, ReasonCode] = {}
        self._worker = threading.Thread(target=self._run, name="ingest")
        self.client = self._make_client(password)

    # -- the MQTT side (paho's network thread) -------------------------------------------------------

    def _make_client(self, password: bytes | None) -> mqtt.Client:
        cfg = self._broker
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=cfg.client_id, protocol=mqtt.MQTTv5,
                             manual_ack=True)
        client.reconnect_delay_set(cfg.reconnect_min_s, max(cfg.reconnect_min_s, cfg.reconnect_max_s))
        if cfg.username is not None:
            client.username_pw_set(cfg.username, password.decode() if password is not None else None)
        if cfg.tls:
            client.tls_set(ca_certs=str(cfg.ca_file) if cfg.ca_file else None)
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        client.on_publish = self._on_publish
        return client

    def _on_connect(self, client: mqtt.Client, userdata: object, flags: mqtt.ConnectFlags,
                    reason: ReasonCode, properties: Properties | None) -> None:
        if reason.is_failure:
            log.error("broker %s:%d refused the connection: %s", self._broker.host, self._broker.port, reason)
            return
        with self._lock:
            self._generation += 1
            self.connected = True
        log.info("connected to %s:%d as %s (session %s)", self._broker.host, self._broker.port,
                 self._broker.client_id, "resumed" if flags.session_present else "new")
        qos1 = SubscribeOptions(qos=1)
        retained = SubscribeOptions(qos=1, retainHandling=SubscribeOptions.RETAIN_SEND_ON_SUBSCRIBE)
        group, plain = self._settings.group, f"{TOPIC_ROOT}/+/+/"
        kinds: tuple[KioskKind, ...] = ("entry", "alert", "resolution")
        queued = [shared_subscription(kind, group) if self._settings.shared else plain + kind
                  for kind in kinds]
        client.subscribe([*((topic, qos1) for topic in queued), (plain + "status", retained)])

    def _on_connect_fail(self, client: mqtt.Client, userdata: object) -> None:
        if time.monotonic() - self._unreachable_logged >= UNREACHABLE_LOG_S:
            self._unreachable_logged = time.monotonic()
            log.warning("broker %s:%d unreachable; retrying", self._broker.host, self._broker.port)

    def _on_disconnect(self, client: mqtt.Client, userdata: object, flags: mqtt.DisconnectFlags,
                       reason: ReasonCode, properties: Properties | None) -> None:
        with self._lock:
            self._generation += 1  # acks for what the old connection delivered must not go out now
            was, self.connected, self.subscribed = self.connected, False, False
        if was and not self._stop.is_set():
            log.warning("disconnected from the broker (%s); reconnecting", reason)

    def _on_subscribe(self, client: mqtt.Client, userdata: object, mid: int, reasons: list[ReasonCode],
                      properties: Properties | None) -> None:
        refused = [str(r) for r in reasons if r.is_failure]
        if refused:
            log.error("subscriptions refused (check the broker ACL for %s): %s",
                      self._broker.client_id, ", ".join(refused))
        else:
            self.subscribed = True

    def _on_message(self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        try:
            topic = message.topic
        except UnicodeDecodeError:
            topic = "(invalid UTF-8 topic)"
        if message.qos == 0 and len(self._inbox) > QOS0_BACKLOG_MAX:
            with self._lock:
                self._stats = replace(self._stats, dropped_qos0=self._stats.dropped_qos0 + 1)
            return
        received = Message(topic, bytes(message.payload), message.mid, message.qos, self._generation)
        with self._inbox_changed:
            self._inbox.append(received)
            held = len(self._inbox)
            if held == 1:
                self._first_at = time.monotonic()
                self._inbox_changed.notify()
            elif held == self._settings.batch_size:
                self._inbox_changed.notify()

    def _on_publish(self, client: mqtt.Client, userdata: object, mid: int, reason: ReasonCode,
                    properties: Properties) -> None:
        with self._lock:
            self._publish_results[mid] = reason

    # -- the worker ----------------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._handle_gaps()
            while not self._stop.is_set():
                messages = self._take()
                if messages:
                    self._handle(messages)
                self._beat()
            with self._inbox_changed:
                final, self._inbox = self._inbox, []  # arrived before the stop
            for start in range(0, len(final), self._settings.batch_size):
                self._handle(final[start:start + self._settings.batch_size])
        except Exception:
            log.exception("the ingest worker failed; nothing it held was acknowledged")
            raise

    def _take(self) -> list[Message]:
        """Up to batch_size messages, waiting at most batch_ms for a batch to fill (0.2 s for the first)."""
        size = self._settings.batch_size
        with self._inbox_changed:
            if not self._inbox_changed.wait_for(lambda: self._inbox, 0.2):
                return []
            window = self._first_at + self._settings.batch_ms / 1000 - time.monotonic()
            if window > 0:
                self._inbox_changed.wait_for(lambda: len(self._inbox) >= size, window)
            messages, self._inbox = self._inbox[:size], self._inbox[size:]
            if self._inbox:
                self._first_at = time.monotonic()
            return messages

    @property
    def queued(self) -> int:
        """Messages received and not yet handed to the writer."""
        with self._inbox_changed:
            return len(self._inbox)

    def _handle(self, messages: list[Message]) -> None:
        items = [(message.topic, message.payload) for message in messages]
        self._writer.submit(items, done=partial(self._written, messages), failed=self._failed)

    def _handle_gaps(self) -> None:
        self._writer.submit([], done=partial(self._written, []), failed=self._failed)

    def _written(self, messages: list[Message], written: Written | None) -> None:
        """Acknowledge a committed batch and count it (from the worker or the writer's results thread)."""
        if written is None:
            return  # stopped while the store was failing: nothing acknowledged, the broker keeps it all
        with self._lock:
            self.healthy = True
        self._ack(messages)
        with self._lock:
            s = self._stats
            self._stats = replace(
                s, received=s.received + len(messages), entries=s.entries + written.new,
                duplicates=s.duplicates + written.duplicates, statuses=s.statuses + written.statuses,
                alerts=s.alerts + written.alerts, dead_letters=s.dead_letters + written.dead_letters,
                batches=s.batches + (1 if messages else 0),
                open_gaps=s.open_gaps if written.open_gaps is None else written.open_gaps,
            )

    def _failed(self) -> None:
        with self._lock:
            self.healthy = False
            self._stats = replace(self._stats, store_failures=self._stats.store_failures + 1)
        self._beat()

    def _ack(self, messages: list[Message]) -> None:
        with self._lock:
            current = self._generation if self.connected else -1
            for message in messages:
                if message.qos > 0 and message.generation == current:
                    self.client.ack(message.mid, message.qos)

    def _beat(self) -> None:
        self._heartbeat = time.monotonic()

    # -- the service's side --------------------------------------------------------------------------

    def start(self) -> None:
        """Start the worker, then connect (in the background: an absent broker is retried)."""
        cfg = self._broker
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = cfg.session_expiry_s
        props.ReceiveMaximum = self._settings.receive_maximum
        self._worker.start()
        # clean_start=False even the first time: mosquitto 2.0.11 does not persist a session begun clean.
        self.client.connect_async(cfg.host, cfg.port, keepalive=cfg.keepalive_s, clean_start=False,
                                  properties=props)
        self.client.loop_start()

    def close(self, timeout_s: float = 10.0) -> None:
        """Stop: the worker commits and acknowledges what it holds, then the client disconnects."""
        self._stop.set()
        if self._worker.is_alive() or self._worker.ident is not None:
            self._worker.join(timeout_s)
            if self._worker.is_alive():
                log.warning("the ingest worker did not stop within %g s", timeout_s)
        if not self._writer.drain(timeout_s):
            log.warning("batches still uncommitted after %g s; they were not acknowledged", timeout_s)
        self.client.disconnect()
        self.client.loop_stop()
        s = self.stats()
        log.info("ingest stopped: %d messages, %d new entries, %d duplicates, %d statuses, %d alerts, "
                 "%d dead letters (client %s)", s.received, s.entries, s.duplicates, s.statuses, s.alerts,
                 s.dead_letters, self._broker.client_id)

    def publish(self, topic: str, payload: bytes, *, timeout_s: float = 10.0) -> bool:
        """Publish at QoS 1, not retained; True once the broker accepted it."""
        info = self.client.publish(topic, payload, qos=1, retain=False)
        try:
            info.wait_for_publish(timeout_s)
        except (RuntimeError, ValueError) as exc:
            log.warning("publish to %s failed: %s", topic, exc)
            return False
        with self._lock:
            reason = self._publish_results.pop(info.mid, None)
        if not info.is_published() or reason is None or reason.is_failure:
            log.warning("publish to %s not acknowledged: %s", topic, reason or "timed out")
            return False
        return True

    @property
    def worker_alive(self) -> bool:
        """Whether the worker thread and the writer run."""
        return self._worker.is_alive() and self._writer.alive

    @property
    def heartbeat(self) -> float:
        """The monotonic time of the last sign that ingest turns: the worker's loop and the writer's work."""
        return min(self._heartbeat, self._writer.progress)

    def stats(self) -> IngestStats:
        """A snapshot of the counters."""
        with self._lock:
            return self._stats
