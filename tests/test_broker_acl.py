"""The broker config in config/mosquitto/ on a real mosquitto: who may publish and read what."""

from __future__ import annotations

import argparse
import re
import shutil
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from kiosk.mqtt.local_broker import BrokerError, LocalBroker, free_port, probe_broker
from office.admin.broker_users import PATTERNS, add_parser, run_broker_user
from office.admin.passes import AdminError

CONFIG = Path(__file__).resolve().parent.parent / "config" / "mosquitto"
SET_BY_TEST = {"allow_anonymous", "password_file", "acl_file", "persistence",
               "persistence_location", "log_dest", "log_type", "user", "certfile", "keyfile", "cafile"}
NOT_AUTHORIZED = 135
OK = (0, 16)  # Success, No matching subscribers


def broker_user(*argv: str) -> None:
    parser = argparse.ArgumentParser(prog="kiosk-admin")
    add_parser(parser.add_subparsers(dest="command"))
    run_broker_user(parser.parse_args(["broker-user", *argv]))


def adapted_config(port: int) -> str:
    """The shipped mosquitto.conf with its listener on 127.0.0.1:port, without what the test sets itself.

    The listener keeps its place, so the per-listener options after it apply to it as they would in
    production.
    """
    kept = []
    for line in (CONFIG / "mosquitto.conf").read_text(encoding="utf-8").splitlines():
        key = line.split("#", 1)[0].split()
        if key and key[0] == "listener":
            kept.append(f"listener {port} 127.0.0.1")
        elif key and key[0] not in SET_BY_TEST:
            kept.append(line)
    return "\n".join(kept)


