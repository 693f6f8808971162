"""The 追踪 Trace page in a real headless Chromium (Debian's, driven by Playwright), served by the office
service: a guard is refused it, an office user's query shows up in the admin's audit log with that user's
name, and the CSV export downloaded by the browser opens with its Chinese (BOM + UTF-8) and local times."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fixtures.collector_data import insert, make_entry
from playwright.sync_api import Browser, Page
from web_helpers import office_web

from checkpoint.entry import Entry
from office.store.base import Role
from office.store.sqlite import SqliteStore
from office.web.passwords import hash_password

PASSWORD = "correct horse battery"
SHANGHAI = timedelta(hours=8)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, list[Entry]]]:
    """The office service (web only) on a SQLite store with a guard, a clerk, an admin and two entries of
    household 9-1-101 an hour and two hours ago; its URL and the entries."""
    db = tmp_path / "office.sqlite"
    now = datetime.now(UTC).replace(microsecond=0)
    made = [
        make_entry("s1", "gate-north", 1, now - 2 * timedelta(hours=1), pass_=("P-001", "green", "9-1-101"),
                   person_letter="a"),
        make_entry("s1", "gate-south", 1, now - timedelta(hours=1), decision="deny",
                   reasons=["no_health_code"], pass_=("P-001", "green", "9-1-101"), person_letter="a"),
        make_entry("s1", "gate-south", 2, now - timedelta(minutes=30), pass_=("P-009", "blue", "9-9-909")),
    ]
    with SqliteStore(db) as store:
        users: tuple[tuple[str, Role], ...] = (("wang", "guard"), ("li", "office"), ("zhao", "admin"))
        for name, role in users:
            store.add_user(name, role, hash_password(PASSWORD), by="test", at=now)
        insert(store, made)
    with office_web(tmp_path, db) as service:
        yield service.url, made


def signed_in(browser: Browser, url: str, name: str, path: str) -> Page:
    page = browser.new_context(viewport={"width": 1280, "height": 900}, locale="zh-CN").new_page()
    page.goto(f"{url}{path}")
    page.fill("input[name=username]", name)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{url}{path}")
    return page


def test_a_guard_is_refused_the_trace_page(served: tuple[str, list[Entry]], browser: Browser) -> None:
    url, _ = served
    page = signed_in(browser, url, "wang", "/overview")
    try:
        assert page.locator("header nav a[href='/trace']").count() == 0
        response = page.goto(f"{url}/trace")
        assert response is not None and response.status == 403
        assert page.locator("table.trace").count() == 0
    finally:
        page.context.close()


def test_a_trace_query_is_in_the_audit_log_and_its_csv_opens_with_chinese_and_local_times(
        served: tuple[str, list[Entry]], browser: Browser, tmp_path: Path) -> None:
    url, made = served
    page = signed_in(browser, url, "li", "/trace")
    try:
        page.select_option("#trace-form select[name=by]", "household")
        page.fill("#trace-form input[name=value]", "9-1-101")
        page.click("#trace-form button[type=submit]")
        page.wait_for_url("**/trace?*")
        rows = page.locator("table.trace tbody tr")
        assert rows.count() == 2
        first = rows.nth(0).inner_text()
        assert "绿色" in first and "gate-north" in first
        assert "未出示健康码" in rows.nth(1).inner_text()  # the deny reason in Chinese
        with page.expect_download() as info:
            page.click("#trace-csv")
        saved = tmp_path / "trace.csv"
        info.value.save_as(saved)
    finally:
        page.context.close()
    raw = saved.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # the BOM Excel needs to read UTF-8
    table = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))
    assert table[0][0] == "时间 (UTC+08:00)" and "结果" in table[0] and "原因" in table[0]
    local = [(e.ts + SHANGHAI).strftime("%Y-%m-%d %H:%M:%S") for e in made[:2]]
    assert [row[0] for row in table[1:]] == local
    assert table[2][5] == "拒绝" and table[2][7] == "未出示健康码" and table[1][11] == "绿色"

    admin = signed_in(browser, url, "zhao", "/admin")
    try:
        log = admin.locator("table.audit tbody tr")
        lines = [log.nth(i).inner_text() for i in range(min(log.count(), 50))]
        query = [line for line in lines if "trace.query" in line]
        export = [line for line in lines if "trace.export" in line]
        assert len(query) == 1 and "li" in query[0].split() and "9-1-101" in query[0]
        assert len(export) == 1 and "li" in export[0].split()
    finally:
        admin.context.close()
