"""The 日报 Reports page on Starlette's TestClient: roles, today's report live with its Chinese counts and
PNG, making a report (kept in the store, audited), the history and its audited downloads (CSV with a BOM)."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from fixtures.collector_data import at, insert, make_entry
from starlette.testclient import TestClient
from web_helpers import KEY, NOW, csrf_of, sign_in, store_with_users

from office.config import SiteSection
from office.store.base import Store
from office.web.app import create_app
from office.web.core import WebSettings
from office.web.reports import Recent

T = at("2026-03-19T01:30:00.000Z")  # 09:30 in Asia/Shanghai; NOW is 15:00 there
S = timedelta(seconds=1)
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with store_with_users(tmp_path / "office.sqlite") as opened:
        insert(opened, [
            make_entry("s1", "gate-north", 1, T, pass_=("P-001", "green", "9-1-101"), person_letter="a"),
            make_entry("s1", "gate-north", 2, T + S, decision="deny", reasons=["no_health_code"],
                       pass_=("P-002", "pink", "9-1-102")),
            make_entry("s1", "gate-south", 1, T + 2 * S, decision="attention", reasons=["fever"],
                       body_c=38.2, pass_=("P-001", "green", "9-1-101")),
        ])
        yield opened


@pytest.fixture
def client(store: Store) -> Iterator[TestClient]:
    settings = WebSettings(sites={"s1": SiteSection(name="幸福里社区")})
    app = create_app(store, KEY, settings, now=lambda: NOW)
    with TestClient(app, base_url="http://testserver", follow_redirects=False) as test_client:
        yield test_client


def make(client: TestClient, day: str, site: str = "") -> int:
    token = csrf_of(client.get("/reports").text)
    response = client.post("/reports/make", data={"csrf": token, "day": day, "site": site})
    assert response.status_code == 303, response.text
    match = re.fullmatch(r"/reports/(\d+)", response.headers["location"])
    assert match
    return int(match[1])


@pytest.mark.parametrize(("name", "status"), [("guard1", 403), ("clerk", 200), ("boss", 200)])
def test_the_office_and_admin_see_reports_and_a_guard_does_not(client: TestClient, name: str,
                                                               status: int) -> None:
    sign_in(client, name)
    assert client.get("/reports").status_code == status
    assert client.get("/reports/live.png").status_code == status
    assert ('href="/reports"' in client.get("/overview").text) == (status == 200)


def test_todays_report_is_live_with_chinese_counts_per_gate_and_its_png(client: TestClient) -> None:
    sign_in(client, "clerk")
    page = client.get("/reports")
    assert page.status_code == 200
    html = page.text
    assert "日报告" in html and "2026-03-19" in html and "幸福里社区" in html
    assert 'data-kiosk="gate-north"' in html and 'data-kiosk="gate-south"' in html
    assert "未出示健康码 <strong>1</strong>" in html  # a deny reason in Chinese with its count
    assert "发热 <strong>1</strong>" in html  # the fever, an attention reason
    png = client.get("/reports/live.png?day=2026-03-19")
    assert png.headers["content-type"] == "image/png" and png.content.startswith(PNG)


def test_a_day_without_entries_is_a_zero_report(client: TestClient) -> None:
    sign_in(client, "clerk")
    html = client.get("/reports?day=2026-03-18&site=s1").text
    assert "零报告" in html and "当日无出入记录" in html


def test_a_future_day_or_a_bad_day_is_refused(client: TestClient) -> None:
    sign_in(client, "clerk")
    assert client.get("/reports?day=2026-03-20").status_code == 400
    assert client.get("/reports?day=yesterday").status_code == 400


def test_making_a_report_keeps_it_in_the_history_audited(client: TestClient, store: Store) -> None:
    sign_in(client, "clerk")
    first = make(client, "2026-03-19", "s1")
    zero = make(client, "2026-03-18", "s1")
    again = make(client, "2026-03-19", "s1")
    assert first < zero < again  # every version is kept
    kept = store.kept_reports()
    assert [k.n for k in kept] == [again, first, zero]  # newest day first, then newest version
    assert [k.zero for k in kept] == [False, False, True]
    assert {k.made_by for k in kept} == {"clerk"}
    made = [a for a in store.audit_log() if a.action == "report.make"]
    assert len(made) == 3 and made[0].who == "clerk" and f"#{again}" in made[0].detail
    history = client.get("/reports").text
    assert f'data-report="{zero}"' in history and "零报告" in history
    view = client.get(f"/reports/{zero}")
    assert view.status_code == 200 and "零报告" in view.text and f"/reports/{zero}.png" in view.text
    assert client.get(f"/reports/{zero}.png").content.startswith(PNG)


def test_downloads_are_audited_and_the_csv_has_a_bom(client: TestClient, store: Store) -> None:
    sign_in(client, "clerk")
    n = make(client, "2026-03-19", "s1")
    before = len(store.audit_log())
    response = client.get(f"/reports/{n}.csv")
    assert response.status_code == 200 and "attachment" in response.headers["content-disposition"]
    assert response.content.startswith("\ufeff".encode())
    rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert rows[0][:3] == ["date", "site", "kiosk"]
    assert rows[-1][:4] == ["2026-03-19", "s1", "*", "3"]
    data = json.loads(client.get(f"/reports/{n}.json").content)
    assert data["date"] == "2026-03-19" and data["totals"]["entries"] == 3
    assert client.get(f"/reports/{n}.png?download=1").content.startswith(PNG)
    live = client.get("/reports/live.csv?day=2026-03-19")
    assert live.content.startswith("\ufeff".encode())
    exports = [a for a in store.audit_log()[: len(store.audit_log()) - before] if a.action == "report.export"]
    assert len(exports) == 4 and {a.who for a in exports} == {"clerk"}
    assert client.get("/reports/999.csv").status_code == 404


def test_making_a_report_needs_the_csrf_token(client: TestClient, store: Store) -> None:
    sign_in(client, "clerk")
    assert client.post("/reports/make", data={"day": "2026-03-19"}).status_code == 403
    assert store.kept_reports() == []


def test_the_page_switches_to_english(client: TestClient) -> None:
    sign_in(client, "clerk")
    client.get("/lang/en?next=/reports")
    html = client.get("/reports").text
    assert "Daily report" in html and "Deny reasons" in html and "no health code <strong>1</strong>" in html


def test_a_live_report_is_read_once_for_the_page_and_its_chart() -> None:
    """The page and its PNG each read the whole day: 400 ms apiece at 35,000 entries a day."""
    calls: list[str] = []
    clock = [0.0]
    def compute(key: str) -> int:
        calls.append(key)
        return len(calls)

    recent = Recent(compute, 15.0, clock=lambda: clock[0])
    assert recent.get("today") == recent.get("today") == 1
    assert recent.get("yesterday") == 2
    clock[0] = 15.0
    assert recent.get("today") == 3 and calls == ["today", "yesterday", "today"]