class Site:
    """A broker with the shipped config and users made by `kiosk-admin broker-user`."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.host, self.port = "127.0.0.1", free_port()  # the shipped listener; clients connect here
        self.passwd = root / "passwd"
        self.acl = root / "acl"
        shutil.copy(CONFIG / "acl", self.acl)
        for user, who in [("s1/gate-north", ["--site", "s1", "--kiosk", "gate-north"]),
                          ("s1/gate-south", ["--site", "s1", "--kiosk", "gate-south"]),
                          ("s2/gate-north", ["--site", "s2", "--kiosk", "gate-north"]),
                          ("collector-1", ["--collector", "collector-1"]),
                          ("collector-2", ["--collector", "collector-2"]),
                          ("office", ["--office", "office"])]:
            broker_user("--passwd", str(self.passwd), "--acl", str(self.acl),
                        "--password-out", str(self.pw_file(user)), *who)
        self.broker = LocalBroker(password_file=self.passwd, acl_file=self.acl, persistence_dir=root,
                                  extra_config=adapted_config(self.port))
        self.clients: list[mqtt.Client] = []

    def pw_file(self, user: str) -> Path:
        return self.root / (user.replace("/", "_") + ".pw")

    def password(self, user: str) -> str:
        return self.pw_file(user).read_text(encoding="utf-8").strip()

    def connect(self, user: str, password: str | None = None) -> tuple[mqtt.Client, list[mqtt.MQTTMessage]]:
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"test-{user}", protocol=mqtt.MQTTv5)
        client.username_pw_set(user, self.password(user) if password is None else password)
        got: list[mqtt.MQTTMessage] = []
        connected = threading.Event()
        client.on_connect = lambda c, u, f, rc, p: connected.set()
        client.on_message = lambda c, u, m: got.append(m)
        client.connect(self.host, self.port)
        client.loop_start()
        self.clients.append(client)
        assert connected.wait(5) and client.is_connected(), f"{user} could not connect"
        return client, got

    def close(self) -> None:
        for client in self.clients:
            client.disconnect()
            client.loop_stop()
        self.broker.stop()


def puback(client: mqtt.Client, topic: str, payload: bytes = b"{}", retain: bool = False) -> int:
    """The reason code of the PUBACK for one QoS 1 publish."""
    codes: list[int] = []
    done = threading.Event()
    previous = client.on_publish

    def on_publish(c: mqtt.Client, u: object, mid: int, rc: ReasonCode, p: object) -> None:
        codes.append(rc.value)
        done.set()

    client.on_publish = on_publish
    client.publish(topic, payload, qos=1, retain=retain)
    assert done.wait(5), f"no PUBACK for {topic}"
    client.on_publish = previous
    return codes[0]


def suback(client: mqtt.Client, topic: str) -> int:
    """The reason code the broker grants one QoS 1 subscription."""
    codes: list[int] = []
    done = threading.Event()

    def on_subscribe(c: mqtt.Client, u: object, mid: int, rcs: list[ReasonCode], p: object) -> None:
        codes.extend(rc.value for rc in rcs)
        done.set()

    client.on_subscribe = on_subscribe
    client.subscribe(topic, qos=1)
    assert done.wait(5), f"no SUBACK for {topic}"
    return codes[0]


def settle(messages: list[mqtt.MQTTMessage], count: int, timeout_s: float = 3.0) -> list[str]:
    deadline = time.monotonic() + timeout_s
    while len(messages) < count and time.monotonic() < deadline:
        time.sleep(0.02)
    return [m.topic for m in messages]


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    made = Site(tmp_path)
    made.broker.start()
    try:
        yield made
    finally:
        made.close()


def test_shipped_config_is_locked_down() -> None:
    conf = (CONFIG / "mosquitto.conf").read_text(encoding="utf-8")
    active = [line.split() for line in conf.splitlines() if line.strip() and not line.startswith("#")]
    settings = {words[0]: words[1:] for words in active}
    assert settings["allow_anonymous"] == ["false"] and settings["persistence"] == ["true"]
    assert "password_file" in settings and "acl_file" in settings
    assert "max_queued_messages" in settings and "autosave_interval" in settings
    assert re.search(r"^#listener 8883$", conf, re.MULTILINE)
    assert settings["use_username_as_clientid"] == ["true"]
    # a per-listener option: it must follow every listener line, the commented TLS one included
    blocks = re.findall(r"^(#?)(listener .*\n(?:\1\S.*\n)*)", conf, re.MULTILINE)
    assert [block.split()[1] for _, block in blocks] == ["1883", "8883"]
    for prefix, block in blocks:
        assert f"\n{prefix}use_username_as_clientid true\n" in block, block
    acl = (CONFIG / "acl").read_text(encoding="utf-8")
    patterns = [line for line in acl.splitlines() if line.startswith("pattern ")]
    assert patterns == PATTERNS == ["pattern write checkpoint/v1/%u/entry",
                                    "pattern write checkpoint/v1/%u/status",
                                    "pattern write checkpoint/v1/%u/alert",
                                    "pattern write checkpoint/v1/%u/resolution",
                                    "pattern read checkpoint/v1/%u/cmd/#"]
    assert not re.search(r"^(user|topic) ", acl, re.MULTILINE)  # user blocks come from broker-user


def test_anonymous_and_wrong_passwords_are_refused(site: Site) -> None:
    for username, password in [(None, None), ("s1/gate-north", b"wrong"), ("nobody", b"x")]:
        with pytest.raises(BrokerError, match="refused: Not authorized"):  # CONNACK 135
            probe_broker(site.host, site.port, timeout_s=3, username=username,
                         password=password)
    probe_broker(site.host, site.port, timeout_s=3, username="s1/gate-north",
                 password=site.password("s1/gate-north").encode())


def test_kiosk_publishes_only_under_its_own_prefix(site: Site) -> None:
    kiosk, _ = site.connect("s1/gate-north")
    collector, seen = site.connect("collector-1")
    assert suback(collector, "$share/collectors/checkpoint/v1/+/+/entry") < 0x80
    own = "checkpoint/v1/s1/gate-north"
    assert puback(kiosk, f"{own}/entry") in OK
    assert puback(kiosk, f"{own}/status", retain=True) in OK
    assert puback(kiosk, f"{own}/alert") in OK
    assert puback(kiosk, f"{own}/resolution") in OK
    for topic in [f"{own}/cmd/open", "checkpoint/v1/s1/gate-south/entry",
                  "checkpoint/v1/s1/gate-south/resolution",
                  "checkpoint/v1/s1/gate-south/status", "checkpoint/v1/s2/gate-north/entry",
                  "checkpoint/v1/s1/revocations", "checkpoint/v1/s1/report", f"{own}/entry/more",
                  "checkpoint/v1/s1/gate-south/cmd/open", "other"]:
        assert puback(kiosk, topic) == NOT_AUTHORIZED, topic
    assert settle(seen, 1) == [f"{own}/entry"]  # the collector got the one allowed entry, nothing else
    assert settle(seen, 2, 0.3) == [f"{own}/entry"]


def test_commands_reach_only_their_kiosk(site: Site) -> None:
    north, north_got = site.connect("s1/gate-north")
    south, south_got = site.connect("s1/gate-south")
    office, _ = site.connect("office")
    assert suback(north, "checkpoint/v1/s1/gate-north/cmd/#") < 0x80
    assert suback(south, "checkpoint/v1/s1/gate-south/cmd/#") < 0x80
    for topic in ["checkpoint/v1/s1/gate-south/cmd/#", "checkpoint/v1/+/+/cmd/#", "#"]:
        code = suback(north, topic)
        assert code == NOT_AUTHORIZED or code < 0x80, topic  # refused, or granted and then filtered
    assert puback(office, "checkpoint/v1/s1/gate-south/cmd/open") in OK
    assert puback(office, "checkpoint/v1/s1/gate-north/cmd/ping") in OK
    assert puback(south, "checkpoint/v1/s1/gate-north/cmd/open") == NOT_AUTHORIZED
    assert settle(south_got, 1) == ["checkpoint/v1/s1/gate-south/cmd/open"]
    # overlapping grants may deliver the ping more than once; gate-south's open never reaches gate-north
    assert set(settle(north_got, 4, 1.0)) == {"checkpoint/v1/s1/gate-north/cmd/ping"}


def test_revocations_are_per_site(site: Site) -> None:
    office, _ = site.connect("office")
    assert puback(office, "checkpoint/v1/s1/revocations", b"CKR1.s1", retain=True) in OK
    assert puback(office, "checkpoint/v1/s2/revocations", b"CKR1.s2", retain=True) in OK
    kiosk, got = site.connect("s1/gate-north")
    assert suback(kiosk, "checkpoint/v1/s1/revocations") < 0x80
    code = suback(kiosk, "checkpoint/v1/s2/revocations")
    assert settle(got, 1) == ["checkpoint/v1/s1/revocations"] and got[0].payload == b"CKR1.s1"
    assert code == NOT_AUTHORIZED or settle(got, 2, 0.5) == ["checkpoint/v1/s1/revocations"]


def test_collector_reads_and_reports_but_cannot_impersonate(site: Site) -> None:
    collector, seen = site.connect("collector-1")
    assert suback(collector, "$share/collectors/checkpoint/v1/+/+/entry") < 0x80
    assert puback(collector, "checkpoint/v1/s1/report") in OK
    for topic in ["checkpoint/v1/s1/gate-north/entry", "checkpoint/v1/s1/gate-north/cmd/open",
                  "checkpoint/v1/s1/revocations", "checkpoint/v1/s1/gate-north/status"]:
        assert puback(collector, topic) == NOT_AUTHORIZED, topic
    # The kiosk patterns expand for "collector-1" to a topic one level short of any kiosk's: allowed,
    # and read by nobody (documented in config/mosquitto/README.md).
    assert puback(collector, "checkpoint/v1/collector-1/entry") in OK
    assert settle(seen, 1, 0.3) == []
    assert suback(collector, "checkpoint/v1/+/+/cmd/#") in (NOT_AUTHORIZED, 0, 1)
    office, _ = site.connect("office")
    kiosk, _ = site.connect("s1/gate-north")
    assert puback(kiosk, "checkpoint/v1/s1/gate-north/entry") in OK
    assert settle(seen, 1) == ["checkpoint/v1/s1/gate-north/entry"]
    seen.clear()
    assert puback(office, "checkpoint/v1/s1/gate-north/cmd/open") in OK
    assert settle(seen, 1, 0.5) == []


def test_broker_user_updates_in_place(tmp_path: Path) -> None:
    passwd, acl, out = tmp_path / "passwd", tmp_path / "acl", tmp_path / "north.pw"
    shutil.copy(CONFIG / "acl", acl)
    for _ in range(2):
        broker_user("--passwd", str(passwd), "--acl", str(acl), "--site", "s1", "--kiosk", "gate-north",
                    "--password-out", str(out))
    first = out.read_text(encoding="utf-8")
    broker_user("--passwd", str(passwd), "--acl", str(acl), "--site", "s1", "--kiosk", "gate-north",
                "--password-out", str(out))
    assert out.read_text(encoding="utf-8") != first and len(first.strip()) >= 32
    assert stat.S_IMODE(out.stat().st_mode) == 0o600 and stat.S_IMODE(passwd.stat().st_mode) == 0o600
    users = [line.split(":")[0] for line in passwd.read_text(encoding="utf-8").splitlines()]
    assert users == ["s1/gate-north"]
    text = acl.read_text(encoding="utf-8")
    assert text.count("user s1/gate-north") == 1
    assert len([line for line in text.splitlines() if line.startswith("pattern ")]) == len(PATTERNS) == 5
    assert "topic read checkpoint/v1/s1/revocations" in text
    fresh = tmp_path / "new-acl"
    broker_user("--passwd", str(passwd), "--acl", str(fresh), "--collector", "c1", "--password-out",
                str(tmp_path / "c1.pw"))
    assert fresh.read_text(encoding="utf-8").startswith("\n".join(PATTERNS) + "\n\n# kiosk-admin")
    assert "user c1\ntopic read checkpoint/v1/+/+/entry" in fresh.read_text(encoding="utf-8")
    for bad in (["--site", "s/1", "--kiosk", "k"], ["--kiosk", "k"], ["--collector", "a/b"],
                ["--office", "a+b"]):
        with pytest.raises(AdminError):
            broker_user("--passwd", str(passwd), *bad)
