"""The 追踪 Trace page on Starlette's TestClient: roles (a guard is refused), queries by household, pass,
gate and ID number (POST only, hashed with each site's key, never stored, logged or shown), close contacts
as a timeline, the CSV export with a BOM and local times, and the audit and trace log of each."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from fixtures.collector_data import at, insert, make_entry
from starlette.testclient import TestClient
from web_helpers import KEY, NOW, csrf_of, sign_in, store_with_users

from checkpoint import idnumber
from checkpoint.entry import Entry
from office.config import SiteSection
from office.store.base import Store
from office.web.app import create_app
from office.web.core import WebSettings

NUMBER = "11010519491231002X"  # the GB 11643 standard's own example
SITE_KEY = b"site one key, 32 bytes or longer."
T = at("2026-03-19T01:30:00.000Z")  # 09:30 in Asia/Shanghai; NOW is 15:00 there
M = timedelta(minutes=1)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with store_with_users(tmp_path / "office.sqlite") as opened:
        yield opened


@pytest.fixture
def entries(store: Store) -> list[Entry]:
    ref = idnumber.person_ref(NUMBER, SITE_KEY)
    made = [
        make_entry("s1", "gate-north", 1, T, pass_=("P-001", "green", "9-1-101")),
        make_entry("s1", "gate-north", 2, T + 3 * M, decision="deny", reasons=["no_health_code"],
                   pass_=("P-002", "pink", "9-1-102")),
        make_entry("s1", "gate-north", 3, T + 40 * M, pass_=("P-003", "blue", "9-2-201")),
        make_entry("s1", "gate-south", 1, T + 2 * M, pass_=("P-004", "green", "9-1-101")),
        make_entry("s1", "gate-south", 2, T + 5 * M, decision="attention", reasons=["fever"], body_c=38.3),
    ]
    person = make_entry("s1", "gate-south", 3, T + 6 * M, person_letter="a")
    person = person.model_copy(update={"person": person.person.model_copy(update={"ref": ref})}
                               ) if person.person else person
    insert(store, [*made, person])
    return [*made, person]


@pytest.fixture
def client(store: Store, tmp_path: Path) -> Iterator[TestClient]:
    key = tmp_path / "s1.key"
    key.write_bytes(SITE_KEY)
    key.chmod(0o600)
    settings = WebSettings(sites={"s1": SiteSection(name="幸福里社区", hmac_key_file=key)})
    app = create_app(store, KEY, settings, now=lambda: NOW)
    with TestClient(app, base_url="http://testserver", follow_redirects=False) as test_client:
        yield test_client


def shown(html: str) -> list[str]:
    return re.findall(r'<tr data-entry="([^"]+)"', html)


@pytest.mark.parametrize(("name", "status"), [("guard1", 403), ("clerk", 200), ("boss", 200)])
def test_only_the_office_and_admin_may_trace(client: TestClient, store: Store, name: str,
                                             status: int) -> None:
    sign_in(client, name)
    assert client.get("/trace").status_code == status
    assert client.get("/trace?by=household&value=9-1-101").status_code == status
    assert client.get("/trace.csv?by=household&value=9-1-101").status_code == status
    assert ('href="/trace"' in client.get("/overview").text) == (status == 200)
    if status == 403:
        assert store.trace_log() == []
        assert not [a for a in store.audit_log() if a.action.startswith("trace")]


def test_a_household_query_lists_its_entries_with_chinese_words_and_is_audited(
        client: TestClient, store: Store, entries: list[Entry]) -> None:
    sign_in(client, "clerk")
    page = client.get("/trace?by=household&value=9-1-101")
    assert page.status_code == 200
    assert shown(page.text) == [entries[0].id, entries[3].id]
    assert "2026-03-19 09:30:00" in page.text and "绿色" in page.text and "放行" in page.text
    assert f'href="/trace?entry={entries[0].id}"' in page.text
    (_, who, query), = store.trace_log()
    assert who == "clerk" and '"household"' in query and "9-1-101" in query
    audit = [a for a in store.audit_log() if a.action == "trace.query"]
    assert len(audit) == 1 and audit[0].who == "clerk" and '"found": 2' in audit[0].detail


def test_the_default_window_is_the_last_14_days(client: TestClient, entries: list[Entry]) -> None:
    sign_in(client, "clerk")
    html = client.get("/trace").text
    assert 'name="from" value="2026-03-05T15:00"' in html and 'name="to" value="2026-03-19T15:00"' in html
    old = client.get("/trace?by=pid&value=P-002&from=2026-03-01T00:00&to=2026-03-05T00:00")
    assert shown(old.text) == []


def test_by_pass_and_by_gate(client: TestClient, entries: list[Entry]) -> None:
    sign_in(client, "clerk")
    assert shown(client.get("/trace?by=pid&value=P-002").text) == [entries[1].id]
    gate = client.get("/trace?by=kiosk&value=gate-south&site=s1").text
    assert shown(gate) == [entries[3].id, entries[4].id, entries[5].id]
    assert "发热" in gate  # the fever reason in Chinese


def test_an_id_number_is_hashed_on_the_server_and_never_kept_or_shown(
        client: TestClient, store: Store, entries: list[Entry]) -> None:
    sign_in(client, "clerk")
    token = csrf_of(client.get("/trace").text)
    page = client.post("/trace", data={"csrf": token, "id_number": NUMBER})
    assert page.status_code == 200
    assert shown(page.text) == [entries[5].id]
    assert NUMBER not in page.text and NUMBER.lower() not in page.text
    link = re.search(r'href="(/trace\.csv\?[^"]+)"', page.text)
    assert link and NUMBER not in link[1]
    for _, who, query in store.trace_log():
        assert who == "clerk" and NUMBER not in query and NUMBER.lower() not in query
    for line in store.audit_log():
        assert NUMBER not in line.detail and NUMBER.lower() not in line.detail
    (query,) = [a.detail for a in store.audit_log() if a.action == "trace.query"]
    assert '"by": "id_number"' in query and '"sites": ["s1"]' in query
    export = client.get(link[1].replace("&amp;", "&"))
    assert export.status_code == 200 and entries[5].id in export.content.decode("utf-8-sig")


def test_a_wrong_id_number_is_refused_without_echoing_it(client: TestClient, store: Store) -> None:
    sign_in(client, "clerk")
    token = csrf_of(client.get("/trace").text)
    wrong = NUMBER[:-1] + "1"
    page = client.post("/trace", data={"csrf": token, "id_number": wrong})
    assert page.status_code == 400 and wrong not in page.text
    assert client.post("/trace", data={"id_number": NUMBER}).status_code == 403  # no CSRF token
    assert store.trace_log() == []


def test_close_contacts_are_a_timeline_with_the_entry_marked(client: TestClient, store: Store,
                                                              entries: list[Entry]) -> None:
    sign_in(client, "clerk")
    index = entries[1]  # gate-north 09:33
    page = client.get(f"/trace?entry={index.id}&minutes=5")
    assert page.status_code == 200
    timeline = re.findall(r'<li class="(index|contact)" data-entry="([^"]+)"', page.text)
    assert timeline == [("contact", entries[0].id), ("index", index.id)]
    assert "−3 min 00 s" in page.text
    assert any('"by":"contacts"' in q for _, _, q in store.trace_log())
    assert [a.who for a in store.audit_log() if a.action == "trace.contacts"] == ["clerk"]
    assert client.get("/trace?entry=01234567-89ab-7def-8123-456789abcdef").status_code == 404


def test_the_csv_export_has_a_bom_chinese_words_and_local_times_and_is_audited(
        client: TestClient, store: Store, entries: list[Entry]) -> None:
    sign_in(client, "clerk")
    response = client.get("/trace.csv?by=household&value=9-1-101")
    assert response.status_code == 200 and response.content.startswith("\ufeff".encode())
    rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert rows[0][0] == "时间 (UTC+08:00)"
    assert [row[0] for row in rows[1:]] == ["2026-03-19 09:30:00", "2026-03-19 09:32:00"]
    assert rows[1][5] == "放行" and rows[1][11] == "绿色"
    assert [a.who for a in store.audit_log() if a.action == "trace.export"] == ["clerk"]


def test_an_id_number_typed_as_a_household_is_refused(client: TestClient, store: Store) -> None:
    sign_in(client, "clerk")
    page = client.get(f"/trace?by=household&value={NUMBER}")
    assert page.status_code == 400 and NUMBER not in page.text
    assert store.trace_log() == []
    assert not [a for a in store.audit_log() if NUMBER in a.detail]
