"""Publishing from the office: one signed message (a command or a revocation list) at a time, confirmed by
the broker's PUBACK. `BrokerLink` is the web app's, from the config; the admin CLI uses `publish_once`."""

from __future__ import annotations

import ssl
import threading
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from office.config import OfficeConfig

PUBACK_TIMEOUT_S = 10.0


class PublishError(Exception):
    """The broker could not be reached, or did not take the message (e.g. the ACL refused it)."""


@dataclass(frozen=True)
class BrokerLink:
    """Where and as whom the web app publishes: [broker] host and port, as [web] broker_username."""

    host: str
    port: int
    username: str | None
    password: str | None
    ca_file: Path | None

    @classmethod
    def of(cls, config: OfficeConfig) -> BrokerLink:
        """From the config: the web app's own broker user if set, else the [broker] user."""
        broker, web = config.broker, config.web
        username: str | None
        if web.broker_username is not None:
            username, secret = web.broker_username, web.broker_password()
        else:
            username, secret = broker.username, broker.password()
        return cls(broker.host, broker.port, username, None if secret is None else secret.decode(),
                   broker.ca_file if broker.tls else None)

    def publish(self, topic: str, payload: str, *, retain: bool = False) -> None:
        """Publish once at QoS 1 and wait for the PUBACK; PublishError if it is not taken."""
        publish_once(topic, payload, host=self.host, port=self.port, username=self.username,
                     password=self.password, ca_file=self.ca_file, retain=retain)


def publish_once(topic: str, payload: str, *, host: str, port: int, username: str | None = None,
                 password: str | None = None, ca_file: Path | None = None, retain: bool = False) -> None:
    """Publish one QoS 1 message and wait for the broker's PUBACK; PublishError if it is not acknowledged."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    if username is not None:
        client.username_pw_set(username, password)
    if ca_file is not None:
        client.tls_set(ca_certs=str(ca_file), tls_version=ssl.PROTOCOL_TLS_CLIENT)
    acked = threading.Event()
    reasons: list[ReasonCode] = []

    def on_publish(_c: mqtt.Client, _u: object, _mid: int, reason: ReasonCode, _p: object) -> None:
        reasons.append(reason)
        acked.set()

    client.on_publish = on_publish
    try:
        client.connect(host, port)
    except OSError as exc:
        raise PublishError(f"cannot reach the broker at {host}:{port}: {exc}") from exc
    client.loop_start()
    try:
        client.publish(topic, payload, qos=1, retain=retain)
        if not acked.wait(PUBACK_TIMEOUT_S):
            raise PublishError(f"the broker did not acknowledge within {PUBACK_TIMEOUT_S:g} s")
        if reasons[0].is_failure:
            raise PublishError(f"the broker refused it: {reasons[0]}")
    finally:
        client.disconnect()
        client.loop_stop()
