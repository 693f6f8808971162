"""The 告警 Alerts page on Starlette's TestClient: roles, acknowledge and resolve with CSRF and audit, the
fever card joined with its entry, offline kiosks, and the event stream of new alerts."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import uuid6
from starlette.testclient import TestClient
from web_helpers import KEY, NOW, csrf_of, store_with_users
from web_helpers import sign_in as sign_in_as

from checkpoint.entry import Alert, Entry, Status, format_ts
from office.store.base import Store, StoredAlert
from office.web import alerts as alerts_module
from office.web.app import create_app


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with store_with_users(tmp_path / "office.sqlite") as opened:
        yield opened


@pytest.fixture
def client(store: Store) -> Iterator[TestClient]:
    with TestClient(create_app(store, KEY, now=lambda: NOW), follow_redirects=False) as test_client:
        yield test_client


def sign_in(client: TestClient, name: str) -> str:
    """Signs in; returns the session's CSRF token."""
    assert sign_in_as(client, name, next_path="/alerts")[0] == 303
    return csrf_of(client.get("/alerts").text)


def fever_entry(store: Store, at: datetime) -> Entry:
    payload: dict[str, Any] = {
        "schema": "checkpoint.entry/1", "id": str(uuid6.uuid7()), "site": "s1", "kiosk": "gate-north",
        "seq": 1, "ts": format_ts(at), "direction": "in", "decision": "deny", "reasons": ["fever"],
        "override": None, "temperature": {"skin_c": 36.4, "body_c": 38.2, "ambient_c": 5.2, "samples": 5},
        "health": {"scheme": "token", "status": "green"},
        "pass": {"pid": "P-00017", "cat": "red", "hh": "9-23-301"},
        "person": {"ref": "ab" * 32, "masked": "3701**************"},
        "timing_ms": {"decode": 6.1, "decide": 0.3, "session": 1840.0},
    }
    raw = json.dumps(payload).encode()
    stored = Entry.model_validate_json(raw)
    store.insert_entries([(stored, raw)], at)
    return stored


def fever_alert(store: Store, at: datetime, entry_id: str | None = None) -> Alert:
    alert = Alert(kind="fever", ts=at, detail="body 38.2 °C", id=str(uuid6.uuid7()), entry_id=entry_id)
    store.insert_alerts([StoredAlert("s1", "gate-north", alert, at)])
    return alert


def card(html: str, key: str) -> str:
    match = re.search(rf'<article[^>]*data-alert="{re.escape(key)}".*?</article>', html, re.S)
    assert match, html
    return match[0]


def test_every_route_needs_a_signed_in_user(client: TestClient) -> None:
    assert client.get("/alerts").headers["location"] == "/signin?next=/alerts"
    assert client.get("/alerts/events").headers["location"] == "/signin?next=/alerts/events"
    assert client.post("/alerts/ack", data={"alert": "x"}).status_code == 303  # to the sign-in page


def test_a_fever_shows_gate_time_temperature_colour_household_person_and_entry(client: TestClient,
                                                                               store: Store) -> None:
    entry = fever_entry(store, NOW - timedelta(minutes=3))
    alert = fever_alert(store, NOW - timedelta(minutes=3), entry.id)
    sign_in(client, "guard1")
    page = client.get("/alerts")
    assert page.status_code == 200 and "<h1>告警</h1>" in page.text
    assert '<a href="/alerts" aria-current="page">告警</a>' in page.text
    shown = card(page.text, alert.id or "")
    for text in ("体温异常", "s1 / gate-north", "2026-03-19 14:57:00", "38.2 °C", "红色", "9-23-301",
                 "3701**************", entry.id):
        assert text in shown, text
    assert "ab" * 32 not in page.text  # the person's reference never reaches the page
    assert "/alerts/ack" in shown and "/alerts/resolve" not in shown  # a guard may only acknowledge
    assert '<script src="/static/alerts.js" defer></script>' in page.text and "<script>" not in page.text


