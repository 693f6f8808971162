"""The kiosk's MQTT side (paho 2.x, MQTT v5): drain the outbox, keep a retained status, take commands.

Delivery. The outbox, not paho, is the queue: paho keeps un-acknowledged messages in memory under 16-bit
message ids, which a restart forgets. Each connection therefore gets a fresh paho client that starts with
`clean_start=True` and no session (Session Expiry 0): the broker keeps nothing for us between
connections, so no command queued while we were away (say a stale `open`) is delivered late, and after
every reconnect we resend each undelivered row, oldest first. A duplicate is harmless (the collector
stores each `id` once); a loss is not. A row is marked delivered only on a PUBACK with a success code.

Refusals. Under MQTT v5 a publish the ACL forbids comes back with PUBACK 135 (Not authorized), although
paho reports it published. The row stays pending, an alert is raised once per episode and the status
shows it, and the kind (entry, alert or resolution) is held: after a backoff one row is sent as a probe,
and only an accepted probe releases the rest, so a misconfigured broker is not hammered.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import random
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from checkpoint import __version__
from checkpoint.commands import CommandPayload
from checkpoint.configtypes import SecretError
from checkpoint.entry import OFFLINE, Alert, AlertKind, Devices, OutboxState, Status, utc_now
from checkpoint.topics import revocations_topic, topics
from kiosk.config import MqttConfig
from kiosk.mqtt.commands import CommandCheck, CommandHandler, dispatch
from kiosk.mqtt.status import BacklogWatch, Hold, describe_code
from kiosk.outbox import Outbox, OutboxRow, RowKind

log = logging.getLogger(__name__)
# PUBACK 16: accepted, but no session subscribes, so nobody will ever get it (no collector yet, or
# mosquitto 2.0.11 after a restart before the collectors resubscribe). Keep the row and retry it.
NO_MATCHING_SUBSCRIBERS = 0x10

StatusProvider = Callable[[OutboxState], Devices]
# Drained in this order: no alert or resolution waits behind a backlog of entries.
_KINDS: tuple[RowKind, ...] = ("alert", "resolution", "entry")


@dataclass
class _Conn:
    """What the paho thread tells the publisher thread about one connection."""

    generation: int
    changed: threading.Event = field(default_factory=threading.Event)
    up: bool = False
    refused: ReasonCode | None = None
    gone: bool = False
    receive_max: int = 65_535


class Publisher:
    """Publishes the outbox in `seq` order with QoS 1, heartbeats the status and dispatches commands."""

    def __init__(self, config: MqttConfig, outbox: Outbox, *, status: StatusProvider | None = None,
                 commands: Mapping[str, CommandHandler] | None = None,
                 on_revocations: Callable[[bytes], object] | None = None,
                 stop: threading.Event | None = None, backlog_alert: int | None = None,
                 command_check: CommandCheck | None = None, client_id: str | None = None,
                 prune_interval_s: float = 600.0) -> None:
        self._cfg = config
        self._outbox = outbox
        self._topics = topics(outbox.site, outbox.kiosk)
        self._revocations = revocations_topic(outbox.site)
        self._status = status
        self._on_ping = (commands or {}).get("ping")
        self._commands = {**(commands or {}), "ping": self._ping}
        self._on_revocations = on_revocations
        self._stop = stop if stop is not None else threading.Event()
        self._command_check = command_check
        self.client_id = client_id or f"{outbox.site}/{outbox.kiosk}"
        self._wakeup = threading.Event()
        self._closing = threading.Event()
        self._connected = threading.Event()
        self._acks: queue.SimpleQueue[tuple[int, int, int]] = queue.SimpleQueue()
        self._holds = {kind: Hold(config.reconnect_min_s, config.reconnect_max_s) for kind in _KINDS}
        self._backlog = BacklogWatch(outbox, backlog_alert, prune_interval_s)
        self._status_due = False
        self._generation = 0
        self._last_problem = ""
        self._thread: threading.Thread | None = None
        self._closed = False
        self.refusals = 0
        self.last_refusal: str | None = None

    # -- the flow's side -------------------------------------------------------------------------

    def start(self) -> Publisher:
        """Start the publisher thread (it connects, and reconnects, by itself)."""
        if self._thread is None and not self._closed:
            self._thread = threading.Thread(target=self._run, name="mqtt-publisher", daemon=True)
            self._thread.start()
        return self

    def wake(self) -> None:
        """Publish what is pending now (call after an append)."""
        self._wakeup.set()

    def alert(self, kind: AlertKind, detail: str, entry_id: str | None = None) -> Alert:
        """Record an alert durably in the outbox and publish it as soon as connected."""
        recorded = self._outbox.append_alert(kind, detail, entry_id)
        self.wake()
        return recorded

    def publish_status(self) -> None:
        """Publish the status now instead of at the next heartbeat."""
        self._status_due = True
        self.wake()

    @property
    def connected(self) -> bool:
        """Whether the broker has accepted the current connection."""
        return self._connected.is_set()

    def wait_connected(self, timeout_s: float) -> bool:
        """Wait until connected; False on timeout."""
        return self._connected.wait(timeout_s)

    def close(self, timeout_s: float = 5.0) -> None:
        """Publish the retained offline status, disconnect cleanly and join the thread; idempotent."""
        if self._closed:
            return
        self._closed = True
        self._closing.set()
        self._wakeup.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                log.warning("mqtt: publisher thread did not stop within %.1f s", timeout_s)

    def __enter__(self) -> Publisher:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the publisher thread --------------------------------------------------------------------

    def _exiting(self) -> bool:
        return self._closing.is_set() or self._stop.is_set()

    def _run(self) -> None:
        delay = self._cfg.reconnect_min_s
        while not self._exiting():
            try:
                self._backlog.check(self.alert)
                if self._session():
                    delay = self._cfg.reconnect_min_s
            except Exception:
                log.exception("mqtt: publisher error; reconnecting")
            self._connected.clear()
            deadline = time.monotonic() + delay * random.uniform(0.5, 1.0)  # jitter: not all kiosks at once
            while not self._exiting() and time.monotonic() < deadline:
                self._closing.wait(min(0.25, max(0.0, deadline - time.monotonic())))
            delay = min(delay * 2, self._cfg.reconnect_max_s)

    def _session(self) -> bool:
        """One connection from connect to loss; True if the broker accepted it."""
        self._generation += 1
        conn = _Conn(self._generation)
        try:
            client = self._client(conn)
            # clean_start=True, no Session Expiry: see the module docstring.
            client.connect(self._cfg.host, self._cfg.port, keepalive=self._cfg.keepalive_s, clean_start=True)
        except (OSError, ValueError, SecretError) as exc:
            self._problem(f"cannot connect to {self._cfg.host}:{self._cfg.port}: {exc}")
            return False
        client.loop_start()
        inflight: dict[int, OutboxRow | None] = {}
        try:
            conn.changed.wait(self._cfg.connect_timeout_s)
            if not conn.up:
                why = f"refused: {conn.refused}" if conn.refused else "no CONNACK in time"
                self._problem(f"{self._cfg.host}:{self._cfg.port} {why}")
                return False
            log.info("mqtt: connected to %s:%d as %s", self._cfg.host, self._cfg.port, self.client_id)
            self._last_problem = ""
            self._connected.set()
            self._serve(client, conn, inflight)
            return True
        finally:
            self._connected.clear()
            self._end(client, conn, inflight)

    def _client(self, conn: _Conn) -> mqtt.Client:
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=self.client_id, protocol=mqtt.MQTTv5,
                             reconnect_on_failure=False, userdata=conn)
        client.connect_timeout = self._cfg.connect_timeout_s
        client.max_inflight_messages_set(0)  # the publisher keeps its own window (max_inflight, Receive Max)
        if self._cfg.username is not None:
            password = self._cfg.password()
            client.username_pw_set(self._cfg.username, password.decode("utf-8") if password else None)
        if self._cfg.tls:
            client.tls_set(ca_certs=str(self._cfg.ca_file) if self._cfg.ca_file else None)
        client.will_set(self._topics.status, OFFLINE.to_json(), qos=1, retain=True)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        return client

    def _serve(self, client: mqtt.Client, conn: _Conn, inflight: dict[int, OutboxRow | None]) -> None:
        subscriptions = [(self._topics.cmd_filter,
                          SubscribeOptions(qos=1, retainHandling=SubscribeOptions.RETAIN_DO_NOT_SEND))]
        if self._on_revocations is not None:
            subscriptions.append((self._revocations, SubscribeOptions(qos=1)))
        client.subscribe(subscriptions)
        cursor = dict.fromkeys(_KINDS, 0)
        for hold in self._holds.values():
            hold.reconnected()
        next_beat = 0.0
        while not self._exiting() and not conn.gone:
            self._wakeup.clear()
            self._take_acks(conn, inflight, cursor)
            now = time.monotonic()
            if now >= next_beat or self._status_due:
                sent = self._send_status(client, conn, inflight)
                next_beat = now + (self._cfg.heartbeat_s if sent else 0.1)  # window full: soon again
            if not self._drain(client, conn, inflight, cursor):
                break
            self._backlog.check(self.alert)
            wait = min([next_beat - now] + [h.wait_s(now) for h in self._holds.values()])
            self._wakeup.wait(max(0.005, wait))

    def _drain(self, client: mqtt.Client, conn: _Conn, inflight: dict[int, OutboxRow | None],
               cursor: dict[RowKind, int]) -> bool:
        """Publish pending rows into the free window; False when the connection is gone."""
        room = self._window(conn) - len(inflight)
        now = time.monotonic()
        for kind in _KINDS:
            hold = self._holds[kind]
            if room <= 0 or not hold.may_send(now):
                continue
            sending = {r.row for r in inflight.values() if r is not None}
            quota = 1 if hold.held else room
            for row in self._outbox.pending(quota + len(sending), kind=kind, after_row=cursor[kind]):
                if row.row in sending:
                    continue
                info = client.publish(row.topic, row.payload, qos=1)
                if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                    return False
                inflight[info.mid] = row
                cursor[kind] = row.row
                room -= 1
                quota -= 1
                if hold.held:
                    hold.probing()
                if quota <= 0 or room <= 0:
                    break
        return True

    def _window(self, conn: _Conn) -> int:
        """Rows in flight at most: max_inflight, and one below the broker's Receive Maximum (status)."""
        return max(1, min(self._cfg.max_inflight, conn.receive_max - 1))

    def _send_status(self, client: mqtt.Client, conn: _Conn, inflight: dict[int, OutboxRow | None]) -> bool:
        if len(inflight) >= max(conn.receive_max, self._window(conn) + 1):
            return False
        state = self._outbox.backlog()
        devices = Devices(camera="unknown", thermometer="unknown")
        if self._status is not None:
            try:
                devices = self._status(state)
            except Exception:
                log.exception("mqtt: status provider failed")
        status = Status(state="online", ts=utc_now(), camera=devices.camera, thermometer=devices.thermometer,
                        outbox=state, version=__version__)
        info = client.publish(self._topics.status, status.to_json(), qos=1, retain=True)
        if info.rc == MQTTErrorCode.MQTT_ERR_SUCCESS:
            inflight[info.mid] = None
        self._status_due = False
        return True

    def _take_acks(self, conn: _Conn, inflight: dict[int, OutboxRow | None],
                   cursor: dict[RowKind, int]) -> None:
        delivered: list[int] = []
        while True:
            try:
                generation, mid, code = self._acks.get_nowait()
            except queue.Empty:
                break
            if generation != conn.generation or mid not in inflight:
                continue
            row = inflight.pop(mid)
            if row is None:
                if code >= 0x80:
                    log.warning("mqtt: broker refused the status: %s", describe_code(code))
            elif code < 0x80 and code != NO_MATCHING_SUBSCRIBERS:
                delivered.append(row.row)
                if self._holds[row.kind].accepted():
                    log.warning("mqtt: broker accepts %s messages again", row.kind)
            else:
                self._refused(row, code)
                cursor[row.kind] = min(cursor[row.kind], row.row - 1)
        if delivered:
            self._outbox.mark_delivered(*delivered)

    def _refused(self, row: OutboxRow, code: int) -> None:
        self._outbox.mark_refused(row.row, code)
        self.refusals += 1
        what = f"{row.kind} seq {row.seq}" if row.seq is not None else f"{row.kind} {row.id}"
        self.last_refusal = f"broker refused {what} on {row.topic}: {describe_code(code)}"
        if not self._holds[row.kind].refused(time.monotonic()):
            log.debug("mqtt: %s", self.last_refusal)
            return
        log.warning("mqtt: %s; kept in the outbox, retrying with backoff", self.last_refusal)
        self._status_due = True
        if row.kind == "entry":  # a refused alert does not raise another alert
            self.alert("fault", self.last_refusal + "; kept in the outbox and retried")

    def _end(self, client: mqtt.Client, conn: _Conn, inflight: dict[int, OutboxRow | None]) -> None:
        """Finish a connection: on close publish offline (the will is not sent on a clean disconnect)."""
        if self._exiting() and conn.up and not conn.gone:
            deadline = time.monotonic() + 1.0
            while inflight and not conn.gone and time.monotonic() < deadline:
                self._wakeup.wait(0.02)
                self._wakeup.clear()
                self._take_acks(conn, inflight, dict.fromkeys(_KINDS, 0))
            offline = Status(state="offline", ts=utc_now())
            info = client.publish(self._topics.status, offline.to_json(), qos=1, retain=True)
            if info.rc == MQTTErrorCode.MQTT_ERR_SUCCESS:
                with contextlib.suppress(RuntimeError, ValueError):
                    info.wait_for_publish(1.0)
        client.disconnect()
        deadline = time.monotonic() + 1.0
        while not conn.gone and time.monotonic() < deadline:
            time.sleep(0.01)
        sock = client.socket()
        if not conn.gone and isinstance(sock, socket.socket):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)  # a dead link: do not wait out the keepalive
        client.loop_stop()
        self._take_acks(conn, inflight, dict.fromkeys(_KINDS, 0))
        if conn.up:
            reason = "closed" if self._exiting() else "connection lost"
            log.log(logging.INFO if self._exiting() else logging.WARNING, "mqtt: %s", reason)

    def _problem(self, text: str) -> None:
        level = logging.DEBUG if text == self._last_problem else logging.WARNING
        log.log(level, "mqtt: %s", text)
        self._last_problem = text

    # -- paho callbacks (paho's thread) ----------------------------------------------------------

    def _on_connect(self, client: mqtt.Client, conn: _Conn, flags: mqtt.ConnectFlags, reason: ReasonCode,
                    properties: Properties | None) -> None:
        if reason.is_failure:
            conn.refused = reason
        else:
            conn.up = True
            conn.receive_max = int(getattr(properties, "ReceiveMaximum", 65_535))
        conn.changed.set()

    def _on_disconnect(self, client: mqtt.Client, conn: _Conn, flags: mqtt.DisconnectFlags,
                       reason: ReasonCode, properties: Properties | None) -> None:
        conn.gone = True
        conn.changed.set()
        self._wakeup.set()

    def _on_publish(self, client: mqtt.Client, conn: _Conn, mid: int, reason: ReasonCode,
                    properties: Properties) -> None:
        self._acks.put((conn.generation, mid, reason.value))
        self._wakeup.set()

    def _on_subscribe(self, client: mqtt.Client, conn: _Conn, mid: int, reasons: list[ReasonCode],
                      properties: Properties) -> None:
        for reason in reasons:
            if reason.is_failure:
                log.warning("mqtt: broker refused a subscription: %s", reason)

    def _on_message(self, client: mqtt.Client, conn: _Conn, message: mqtt.MQTTMessage) -> None:
        try:
            topic = message.topic
            if topic == self._revocations and self._on_revocations is not None:
                self._on_revocations(bytes(message.payload))
            elif topic.startswith(self._topics.cmd + "/"):
                self._command(topic[len(self._topics.cmd) + 1:], message)
        except Exception:
            log.exception("mqtt: error handling a message")

    def _command(self, name: str, message: mqtt.MQTTMessage) -> None:
        dispatch(name, bytes(message.payload), retained=message.retain, handlers=self._commands,
                 check=self._command_check)

    def _ping(self, command: CommandPayload) -> None:
        self.publish_status()
        if self._on_ping is not None:
            self._on_ping(command)
