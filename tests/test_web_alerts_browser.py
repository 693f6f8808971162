"""The 告警 page in a real headless Chromium (Debian's, driven by Playwright), served by the office service:
a fever stored while the page is open appears on it within 1 s, without a reload."""

from __future__ import annotations

import http.cookiejar
import json
import re
import urllib.parse
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import uuid6
from playwright.sync_api import Browser
from web_helpers import office_web

from checkpoint.entry import Alert, Entry, Status, format_ts
from office.store.base import StoredAlert
from office.store.sqlite import SqliteStore
from office.web.passwords import hash_password

PASSWORD = "correct horse battery"
COUNT_SOUNDS = """window.played = [];
const play = HTMLMediaElement.prototype.play;
HTMLMediaElement.prototype.play = function () { window.played.push(this.src); return play.call(this); };"""


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """The office service with the web app only, on a SQLite store holding a guard; its URL and database."""
    db = tmp_path / "office.sqlite"
    with SqliteStore(db) as store:
        store.add_user("wang", "guard", hash_password(PASSWORD), by="test", at=datetime.now(UTC))
    with office_web(tmp_path, db) as served:
        yield served.url, db
    assert served.stop_s < 5  # an open event stream does not hold the server up


def store_fever(db: Path) -> tuple[Entry, Alert]:
    """A fever entry and its alert, written as the collector writes them."""
    now = datetime.now(UTC)
    raw = json.dumps({
        "schema": "checkpoint.entry/1", "id": str(uuid6.uuid7()), "site": "s1", "kiosk": "gate-north",
        "seq": 1, "ts": format_ts(now), "direction": "in", "decision": "deny", "reasons": ["fever"],
        "override": None, "temperature": {"skin_c": 36.4, "body_c": 38.4, "ambient_c": 5.2, "samples": 5},
        "health": {"scheme": "token", "status": "green"},
        "pass": {"pid": "P-1", "cat": "blue", "hh": "9-1-101"},
        "person": {"ref": "cd" * 32, "masked": "3701**************"},
        "timing_ms": {"decode": 6.1, "decide": 0.3, "session": 1840.0},
    }).encode()
    entry = Entry.model_validate_json(raw)
    alert = Alert(kind="fever", ts=now, detail="body 38.4 °C", id=str(uuid6.uuid7()), entry_id=entry.id)
    with SqliteStore(db) as store:
        store.insert_entries([(entry, raw)], now)
        store.insert_alerts([StoredAlert("s1", "gate-north", alert, now)])
    return entry, alert


def test_a_stored_fever_appears_on_the_open_alerts_page_within_a_second(
        served: tuple[str, Path], browser: Browser, tmp_path: Path) -> None:
    url, db = served
    page = browser.new_page(viewport={"width": 1440, "height": 900}, locale="zh-CN")
    page.add_init_script(COUNT_SOUNDS)
    try:
        page.goto(f"{url}/alerts")
        page.fill("input[name=username]", "wang")
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(f"{url}/alerts")
        assert page.locator("h1").inner_text() == "告警"
        assert page.locator("#no-alerts").is_visible()
        page.evaluate("window.stillTheSamePage = true")
        page.wait_for_timeout(700)  # the event stream is open
        entry, alert = store_fever(db)
        card = page.locator(f"[data-alert='{alert.id}']")
        card.wait_for(timeout=1000)
        assert page.evaluate("window.stillTheSamePage") is True
        text = card.inner_text()
        for shown in ("体温异常", "38.4 °C", "蓝色", "9-1-101", "3701**************", entry.id):
            assert shown in text, shown
        assert page.locator("#no-alerts").count() == 0
        assert page.evaluate("window.played") == [f"{url}/static/alert.wav"]  # it sounded, once
        page.screenshot(path=str(tmp_path / "alert.png"), full_page=True)
        page.fill(f"[data-alert='{alert.id}'] form.ack input[name=note]", "马上到")
        page.click(f"[data-alert='{alert.id}'] form.ack button")
        page.wait_for_url(f"{url}/alerts")
        assert "wang 于" in page.locator(f"[data-alert='{alert.id}']").inner_text()
    finally:
        page.close()


@pytest.fixture
def kept() -> Iterator[list[object]]:
    """Holds objects until after the fixtures requested later have been torn down."""
    held: list[object] = []
    yield held
    held.clear()


def test_an_open_event_stream_ends_when_the_service_stops(kept: list[object],
                                                          served: tuple[str, Path]) -> None:
    url, _ = served
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
    with opener.open(f"{url}/signin", timeout=5) as signin:
        match = re.search(r'name="csrf" value="([^"]+)"', signin.read().decode())
    assert match
    form = {"csrf": match[1], "username": "wang", "password": PASSWORD, "next": "/alerts"}
    opener.open(f"{url}/signin", data=urllib.parse.urlencode(form).encode(), timeout=5).close()
    stream = opener.open(f"{url}/alerts/events", timeout=5)
    assert stream.headers["content-type"].startswith("text/event-stream")
    assert stream.readline() == b"retry: 1000\n"
    kept.append(stream)  # still open when `served` stops the service and checks it stopped within seconds


def test_a_kiosk_going_offline_appears_live_and_is_marked_when_it_is_back(
        served: tuple[str, Path], browser: Browser) -> None:
    url, db = served
    online = Status.model_validate({"state": "online", "camera": "ok", "thermometer": "ok"})
    with SqliteStore(db) as store:
        store.record_status("s1", "gate-east", online, datetime.now(UTC))
    page = browser.new_page(viewport={"width": 1280, "height": 900}, locale="zh-CN")
    page.add_init_script(COUNT_SOUNDS)
    try:
        page.goto(f"{url}/alerts")
        page.fill("input[name=username]", "wang")
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(f"{url}/alerts")
        page.wait_for_timeout(700)
        with SqliteStore(db) as store:  # the last will
            store.record_status("s1", "gate-east", Status.model_validate({"state": "offline"}),
                                datetime.now(UTC))
        card = page.locator("article[data-kind='offline']")
        card.wait_for(timeout=2000)
        assert "设备离线" in card.inner_text() and "gate-east" in card.inner_text()
        assert page.evaluate("window.played") == [f"{url}/static/alert.wav"]
        with SqliteStore(db) as store:
            store.record_status("s1", "gate-east", online, datetime.now(UTC))
        page.wait_for_selector("article[data-kind='offline'].back", timeout=2000)
        assert "已恢复在线" in card.inner_text()
        assert page.locator("article[data-kind='offline']").count() == 1
    finally:
        page.close()