def test_open_alerts_come_first_newest_first_with_offline_kiosks(client: TestClient, store: Store) -> None:
    old = fever_alert(store, NOW - timedelta(hours=2))
    new = fever_alert(store, NOW - timedelta(hours=1))
    done = fever_alert(store, NOW - timedelta(minutes=1))
    store.resolve_alert(done.id or "", by="clerk", at=NOW, note="checked again: 36.8")
    store.record_status("s1", "gate-south", Status(state="offline"), NOW - timedelta(minutes=30))
    sign_in(client, "clerk")
    html = client.get("/alerts").text
    order = re.findall(r'data-alert="([^"]*)" data-kind="(\w+)"', html)
    assert [kind for _, kind in order] == ["offline", "fever", "fever", "fever"]
    assert [key for key, _ in order][1:] == [new.id, old.id, done.id]
    assert "checked again: 36.8" in card(html, done.id or "")
    offline = card(html, order[0][0])
    assert "设备离线" in offline and "s1 / gate-south" in offline and "/alerts/resolve" in offline


def test_acknowledge_and_resolve_need_the_csrf_token_and_are_audited(client: TestClient,
                                                                     store: Store) -> None:
    alert = fever_alert(store, NOW - timedelta(minutes=1))
    key = alert.id or ""
    token = sign_in(client, "guard1")
    assert client.post("/alerts/ack", data={"alert": key}).status_code == 403
    assert client.post("/alerts/ack", data={"alert": key, "csrf": "wrong"}).status_code == 403
    refused = client.post("/alerts/resolve", data={"alert": key, "note": "x", "csrf": token})
    assert refused.status_code == 403  # a guard may not resolve
    done = client.post("/alerts/ack", data={"alert": key, "note": "去门口看看", "csrf": token})
    assert done.status_code == 303 and done.headers["location"] == "/alerts"
    assert "guard1 于 2026-03-19 15:00:00 确认: 去门口看看" in card(client.get("/alerts").text, key)
    client.post("/signout", data={"csrf": token})
    token = sign_in(client, "clerk")
    assert client.post("/alerts/resolve", data={"alert": key, "note": "", "csrf": token}).status_code == 303
    assert store.alert_handling([key])[key].resolved_by is None  # a resolution needs a note
    client.post("/alerts/resolve", data={"alert": key, "note": "复测 36.9，放行", "csrf": token})
    shown = card(client.get("/alerts").text, key)
    assert "已处理" in shown and "复测 36.9，放行" in shown and "<form" not in shown
    actions = [(a.who, a.action, a.detail) for a in store.audit_log() if a.action.startswith("alert.")]
    assert actions == [("clerk", "alert.resolve", f"{key} note=复测 36.9，放行"),
                       ("guard1", "alert.ack", f"{key} note=去门口看看")]


