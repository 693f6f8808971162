"""MQTT v5 entries, statuses and alerts into the store, each acknowledged only after it is committed.

Delivery. One paho client with a stable client id and a persistent session (`clean_start=False`,
Session Expiry), QoS 1 and `manual_ack=True`. Its network thread only queues each message; the `ingest`
worker takes up to `batch_size` of them (or what `batch_ms` brings), validates them, writes them to the
store and only then acknowledges them. A crash before the commit means no PUBACK, so the broker
redelivers from the session, and inserts are idempotent by entry id. A failing store is retried with
backoff, nothing acknowledged, while the process stays up.

Flow control. With manual acks the broker keeps at most Receive Maximum (a CONNECT property) messages
unacknowledged; without it mosquitto allows only `max_inflight_messages` (20), and batches could never
fill. We ask for two batches, so one fills while the other commits.

Acks and reconnects. A PUBACK names a packet id, which is only meaningful on the connection the message
came on: after a reconnect the broker resends unacknowledged messages and may reuse ids. Each message is
tagged with its connection's generation and acknowledged only if that connection is still the current
one (paho's `ack` merely queues a packet and wakes the network thread, so calling it from the worker is
safe); the rest come again and are stored once.

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
import queue
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions
from pydantic import BaseModel, ValidationError

from kiosk.collector.config import BrokerSection, IngestSection
from kiosk.collector.store import DeadLetter, Store, StoredAlert
from kiosk.entry import TOPIC_ROOT, Alert, Entry, Status, parse_topic, shared_subscription, utc_now

log = logging.getLogger(__name__)

BACKOFF_MIN_S = 0.2
BACKOFF_MAX_S = 10.0
GAPS_EVERY_S = 30.0
UNREACHABLE_LOG_S = 60.0
QOS0_BACKLOG_MAX = 100_000  # QoS 0 messages bypass Receive Maximum; past this backlog they are dropped


@dataclass(frozen=True, slots=True)
class Message:
    """One received MQTT message as the network thread hands it to the worker."""

    topic: str
    payload: bytes
    mid: int = 0
    qos: int = 1
    generation: int = 0


@dataclass
class Batch:
    """Validated messages of one batch, by what the store does with them."""

    entries: list[tuple[Entry, bytes]] = field(default_factory=list)
    statuses: list[tuple[str, str, Status]] = field(default_factory=list)
    alerts: list[StoredAlert] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)
    in_batch_duplicates: int = 0


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


_MODELS: dict[str, type[BaseModel]] = {"entry": Entry, "status": Status, "alert": Alert}
_MALFORMED = ("json_invalid", "json_type", "model_type", "model_attributes_type")


def _why(exc: ValidationError) -> tuple[str, str]:
    """(code, detail) for a payload that failed validation."""
    errors = exc.errors(include_url=False)
    first = errors[0] if errors else None
    if first is not None and first["type"] in _MALFORMED:
        return "malformed", str(first["msg"])[:200]
    if first is not None and tuple(first["loc"]) == ("schema",) and first["type"] == "literal_error":
        return "wrong_schema", f"schema {first.get('input')!r}"[:200]
    detail = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or '(top)'}: {e['msg']}" for e in errors[:3])
    more = f" (+{len(errors) - 3} more)" if len(errors) > 3 else ""
    return "invalid", detail[:400] + more


def classify(messages: Sequence[Message], *, max_payload: int, received_at: datetime) -> Batch:
    """Validate each message; whatever is not a valid entry, status or alert becomes a dead letter."""
    batch = Batch()
    seen: set[str] = set()
    for message in messages:
        try:
            _classify_one(message, batch, seen, max_payload=max_payload, received_at=received_at)
        except Exception as exc:  # a bug here must not stop ingest; the message is kept as a dead letter
            log.exception("cannot classify a message on %r", message.topic)
            batch.dead.append(DeadLetter(received_at, message.topic, f"internal: {type(exc).__name__}",
                                         message.payload[:max_payload]))
    return batch


def _classify_one(message: Message, batch: Batch, seen: set[str], *, max_payload: int,
                  received_at: datetime) -> None:
    def dead(reason: str) -> None:
        batch.dead.append(DeadLetter(received_at, message.topic, reason, message.payload[:max_payload]))

    where = parse_topic(message.topic)
    if where is None:
        dead("unknown_topic: not checkpoint/v1/{site}/{kiosk}/{entry|status|alert}")
        return
    site, kiosk, kind = where
    size = len(message.payload)
    if kind == "status" and size == 0:
        return  # a retained status being cleared: nothing to record
    if size > max_payload:
        dead(f"oversized {kind}: {size} bytes > {max_payload} (the first {max_payload} kept)")
        return
    model = _MODELS[kind]
    try:
        parsed = model.model_validate_json(message.payload)
    except ValidationError as exc:
        code, detail = _why(exc)
        dead(f"{code} {kind}: {detail}")
        return
    if isinstance(parsed, Entry):
        if (parsed.site, parsed.kiosk) != (site, kiosk):
            dead(f"topic_mismatch entry: topic {site}/{kiosk}, payload {parsed.site}/{parsed.kiosk}")
        elif parsed.id in seen:
            batch.in_batch_duplicates += 1
        else:
            seen.add(parsed.id)
            batch.entries.append((parsed, message.payload))
    elif isinstance(parsed, Status):
        batch.statuses.append((site, kiosk, parsed))
    elif isinstance(parsed, Alert):
        batch.alerts.append(StoredAlert(site, kiosk, parsed, received_at))


class Ingest:
    """The MQTT client and the `ingest` worker; `start()`, then `close()` after the stop event is set."""

    def __init__(self, broker: BrokerSection, settings: IngestSection, store: Store, *,
                 stop: threading.Event | None = None, password: bytes | None = None) -> None:
        self._broker = broker
        self._settings = settings
        self._store = store
        self._stop = stop or threading.Event()
        self._queue: queue.SimpleQueue[Message] = queue.SimpleQueue()
        self._lock = threading.Lock()  # generation, acks, stats
        self._generation = 0
        self.connected = False  # the broker connection is up
        self.healthy = True  # False while store writes fail
        self._stats = IngestStats()
        self._gaps_at = 0.0
        self._unreachable_logged = -UNREACHABLE_LOG_S
        self.heartbeat = time.monotonic()
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
        if self._settings.shared:
            entries, alerts = shared_subscription("entry", group), shared_subscription("alert", group)
        else:
            entries, alerts = plain + "entry", plain + "alert"
        client.subscribe([(entries, qos1), (alerts, qos1), (plain + "status", retained)])

    def _on_connect_fail(self, client: mqtt.Client, userdata: object) -> None:
        if time.monotonic() - self._unreachable_logged >= UNREACHABLE_LOG_S:
            self._unreachable_logged = time.monotonic()
            log.warning("broker %s:%d unreachable; retrying", self._broker.host, self._broker.port)

    def _on_disconnect(self, client: mqtt.Client, userdata: object, flags: mqtt.DisconnectFlags,
                       reason: ReasonCode, properties: Properties | None) -> None:
        with self._lock:
            self._generation += 1  # acks for what the old connection delivered must not go out now
            was, self.connected = self.connected, False
        if was and not self._stop.is_set():
            log.warning("disconnected from the broker (%s); reconnecting", reason)

    def _on_subscribe(self, client: mqtt.Client, userdata: object, mid: int, reasons: list[ReasonCode],
                      properties: Properties | None) -> None:
        refused = [str(r) for r in reasons if r.is_failure]
        if refused:
            log.error("subscriptions refused (check the broker ACL for %s): %s",
                      self._broker.username or self._broker.client_id, ", ".join(refused))

    def _on_message(self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        try:
            topic = message.topic
        except UnicodeDecodeError:
            topic = "(invalid UTF-8 topic)"
        if message.qos == 0 and self._queue.qsize() > QOS0_BACKLOG_MAX:
            with self._lock:
                self._stats = replace(self._stats, dropped_qos0=self._stats.dropped_qos0 + 1)
            return
        self._queue.put(Message(topic, bytes(message.payload), message.mid, message.qos, self._generation))

    def _on_publish(self, client: mqtt.Client, userdata: object, mid: int, reason: ReasonCode,
                    properties: Properties) -> None:
        with self._lock:
            self._publish_results[mid] = reason

    # -- the worker ----------------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._count_gaps()
            while not self._stop.is_set():
                messages = self._take()
                if messages:
                    self._handle(messages)
                self._beat()
            final = [self._queue.get() for _ in range(self._queue.qsize())]  # arrived before the stop
            for start in range(0, len(final), self._settings.batch_size):
                self._handle(final[start:start + self._settings.batch_size])
        except Exception:
            log.exception("the ingest worker failed; nothing it held was acknowledged")
            raise

    def _take(self) -> list[Message]:
        """Up to batch_size messages: what arrives within batch_ms of the first one."""
        try:
            messages = [self._queue.get(timeout=0.2)]
        except queue.Empty:
            return []
        deadline = time.monotonic() + self._settings.batch_ms / 1000
        while len(messages) < self._settings.batch_size:
            try:
                messages.append(self._queue.get(timeout=max(0.0, deadline - time.monotonic())))
            except queue.Empty:
                break
        return messages

    def _handle(self, messages: list[Message]) -> None:
        received_at = utc_now()
        batch = classify(messages, max_payload=self._settings.max_payload_bytes, received_at=received_at)
        new = self._commit(batch, received_at)
        if new is None:
            return  # stopped while the store was failing: nothing acknowledged, the broker keeps it all
        self._ack(messages)
        with self._lock:
            s = self._stats
            self._stats = replace(
                s, received=s.received + len(messages), entries=s.entries + new,
                duplicates=s.duplicates + len(batch.entries) - new + batch.in_batch_duplicates,
                statuses=s.statuses + len(batch.statuses), alerts=s.alerts + len(batch.alerts),
                dead_letters=s.dead_letters + len(batch.dead), batches=s.batches + 1,
            )
        if batch.dead:
            first = batch.dead[0]
            log.warning("%d dead letter(s); the first on %s: %s", len(batch.dead), first.topic, first.reason)
        if time.monotonic() - self._gaps_at > GAPS_EVERY_S:
            self._count_gaps()

    def _commit(self, batch: Batch, received_at: datetime) -> int | None:
        """Write the batch, retrying with backoff; new entries, or None if stopped before it succeeded."""
        delay, attempt = BACKOFF_MIN_S, 0
        while True:
            attempt += 1
            try:
                new = self._write(batch, received_at)
            except Exception as exc:
                with self._lock:
                    self.healthy = False
                    self._stats = replace(self._stats, store_failures=self._stats.store_failures + 1)
                log.error("UNHEALTHY: store write failed (attempt %d): %s: %s; nothing acknowledged, "
                          "retrying in %.1f s", attempt, type(exc).__name__, exc, delay)
                self._beat()
                if self._stop.wait(delay):
                    return None
                delay = min(delay * 2, BACKOFF_MAX_S)
                continue
            if attempt > 1:
                log.warning("store writes work again after %d attempts", attempt)
            with self._lock:
                self.healthy = True
            return new

    def _write(self, batch: Batch, received_at: datetime) -> int:
        # Each call is one transaction. Entries, alerts and statuses are idempotent, so a retry after a
        # partial failure repeats them harmlessly; dead letters go last, as a retry would repeat them.
        new = self._store.insert_entries(batch.entries, received_at) if batch.entries else 0
        if batch.alerts:
            self._store.insert_alerts(batch.alerts)
        for site, kiosk, status in batch.statuses:
            self._store.record_status(site, kiosk, status, received_at)
        if batch.dead:
            self._store.insert_dead_letters(batch.dead)
        return new

    def _ack(self, messages: list[Message]) -> None:
        with self._lock:
            current = self._generation if self.connected else -1
            for message in messages:
                if message.qos > 0 and message.generation == current:
                    self.client.ack(message.mid, message.qos)

    def _count_gaps(self) -> None:
        self._gaps_at = time.monotonic()
        try:
            gaps = len(self._store.gaps())
        except Exception as exc:
            log.warning("cannot count seq gaps: %s", exc)
            return
        with self._lock:
            self._stats = replace(self._stats, open_gaps=gaps)

    def _beat(self) -> None:
        self.heartbeat = time.monotonic()

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
        """Whether the worker thread runs."""
        return self._worker.is_alive()

    def stats(self) -> IngestStats:
        """A snapshot of the counters."""
        with self._lock:
            return self._stats
