"""The 总览 page in a real headless Chromium: it changes without a reload when a kiosk reports, and a kiosk
that falls silent turns grey with no message from it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fixtures.collector_data import insert, make_entry
from playwright.sync_api import Browser
from web_helpers import office_web

from checkpoint.entry import Status
from office.store.sqlite import SqliteStore
from office.web.passwords import hash_password

PASSWORD = "correct horse battery"
SILENT_AFTER_S = 10


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    db = tmp_path / "office.sqlite"
    with SqliteStore(db) as store:
        store.add_user("wang", "guard", hash_password(PASSWORD), by="test", at=datetime.now(UTC))
    with office_web(tmp_path, db, config={"web": {"silent_after_s": SILENT_AFTER_S}}) as served:
        yield served.url, db
    assert served.stop_s < 5  # the page's open event stream does not hold the server up


def beat(db: Path, kiosk: str, *, age_s: float, **fields: str) -> None:
    status = Status.model_validate({"state": "online", "camera": "ok", "thermometer": "ok", **fields})
    with SqliteStore(db) as store:
        store.record_status("s1", kiosk, status, datetime.now(UTC) - timedelta(seconds=age_s))


def arrive(db: Path, kiosk: str, seq: int) -> None:
    with SqliteStore(db) as store:
        insert(store, [make_entry("s1", kiosk, seq, datetime.now(UTC))])


def test_the_overview_moves_by_itself(served: tuple[str, Path], browser: Browser) -> None:
    url, db = served
    beat(db, "gate-north", age_s=SILENT_AFTER_S - 3)
    page = browser.new_page(viewport={"width": 1280, "height": 900}, locale="zh-CN")
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    try:
        page.goto(f"{url}/overview")
        page.fill("input[name=username]", "wang")
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(f"{url}/overview")
        north = page.locator("tr[data-kiosk='s1/gate-north']")
        assert north.get_attribute("data-state") == "online"
        page.evaluate("window.stillTheSamePage = true")
        beat(db, "gate-south", age_s=0, camera="fault")
        south = page.locator("tr[data-kiosk='s1/gate-south']")
        south.wait_for(timeout=3000)
        assert "摄像头: 故障" in south.locator("td.faults").inner_text()
        page.wait_for_selector("tr[data-kiosk='s1/gate-north'][data-state='silent']", timeout=6000)
        assert "silent-row" in (north.get_attribute("class") or "")
        beat(db, "gate-north", age_s=0, thermometer="fault")  # its row, swapped in once, is swapped again
        page.wait_for_selector("tr[data-kiosk='s1/gate-north'][data-state='online']", timeout=3000)
        assert "测温: 故障" in north.locator("td.faults").inner_text()
        assert page.locator("tr[data-kiosk]").count() == 2
        arrive(db, "gate-north", 1)  # today's table, whole: a gate with its first entry
        page.wait_for_selector("tr[data-gate='s1/gate-north'] td.n-entries:text-is('1')", timeout=3000)
        arrive(db, "gate-north", 2)  # that gate's row and the totals only
        page.wait_for_selector("tr[data-gate='s1/gate-north'] td.n-entries:text-is('2')", timeout=3000)
        page.wait_for_selector("p.totals[data-totals='2']", timeout=3000)
        assert page.evaluate("window.stillTheSamePage") is True
        assert page.evaluate("window.stillTheSamePage") is True
        assert errors == []  # htmx runs under the app's CSP: no inline style or eval refused
    finally:
        page.close()