def test_the_event_stream_yields_a_new_alert_as_a_card(client: TestClient, store: Store,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(alerts_module, "STREAM_S", 1.5)
    fever_alert(store, NOW - timedelta(hours=1))  # already on the page: not sent again
    entry = fever_entry(store, NOW)
    sign_in(client, "guard1")
    arrived: list[Alert] = []
    later = threading.Timer(0.4, lambda: arrived.append(fever_alert(store, NOW, entry.id)))
    later.start()
    response = client.get("/alerts/events")
    later.join()
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = [block for block in response.text.split("\n\n") if "event: alert" in block]
    assert len(events) == 1
    lines = events[0].split("\n")
    assert lines[0] == f"id: {store.recent_alerts(limit=1)[0].n}" and lines[1] == "event: alert"
    html = "\n".join(line.removeprefix("data: ") for line in lines[2:])
    assert f'data-alert="{arrived[0].id}"' in html and "38.2 °C" in html and "红色" in html
    assert entry.id in html and 'name="csrf"' in html


def test_the_event_stream_resumes_after_the_last_event_id(client: TestClient, store: Store,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(alerts_module, "STREAM_S", 0.2)
    first, second = fever_alert(store, NOW - timedelta(minutes=2)), fever_alert(store, NOW)
    sign_in(client, "guard1")
    n_first = store.recent_alerts()[1].n
    text = client.get("/alerts/events", headers={"last-event-id": str(n_first)}).text
    assert f'data-alert="{second.id}"' in text and f'data-alert="{first.id}"' not in text
    assert text.startswith("retry: 1000\n\n")


def test_an_alert_sent_without_an_id_is_acknowledged_and_resolved_by_its_number(client: TestClient,
                                                                                store: Store) -> None:
    bare = Alert(kind="fault", ts=NOW - timedelta(minutes=2), detail="thermometer: no answer")
    store.insert_alerts([StoredAlert("s1", "gate-north", bare, NOW)])
    token = sign_in(client, "clerk")
    key = next(view.key for view in store.recent_alerts() if view.stored.alert == bare)
    shown = card(client.get("/alerts").text, key)
    assert key.startswith("n:") and f'name="alert" value="{key}"' in shown and "设备故障" in shown
    client.post("/alerts/ack", data={"alert": key, "note": "去看看", "csrf": token})
    client.post("/alerts/resolve", data={"alert": key, "note": "换了测温模块", "csrf": token})
    shown = card(client.get("/alerts").text, key)
    assert "已处理" in shown and "换了测温模块" in shown and "<form" not in shown
    assert [a.detail for a in store.audit_log() if a.action.startswith("alert.")] == [
        f"{key} note=换了测温模块", f"{key} note=去看看"]


def test_the_entry_id_links_to_its_trace_for_the_office_only(client: TestClient, store: Store) -> None:
    entry = fever_entry(store, NOW - timedelta(minutes=3))
    alert = fever_alert(store, NOW - timedelta(minutes=3), entry.id)
    token = sign_in(client, "clerk")
    link = f'<a href="/trace?entry={entry.id}"'
    assert link in card(client.get("/alerts").text, alert.id or "")
    client.post("/signout", data={"csrf": token})
    sign_in(client, "guard1")
    shown = card(client.get("/alerts").text, alert.id or "")
    assert entry.id in shown and link not in shown  # a guard may not open the trace page


def test_a_borrowed_health_code_is_a_forgery_alert_that_names_its_reason(client: TestClient,
                                                                          store: Store) -> None:
    """Issue 15: the kiosk raises a forgery alert for `health_code_not_holder`; the page names it."""
    at = NOW - timedelta(minutes=1)
    payload: dict[str, Any] = {
        "schema": "checkpoint.entry/1", "id": str(uuid6.uuid7()), "site": "s1", "kiosk": "gate-north",
        "seq": 2, "ts": format_ts(at), "direction": "in", "decision": "deny",
        "reasons": ["health_code_not_holder"], "override": None, "temperature": None,
        "health": {"scheme": "token", "status": "green"}, "pass": {"pid": "P-00018", "cat": "green",
                                                                    "hh": "9-23-302"},
        "person": {"ref": "cd" * 32, "masked": "王*"},
        "timing_ms": {"decode": 5.0, "decide": 0.2, "session": 900.0},
    }
    raw = json.dumps(payload).encode()
    entry = Entry.model_validate_json(raw)
    store.insert_entries([(entry, raw)], at)
    alert = Alert(kind="forgery", ts=at, entry_id=entry.id, id=str(uuid6.uuid7()),
                  detail="health_code_not_holder: the health code is not the pass holder's (pass P-00018)")
    store.insert_alerts([StoredAlert("s1", "gate-north", alert, at)])
    sign_in(client, "guard1")
    shown = re.sub(r"<[^>]+>", " ", card(client.get("/alerts").text, str(alert.id)))
    assert "伪造" in shown and "健康码非本人" in shown and "9-23-302" in shown
