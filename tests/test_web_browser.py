"""The office web app in a real headless Chromium (Debian's, driven by Playwright), served by the service.

`kiosk-office run`'s service runs here with ingest off and the web app on a free loopback port; the
browser signs in through the form and reads the overview in Chinese, on a phone and on a desk monitor.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from playwright.sync_api import Browser
from web_helpers import office_web

from checkpoint.entry import Status
from office.store.sqlite import SqliteStore
from office.web.passwords import hash_password

PASSWORD = "correct horse battery"


@pytest.fixture
def served(tmp_path: Path) -> Iterator[str]:
    """The office service with the web app only, on a SQLite store holding a user and two kiosks."""
    db = tmp_path / "office.sqlite"
    now = datetime.now(UTC)
    with SqliteStore(db) as store:
        store.add_user("wang", "guard", hash_password(PASSWORD), by="test", at=now)
        beat = Status.model_validate({"state": "online", "outbox": {"backlog": 2}, "camera": "ok",
                                      "thermometer": "ok", "version": "0.1.0"})
        store.record_status("s1", "gate-north", beat, now)
        store.record_status("s1", "gate-south", beat, now - timedelta(minutes=15))
    with office_web(tmp_path, db) as served:
        yield served.url


@pytest.mark.parametrize(("width", "height", "name"), [(390, 844, "phone"), (1440, 900, "desktop")])
def test_signing_in_through_the_form_shows_the_overview_in_chinese(
        served: str, browser: Browser, tmp_path: Path, width: int, height: int, name: str) -> None:
    page = browser.new_page(viewport={"width": width, "height": height}, locale="zh-CN")
    try:
        page.goto(f"{served}/overview")
        assert page.url == f"{served}/signin?next=/overview"
        assert page.locator("h1").inner_text() == "登录"
        page.screenshot(path=str(tmp_path / f"signin-{name}.png"), full_page=True)
        page.fill("input[name=username]", "wang")
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(f"{served}/overview")
        assert page.locator("h1").inner_text() == "总览"
        assert page.locator("[data-kiosk='s1/gate-north'] .badge").inner_text() == "在线"
        assert page.locator("[data-kiosk='s1/gate-south'] .badge").inner_text() == "无响应"
        grey = page.locator("[data-kiosk='s1/gate-south'] td").first.evaluate(
            "cell => getComputedStyle(cell.closest('tr')).backgroundColor")
        assert grey == "rgb(230, 232, 236)"
        cookies = {c["name"]: c for c in page.context.cookies()}
        assert cookies["office_session"]["httpOnly"] and cookies["office_session"]["sameSite"] == "Lax"
        page.screenshot(path=str(tmp_path / f"overview-{name}.png"), full_page=True)
        page.click("button:has-text('退出')")
        page.wait_for_url(f"{served}/signin")
    finally:
        page.close()
