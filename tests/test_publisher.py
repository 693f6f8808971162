"""The MQTT publisher against a real mosquitto: order, outages, refusals, will, commands, revocations."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from mqtt_helpers import Observer, assert_complete, publish, wait_for

from checkpoint.commands import CommandPayload, issue_command
from checkpoint.entry import Devices, EntryDraft, OutboxState, Timing
from checkpoint.keys import KeyRing
from checkpoint.topics import topics
from kiosk.config import MqttConfig
from kiosk.mqtt.commands import CommandCheck, CommandHandler
from kiosk.mqtt.local_broker import LocalBroker, free_port
from kiosk.mqtt.nonces import NonceStore
from kiosk.mqtt.publisher import Publisher
from kiosk.outbox import Outbox
from office.admin.broker_users import kiosk_username, set_password

T = topics("s1", "gate-north")
DRAFT = EntryDraft(direction="in", decision="allow", timing_ms=Timing(decode=1, decide=0.1, session=500))


def config(broker: LocalBroker, **changes: Any) -> MqttConfig:
    values: dict[str, Any] = {"port": broker.port, "heartbeat_s": 1, "keepalive_s": 5, "connect_timeout_s": 2,
                              "reconnect_min_s": 0.1, "reconnect_max_s": 0.5, **changes}
    return MqttConfig.model_validate(values)


@pytest.fixture
def outbox(tmp_path: Path) -> Iterator[Outbox]:
    with Outbox(tmp_path / "outbox.sqlite", site="s1", kiosk="gate-north") as box:
        yield box


def test_entries_arrive_once_in_seq_order(mqtt_broker: LocalBroker, outbox: Outbox) -> None:
    observer = Observer(mqtt_broker)
    seen: list[OutboxState] = []

    def status(state: OutboxState) -> Devices:
        seen.append(state)
        return Devices(camera="ok", thermometer="fault")

    publisher = Publisher(config(mqtt_broker, max_inflight=5), outbox, status=status).start()
    try:
        assert publisher.wait_connected(5)
        names = {t.name for t in threading.enumerate()}
        assert "mqtt-publisher" in names and f"paho-mqtt-client-{publisher.client_id}" in names
        for _ in range(60):
            outbox.append(DRAFT)
            publisher.wake()
        wait_for(lambda: len(observer.on(T.entry)) >= 60, what="60 entries")
        wait_for(lambda: outbox.backlog().backlog == 0, what="an empty outbox")
        wait_for(lambda: len(observer.on(T.status)) >= 2, what="a heartbeat")
    finally:
        publisher.close()
    assert [e.seq for e in observer.entries()] == list(range(1, 61))  # exactly once, in order
    assert_complete(observer, 60)
    statuses = observer.json(T.status)
    online = [s for s in statuses if s["state"] == "online"]
    assert online and online[0]["camera"] == "ok" and online[0]["thermometer"] == "fault"
    assert "backlog" in online[0]["outbox"] and online[0]["version"]
    assert seen and isinstance(seen[0], OutboxState)
    assert statuses[-1]["state"] == "offline"  # close() says so itself: a clean disconnect sends no will
    late = Observer(mqtt_broker, T.status, client_id="late")
    wait_for(lambda: late.messages, 5, "the retained status")
    assert late.messages[0][2] and json.loads(late.messages[0][1])["state"] == "offline"
    late.close()
    observer.close()
    wait_for(lambda: not any(t.name.startswith(("mqtt-", "paho-mqtt-client-s1"))
                             for t in threading.enumerate()), 3, "threads to end")


@pytest.mark.parametrize("outage_s", [1.0, 3.0])
def test_nothing_lost_across_a_broker_outage(tmp_path: Path, outbox: Outbox, outage_s: float) -> None:
    broker = LocalBroker(persistence_dir=tmp_path).start()
    observer = Observer(broker, T.entry, persistent=True)
    publisher = Publisher(config(broker), outbox).start()
    count = 200
    appended = threading.Event()

    def flow() -> None:
        for _ in range(count):
            outbox.append(DRAFT)  # works whether or not the broker is there
            publisher.wake()
            time.sleep(0.015)
        appended.set()

    thread = threading.Thread(target=flow, name="test-flow")
    try:
        assert publisher.wait_connected(5)
        thread.start()
        wait_for(lambda: len(observer.on(T.entry)) >= 40, what="the first entries")
        broker.stop()
        wait_for(lambda: not publisher.connected, 3, "the publisher to notice")
        time.sleep(outage_s)
        assert outbox.backlog().backlog > 0
        broker.start()
        assert appended.wait(15)
        wait_for(lambda: outbox.backlog().backlog == 0, 15, "the outbox to drain")
        wait_for(lambda: len({e.id for e in observer.entries()}) >= count, 10, "every entry")
    finally:
        thread.join(10)
        publisher.close()
        observer.close()
        broker.stop()
    assert_complete(observer, count)


def _acl_broker(tmp_path: Path, *, entries_allowed: bool, port: int = 0) -> LocalBroker:
    acl = tmp_path / "acl"
    rules = ["pattern write checkpoint/v1/%u/status", "pattern write checkpoint/v1/%u/alert",
             "pattern read checkpoint/v1/%u/cmd/#"]
    if entries_allowed:
        rules.append("pattern write checkpoint/v1/%u/entry")
    acl.write_text("\n".join([*rules, "user observer", "topic read checkpoint/#", ""]), encoding="utf-8")
    return LocalBroker(port=port, password_file=tmp_path / "passwd", acl_file=acl, persistence_dir=tmp_path)


def test_refused_entries_stay_alert_and_drain_after_the_acl_is_fixed(tmp_path: Path, outbox: Outbox) -> None:
    set_password(tmp_path / "passwd", kiosk_username("s1", "gate-north"), "kiosk-pw")
    set_password(tmp_path / "passwd", "observer", "observer-pw")
    (tmp_path / "kiosk.pw").write_text("kiosk-pw\n", encoding="utf-8")
    broker = _acl_broker(tmp_path, entries_allowed=False).start()
    observer = Observer(broker, persistent=True, username="observer", password="observer-pw")
    cfg = config(broker, username="s1/gate-north", password_file=tmp_path / "kiosk.pw", reconnect_max_s=0.4)
    publisher = Publisher(cfg, outbox).start()
    try:
        for _ in range(5):
            outbox.append(DRAFT)
        publisher.wake()
        wait_for(lambda: publisher.refusals >= 1, what="a refusal")
        wait_for(lambda: any("Not authorized (135)" in a["detail"] for a in observer.json(T.alert)),
                 what="the refusal alert")
        wait_for(lambda: any(s.get("outbox", {}).get("refused", 0) >= 1 for s in observer.json(T.status)),
                 what="the refusal in the status")
        time.sleep(1.5)
        state = outbox.backlog()
        assert state.backlog == 5 and state.refused >= 1 and observer.on(T.entry) == []
        assert publisher.last_refusal is not None and "seq 1" in publisher.last_refusal
        assert publisher.refusals <= 5 + 10  # the first window, then one probe per backoff step
        assert len(observer.json(T.alert)) == 1  # one alert for the episode, not one per refusal
        broker.stop()
        broker = _acl_broker(tmp_path, entries_allowed=True, port=broker.port).start()
        wait_for(lambda: outbox.backlog().backlog == 0, 10, "the outbox to drain")
        wait_for(lambda: len(observer.on(T.entry)) >= 5, 10, "the entries")
    finally:
        publisher.close()
        observer.close()
        broker.stop()
    assert_complete(observer, 5)
    assert outbox.backlog().refused == 0


WILL_SCRIPT = """
import sys, time
from pathlib import Path
from kiosk.mqtt.publisher import Publisher
from kiosk.config import MqttConfig
from kiosk.outbox import Outbox
outbox = Outbox(Path(sys.argv[1]), site="s1", kiosk="gate-north")
publisher = Publisher(MqttConfig(port=int(sys.argv[2]), heartbeat_s=60), outbox).start()
assert publisher.wait_connected(10)
print("ready", flush=True)
time.sleep(60)
"""


def test_last_will_says_offline_when_the_kiosk_dies(mqtt_broker: LocalBroker, tmp_path: Path) -> None:
    observer = Observer(mqtt_broker, T.status)
    root = Path(__file__).resolve().parent.parent
    child = subprocess.Popen([sys.executable, "-c", WILL_SCRIPT, str(tmp_path / "o.sqlite"),
                              str(mqtt_broker.port)], stdout=subprocess.PIPE, text=True, cwd=root,
                             env={**os.environ, "PYTHONPATH": str(root)})
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        wait_for(lambda: any(s["state"] == "online" for s in observer.json(T.status)), 5, "online")
        child.send_signal(signal.SIGKILL)
        child.wait(5)
        wait_for(lambda: observer.json(T.status)[-1] == {"state": "offline"}, 5, "the will")
    finally:
        child.kill()
        child.wait(5)
        if child.stdout is not None:
            child.stdout.close()
        observer.close()
    late = Observer(mqtt_broker, T.status, client_id="late")
    wait_for(lambda: late.messages, 5, "the retained will")
    assert late.messages[0][1:] == (b'{"state":"offline"}', True)
    late.close()


def test_signed_commands_are_dispatched_and_the_rest_ignored(mqtt_broker: LocalBroker, outbox: Outbox,
                                                              tmp_path: Path) -> None:
    calls: list[tuple[str, CommandPayload]] = []
    operator = Ed25519PrivateKey.generate()

    def handler(name: str) -> CommandHandler:
        def handle(command: CommandPayload) -> None:
            calls.append((name, command))
            if command.op == "crash":
                raise RuntimeError("a handler that fails")
        return handle

    def cmd(name: str, op: str = "office", *, key: Ed25519PrivateKey = operator, age_s: float = 0,
            kiosk: str = "gate-north") -> str:
        at = datetime.now(UTC) - timedelta(seconds=age_s)
        return issue_command(key, None, site="s1", kiosk=kiosk, cmd=name, op=op, now=at)

    publish(mqtt_broker, f"{T.cmd}/open", cmd("open", "retained"), retain=True)  # must never open the gate
    observer = Observer(mqtt_broker, T.status)
    nonces = NonceStore(tmp_path / "commands.sqlite")
    check = CommandCheck(keys=KeyRing.of(operator.public_key()), site="s1", kiosk="gate-north", nonces=nonces,
                         now=lambda: datetime.now(UTC), synced=lambda: True)
    publisher = Publisher(config(mqtt_broker, heartbeat_s=3600), outbox, command_check=check,
                          commands={"open": handler("open"), "reload": handler("reload")}).start()
    try:
        assert publisher.wait_connected(5)
        wait_for(lambda: observer.on(T.status), 5, "the first status")
        office = cmd("open", "office")
        ignored: list[tuple[str, bytes | str]] = [
            ("open", b"not json"), ("open", b"\xff\xfe"), ("open", json.dumps({"by": "x", "ts": "now"})),
            ("open", office * 40), ("open", cmd("open", "stale", age_s=3600)), ("launch", cmd("open")),
            ("open/now", cmd("open")), ("open", cmd("open", "stranger", key=Ed25519PrivateKey.generate())),
            ("open", cmd("open", "elsewhere", kiosk="gate-south")), ("reload", cmd("reload", "crash")),
            ("open", office), ("open", office),
        ]
        for topic, payload in ignored:
            publish(mqtt_broker, f"{T.cmd}/{topic}", payload)
        wait_for(lambda: len(calls) >= 2, 5, "the commands")
        publish(mqtt_broker, f"{T.cmd}/ping", cmd("ping"))
        wait_for(lambda: len(observer.on(T.status)) >= 2, 5, "a status for the ping")
        time.sleep(0.3)
        assert publisher.connected
    finally:
        publisher.close()
        observer.close()
        nonces.close()
        publish(mqtt_broker, f"{T.cmd}/open", b"", retain=True)
    assert [(name, c.op) for name, c in calls] == [("reload", "crash"), ("open", "office")]  # once, no copy


def test_revocations_reach_the_callback(mqtt_broker: LocalBroker, outbox: Outbox) -> None:
    site_topic = "checkpoint/v1/s1/revocations"
    publish(mqtt_broker, site_topic, b"CKR1.first.sig", retain=True)
    publish(mqtt_broker, "checkpoint/v1/s2/revocations", b"CKR1.other-site.sig", retain=True)
    got: list[bytes] = []

    def offer(text: bytes) -> None:
        got.append(text)
        if text == b"boom":
            raise ValueError("a callback that fails")

    publisher = Publisher(config(mqtt_broker), outbox, on_revocations=offer).start()
    try:
        wait_for(lambda: got, 5, "the retained list")
        publish(mqtt_broker, site_topic, b"boom", retain=True)
        publish(mqtt_broker, site_topic, b"CKR1.second.sig", retain=True)
        wait_for(lambda: len(got) >= 3, 5, "the live updates")
        assert publisher.connected
    finally:
        publisher.close()
    assert got == [b"CKR1.first.sig", b"boom", b"CKR1.second.sig"]


def test_broker_down_append_works_and_close_is_bounded(outbox: Outbox) -> None:
    cfg = MqttConfig(port=free_port(), reconnect_min_s=0.1, reconnect_max_s=0.2, connect_timeout_s=1)
    stop = threading.Event()
    for _ in range(4):
        outbox.append(DRAFT)
    publisher = Publisher(cfg, outbox, stop=stop, backlog_alert=3).start()
    publisher.wake()
    wait_for(lambda: outbox.backlog().alerts >= 1, 3, "the backlog alert")
    alert = json.loads(outbox.pending(1, kind="alert")[0].payload)
    assert alert["kind"] == "fault" and "backlog of 4" in alert["detail"]
    assert not publisher.connected
    started = time.monotonic()
    stop.set()  # the shared stop event alone ends the thread
    wait_for(lambda: "mqtt-publisher" not in {t.name for t in threading.enumerate()}, 2, "the thread")
    publisher.close()
    publisher.close()
    assert time.monotonic() - started < 2.5
    assert outbox.backlog().backlog == 4


def _tls_files(root: Path) -> tuple[Path, Path, Path]:
    """A CA and a broker certificate for 127.0.0.1 signed by it: (ca, cert, key)."""
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.UTC)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(1).not_valid_before(now - dt.timedelta(hours=1))
          .not_valid_after(now + dt.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca_name).public_key(key.public_key()).serial_number(2)
            .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    paths = root / "ca.crt", root / "broker.crt", root / "broker.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return paths


def test_tls_with_the_configured_ca(tmp_path: Path, outbox: Outbox) -> None:
    ca, cert, key = _tls_files(tmp_path)
    (tmp_path / "other").mkdir()
    other_ca = _tls_files(tmp_path / "other")[0]
    tls_port = free_port()
    broker = LocalBroker(extra_config=f"listener {tls_port} 127.0.0.1\ncertfile {cert}\nkeyfile {key}\n")
    broker.start()
    observer = Observer(broker, T.entry)
    outbox.append(DRAFT)
    wrong = Publisher(config(broker, port=tls_port, tls=True, ca_file=other_ca), outbox, client_id="wrong-ca")
    publisher = Publisher(config(broker, port=tls_port, tls=True, ca_file=ca), outbox)
    try:
        wrong.start()
        assert not wrong.wait_connected(1.0)  # a broker certificate not signed by the CA is refused
        wrong.close()
        publisher.start()
        wait_for(lambda: observer.on(T.entry), 5, "the entry over TLS")
    finally:
        publisher.close()
        observer.close()
        broker.stop()
    assert [e.seq for e in observer.entries()] == [1]


def test_entries_nobody_subscribes_to_stay_until_a_collector_does(mqtt_broker: LocalBroker,
                                                                   outbox: Outbox) -> None:
    publisher = Publisher(config(mqtt_broker), outbox).start()
    try:
        assert publisher.wait_connected(5)
        for _ in range(5):
            outbox.append(DRAFT)
        publisher.wake()
        wait_for(lambda: publisher.refusals >= 1, 5, "PUBACK 16 (no matching subscribers)")
        assert outbox.backlog().backlog == 5, "accepted but unrouted entries are not delivered"
        assert publisher.last_refusal is not None and "subscribers" in publisher.last_refusal.lower()
        observer = Observer(mqtt_broker, T.entry)
        try:
            wait_for(lambda: outbox.backlog().backlog == 0, 15, "the retry once someone subscribes")
            wait_for(lambda: len(observer.on(T.entry)) >= 5, 5, "the entries")
        finally:
            observer.close()
    finally:
        publisher.close()
    assert_complete(observer, 5)
