"""The 出入记录 Entries page and its CSV export on Starlette's TestClient: roles, filters, keyset pages,
the BOM and local times of the CSV, and the export's audit row."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from datetime import timedelta
from html import unescape
from pathlib import Path

import pytest
from fixtures.collector_data import at, insert, make_entry
from openpyxl import load_workbook
from starlette.testclient import TestClient
from web_helpers import KEY, NOW, sign_in, store_with_users

from checkpoint.entry import Entry
from office.store.base import Store
from office.web.app import create_app
from office.web.exports import XLSX_TYPE

T = at("2026-03-19T01:30:00.000Z")  # 09:30 in Asia/Shanghai, the report zone; NOW is 15:00 there
S = timedelta(seconds=1)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with store_with_users(tmp_path / "office.sqlite") as opened:
        yield opened


@pytest.fixture
def entries(store: Store) -> list[Entry]:
    made = [
        make_entry("s1", "gate-north", 1, T, pass_=("P-001", "green", "9-1-101"), person_letter="a"),
        make_entry("s1", "gate-north", 2, T + S, decision="deny", reasons=["no_health_code", "pass_expired"],
                   pass_=("P-002", "pink", "9-1-102")),
        make_entry("s1", "gate-south", 1, T + 2 * S, decision="attention", reasons=["fever"], body_c=38.2,
                   pass_=("P-001", "green", "9-1-101")),
        make_entry("s1", "gate-north", 3, T - timedelta(days=1)),  # yesterday: not in today's window
    ]
    insert(store, made)
    return made


@pytest.fixture
def client(store: Store) -> Iterator[TestClient]:
    app = create_app(store, KEY, now=lambda: NOW)
    with TestClient(app, base_url="http://testserver", follow_redirects=False) as test_client:
        yield test_client


def shown(html: str) -> list[str]:
    return re.findall(r'data-entry="([^"]+)"', html)


@pytest.mark.parametrize(("name", "status"), [("guard1", 403), ("clerk", 200), ("boss", 200)])
def test_the_office_and_admin_see_entries_and_a_guard_does_not(client: TestClient, entries: list[Entry],
                                                               name: str, status: int) -> None:
    assert sign_in(client, name)[0] == 303
    assert client.get("/entries").status_code == status
    assert client.get("/entries.csv").status_code == status
    assert ('href="/entries"' in client.get("/overview").text) == (status == 200)


def test_signed_out_the_page_redirects_to_sign_in(client: TestClient) -> None:
    response = client.get("/entries?decision=deny")
    assert response.status_code == 303
    assert response.headers["location"].startswith("/signin?next=")


def test_today_newest_first_with_chinese_words_and_the_entry_id(client: TestClient,
                                                                 entries: list[Entry]) -> None:
    sign_in(client, "clerk")
    page = client.get("/entries")
    assert page.status_code == 200
    a, b, c, _ = entries
    assert shown(page.text) == [c.id, b.id, a.id]
    text = unescape(page.text)
    assert "2026-03-19 09:30:00" in text  # local time
    assert "拒绝" in text and "未出示健康码" in text and "no_health_code" in text
    assert "粉色 访客" in text and "绿色 居民" in text  # the colour in words, not only a swatch
    assert f'title="{b.id}"' in text and f"…{b.id[-8:]}" in text
    assert "38.2 °C" in text


def test_filters_by_decision_reason_pass_household_kiosk_and_time(client: TestClient,
                                                                  entries: list[Entry]) -> None:
    sign_in(client, "clerk")
    a, b, c, old = entries
    assert shown(client.get("/entries?decision=deny").text) == [b.id]
    assert shown(client.get("/entries?reason=fever").text) == [c.id]
    assert shown(client.get("/entries?pid=P-001").text) == [c.id, a.id]
    assert shown(client.get("/entries?hh=9-1-102").text) == [b.id]
    assert shown(client.get("/entries?cat=pink").text) == [b.id]
    assert shown(client.get("/entries?kiosk=gate-south&site=s1").text) == [c.id]
    assert shown(client.get("/entries?from=2026-03-18T00:00&to=2026-03-19T00:00").text) == [old.id]
    later = client.get("/entries?from=2026-03-19T09:30:01").text
    assert shown(later) == [c.id, b.id]
    assert "from=2026-03-19T09%3A30%3A01" in later  # the export keeps the window to the second


@pytest.mark.parametrize("query", ["decision=maybe", "reason=nonsense", "cat=purple", "from=yesterday",
                                   "from=2026-03-20T00:00&to=2026-03-19T00:00"])
def test_bad_filters_are_refused(client: TestClient, entries: list[Entry], query: str) -> None:
    sign_in(client, "clerk")
    assert client.get(f"/entries?{query}").status_code == 400
    assert client.get(f"/entries.csv?{query}").status_code == 400


def test_pages_of_100_follow_on_by_key(client: TestClient, store: Store) -> None:
    many = [make_entry("s1", "gate-east", seq, T + (seq // 4) * S) for seq in range(1, 251)]
    insert(store, many)
    sign_in(client, "clerk")
    seen: list[str] = []
    url: str | None = "/entries?kiosk=gate-east"
    while url:
        page = client.get(url)
        assert page.status_code == 200
        rows = shown(page.text)
        assert len(rows) == (100 if len(seen) < 200 else 50)
        seen += rows
        found = re.search(r'href="([^"]+)" rel="next"', page.text)
        url = unescape(found[1]) if found else None
        assert url is None or "offset" not in url
    assert seen == [e.id for e in sorted(many, key=lambda e: (e.ts, e.id), reverse=True)]


def test_the_csv_has_a_bom_local_times_chinese_and_is_audited(client: TestClient, store: Store,
                                                              entries: list[Entry]) -> None:
    sign_in(client, "clerk")
    response = client.get("/entries.csv?decision=deny&hh=9-1-102")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    assert response.content.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert rows[0][0] == "时间 (UTC+08:00)"
    b = entries[1]
    assert rows[1:] == [["2026-03-19 09:30:01", "s1", "gate-north", "2", "进", "拒绝", "deny",
                         "未出示健康码；出入证过期", "no_health_code;pass_expired", "36.5", "P-002", "粉色",
                         "pink", "9-1-102", "", b.id]]
    record = store.audit_log(limit=1)[0]
    assert (record.who, record.action) == ("clerk", "entries.export.csv")
    assert json.loads(record.detail) == {"decision": "deny", "hh": "9-1-102",
                                         "from": "2026-03-18T16:00:00.000Z", "to": "2026-03-19T16:00:00.000Z"}


def test_the_xlsx_has_the_same_table_with_numbers_and_is_audited(client: TestClient, store: Store,
                                                                 entries: list[Entry]) -> None:
    sign_in(client, "clerk")
    response = client.get("/entries.xlsx?decision=deny&hh=9-1-102")
    assert response.status_code == 200
    assert response.headers["content-type"] == XLSX_TYPE
    assert 'filename="entries-20260319-0000.xlsx"' in response.headers["content-disposition"]
    sheet = load_workbook(io.BytesIO(response.content), read_only=True).active
    assert sheet is not None
    rows = [list(row) for row in sheet.iter_rows(values_only=True)]
    assert rows[0][:3] == ["时间 (UTC+08:00)", "小区", "设备"]
    assert rows[1][:2] == ["2026-03-19 09:30:01", "s1"] and rows[1][9] == 36.5
    assert rows[1][7] == "未出示健康码；出入证过期" and rows[1][-1] == entries[1].id and len(rows) == 2
    assert store.audit_log(limit=1)[0].action == "entries.export.xlsx"
    assert client.get("/entries.pdf").status_code == 404


def test_the_csv_has_every_page(client: TestClient, store: Store) -> None:
    insert(store, [make_entry("s1", "gate-east", seq, T + seq * S) for seq in range(1, 1102)])
    sign_in(client, "boss")
    rows = list(csv.reader(io.StringIO(client.get("/entries.csv").content.decode("utf-8-sig"))))
    assert len(rows) == 1 + 1101


def test_gets_need_no_csrf_token(client: TestClient, entries: list[Entry]) -> None:
    sign_in(client, "clerk")
    for path in ("/entries", "/entries.csv"):
        assert client.get(path, headers={"x-csrf-token": ""}).status_code == 200
