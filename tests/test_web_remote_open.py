"""Remote open from a fever alert, on Starlette's TestClient and a real mosquitto: who may send it, the
confirmation with a note, CSRF, the signed command on the kiosk's topic, the audit, and why the button is
absent without a command key or a broker."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import uuid6
from mqtt_helpers import Observer, wait_for
from starlette.testclient import TestClient
from web_helpers import KEY, NOW, csrf_of, store_with_users
from web_helpers import sign_in as sign_in_as

from checkpoint.commands import PREFIX, CommandPayload
from checkpoint.entry import Alert, Entry, Resolution, format_ts
from checkpoint.keys import KeyRing, load_public_key
from checkpoint.signed import read_signed
from checkpoint.topics import topics
from kiosk.mqtt.local_broker import LocalBroker, free_port
from office.admin.cli import keygen
from office.config import SiteSection
from office.mqtt import BrokerLink
from office.store.base import Store, StoredAlert, StoredResolution
from office.web.app import create_app
from office.web.core import WebSettings

T = topics("s1", "gate-north")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with store_with_users(tmp_path / "office.sqlite") as opened:
        yield opened


def app_client(store: Store, settings: WebSettings) -> TestClient:
    return TestClient(create_app(store, KEY, settings, now=lambda: NOW), follow_redirects=False)


def command_key(tmp_path: Path) -> Path:
    path = tmp_path / "office-command.key"
    keygen(path)
    return path


def settings_with(key: Path | None, port: int | None) -> WebSettings:
    sites = {"s1": SiteSection.model_validate({"command_key_file": str(key)})} if key else {}
    broker = BrokerLink("127.0.0.1", port, None, None, None) if port is not None else None
    return WebSettings(sites=sites, broker=broker)


def attention(store: Store, at: datetime, *, decision: str = "attention") -> tuple[Entry, Alert]:
    payload: dict[str, Any] = {
        "schema": "checkpoint.entry/1", "id": str(uuid6.uuid7()), "site": "s1", "kiosk": "gate-north",
        "seq": 1, "ts": format_ts(at), "direction": "in", "decision": decision, "reasons": ["fever"],
        "override": None, "temperature": {"skin_c": 36.4, "body_c": 38.2, "ambient_c": 5.2, "samples": 5},
        "health": {"scheme": "token", "status": "green"},
        "pass": {"pid": "P-00017", "cat": "red", "hh": "9-23-301"},
        "person": {"ref": "ab" * 32, "masked": "3701**************"},
        "timing_ms": {"decode": 6.1, "decide": 0.3, "session": 1840.0},
    }
    raw = json.dumps(payload).encode()
    entry = Entry.model_validate_json(raw)
    store.insert_entries([(entry, raw)], at)
    alert = Alert(kind="fever", ts=at, detail="body 38.2 °C", id=str(uuid6.uuid7()), entry_id=entry.id)
    store.insert_alerts([StoredAlert("s1", "gate-north", alert, at)])
    return entry, alert


def sign_in(client: TestClient, name: str) -> str:
    assert sign_in_as(client, name, next_path="/alerts")[0] == 303
    return csrf_of(client.get("/alerts").text)


def open_link(key: str) -> str:
    return f'href="/alerts/open?alert={key}"'


def test_an_office_user_confirms_with_a_note_and_the_kiosk_gets_one_signed_open(
        tmp_path: Path, store: Store, mqtt_broker: LocalBroker) -> None:
    key_path = command_key(tmp_path)
    entry, alert = attention(store, NOW - timedelta(minutes=1))
    observer = Observer(mqtt_broker, f"{T.cmd}/#")
    try:
        with app_client(store, settings_with(key_path, mqtt_broker.port)) as client:
            token = sign_in(client, "clerk")
            assert open_link(alert.id or "") in client.get("/alerts").text
            confirm = client.get(f"/alerts/open?alert={alert.id}")
            assert confirm.status_code == 200 and "远程开门" in confirm.text and entry.id in confirm.text
            assert 'action="/alerts/open"' in confirm.text and "9-23-301" in confirm.text
            assert client.post("/alerts/open", data={"alert": alert.id, "note": "x"}).status_code == 403
            assert client.get("/alerts/open", params={"alert": alert.id}).status_code == 200
            no_note = client.post("/alerts/open", data={"alert": alert.id, "note": " ", "csrf": token})
            assert no_note.status_code == 400 and "请填写原因" in no_note.text
            sent = client.post("/alerts/open", data={"alert": alert.id, "note": "复测 36.9", "csrf": token})
            assert sent.status_code == 200, sent.text
            assert "开门指令已发送到 gate-north" in sent.text
            wait_for(lambda: observer.on(f"{T.cmd}/open"), 5, "the open on the kiosk's topic")
    finally:
        observer.close()
    [payload] = observer.on(f"{T.cmd}/open")
    [(_, _, retained)] = [m for m in observer.messages if m[0] == f"{T.cmd}/open"]
    assert not retained
    ring = KeyRing.of(load_public_key(key_path, allow_private=True))
    command = read_signed(CommandPayload, payload.decode(), PREFIX, ring)
    assert isinstance(command, CommandPayload), command
    assert (command.site, command.kiosk, command.cmd, command.op, command.entry) == (
        "s1", "gate-north", "open", "clerk", entry.id)
    assert command.exp - command.iat == 60 and command.iat == int(NOW.timestamp())
    [audit] = [a for a in store.audit_log() if a.action == "alert.remote_open"]
    assert audit.who == "clerk"
    assert audit.detail == (f"site=s1 kiosk=gate-north entry={entry.id} nonce={command.nonce} note=复测 36.9")
    assert command.nonce in sent.text


def test_a_guard_sees_no_button_and_cannot_send_an_open(tmp_path: Path, store: Store,
                                                        mqtt_broker: LocalBroker) -> None:
    _, alert = attention(store, NOW - timedelta(minutes=1))
    with app_client(store, settings_with(command_key(tmp_path), mqtt_broker.port)) as client:
        token = sign_in(client, "guard1")
        assert "/alerts/open" not in client.get("/alerts").text
        assert client.get(f"/alerts/open?alert={alert.id}").status_code == 403
        refused = client.post("/alerts/open", data={"alert": alert.id, "note": "x", "csrf": token})
        assert refused.status_code == 403
    assert not [a for a in store.audit_log() if a.action == "alert.remote_open"]


def test_without_a_command_key_or_a_broker_the_page_says_why(tmp_path: Path, store: Store) -> None:
    _, alert = attention(store, NOW - timedelta(minutes=1))
    with app_client(store, settings_with(None, free_port())) as client:
        token = sign_in(client, "clerk")
        page = client.get("/alerts").text
        assert open_link(alert.id or "") not in page and "该小区未配置开门签名密钥" in page
        refused = client.post("/alerts/open", data={"alert": alert.id, "note": "x", "csrf": token})
        assert refused.status_code == 409 and "该小区未配置开门签名密钥" in refused.text
    with app_client(store, settings_with(command_key(tmp_path), None)) as client:
        sign_in(client, "clerk")
        page = client.get("/alerts").text
        assert open_link(alert.id or "") not in page and "未配置 MQTT 服务器" in page


def test_an_unreachable_broker_is_shown_and_audited(tmp_path: Path, store: Store) -> None:
    _, alert = attention(store, NOW - timedelta(minutes=1))
    with app_client(store, settings_with(command_key(tmp_path), free_port())) as client:
        token = sign_in(client, "boss")
        failed = client.post("/alerts/open", data={"alert": alert.id, "note": "开门", "csrf": token})
        assert failed.status_code == 502 and "发送失败" in failed.text
        assert "cannot reach the broker" in failed.text
    [audit] = [a for a in store.audit_log() if a.action == "alert.remote_open"]
    assert audit.who == "boss" and "failed: cannot reach the broker" in audit.detail


def test_only_a_fever_still_waiting_at_the_gate_can_be_opened(tmp_path: Path, store: Store,
                                                              mqtt_broker: LocalBroker) -> None:
    _, denied = attention(store, NOW - timedelta(minutes=2), decision="deny")
    fault = Alert(kind="fault", ts=NOW, detail="thermometer: no answer", id=str(uuid6.uuid7()))
    store.insert_alerts([StoredAlert("s1", "gate-north", fault, NOW)])
    with app_client(store, settings_with(command_key(tmp_path), mqtt_broker.port)) as client:
        token = sign_in(client, "clerk")
        page = client.get("/alerts").text
        assert open_link(fault.id or "") not in page  # (a fever's attention is checked on confirming)
        for key in (denied.id, fault.id, "no-such-alert"):
            assert client.get("/alerts/open", params={"alert": key}).status_code == 404
            sent = client.post("/alerts/open", data={"alert": key, "note": "x", "csrf": token})
            assert sent.status_code == 404 and re.search("找不到可远程开门的体温告警", sent.text)
    assert not [a for a in store.audit_log() if a.action == "alert.remote_open"]


def test_an_attention_the_kiosk_already_ended_is_not_opened_again(tmp_path: Path, store: Store,
                                                                   mqtt_broker: LocalBroker) -> None:
    entry, alert = attention(store, NOW - timedelta(minutes=3))
    held = Resolution(entry_id=entry.id, by="staff", ts=NOW - timedelta(minutes=2), opened=True)
    store.insert_resolutions([StoredResolution("s1", "gate-north", held, NOW - timedelta(minutes=2))])
    with app_client(store, settings_with(command_key(tmp_path), mqtt_broker.port)) as client:
        token = sign_in(client, "clerk")
        confirm = client.get("/alerts/open", params={"alert": alert.id})
        assert "已于 2026-03-19 14:58:00 结束（门岗按键开门）" in confirm.text
        assert "<textarea" not in confirm.text
        sent = client.post("/alerts/open", data={"alert": alert.id, "note": "x", "csrf": token})
        assert sent.status_code == 409 and "门岗按键开门" in sent.text
    assert not [a for a in store.audit_log() if a.action == "alert.remote_open"]


def test_the_confirmation_reads_in_english_too(tmp_path: Path, store: Store,
                                               mqtt_broker: LocalBroker) -> None:
    entry, alert = attention(store, NOW - timedelta(minutes=1))
    with app_client(store, settings_with(command_key(tmp_path), mqtt_broker.port)) as client:
        sign_in(client, "clerk")
        client.get("/lang/en")
        page = client.get("/alerts/open", params={"alert": alert.id}).text
        for text in ("Remote open", "valid 60 s and once", "Open the gate", "38.2 °C", "9-23-301", entry.id):
            assert text in page, text
        assert "远程开门" not in page
