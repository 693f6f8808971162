"""The 总览 overview on Starlette's TestClient: faults, seq gaps and conflicts, today's counts per gate and
the open alerts; and its event stream's first message."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import uuid6
from fixtures.collector_data import insert, make_entry
from starlette.testclient import TestClient
from web_helpers import KEY, NOW, sign_in, store_with_users

from checkpoint.entry import Alert, Status
from office.store.base import Store, StoredAlert
from office.web.app import create_app


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with store_with_users(tmp_path / "office.sqlite") as opened:
        yield opened


@pytest.fixture
def client(store: Store) -> Iterator[TestClient]:
    with TestClient(create_app(store, KEY, now=lambda: NOW), base_url="http://testserver",
                    follow_redirects=False) as test_client:
        yield test_client


def status(**fields: object) -> Status:
    return Status.model_validate({"state": "online", "camera": "ok", "thermometer": "ok", **fields})


def kiosk_cell(html: str, kiosk: str, label_class: str) -> str:
    row = re.search(rf'<tr class="kiosk [^"]*" data-kiosk="{kiosk}".*?</tr>', html, re.S)
    assert row, kiosk
    cell = re.search(rf'<td [^>]*class="{label_class}">(.*?)</td>', row[0], re.S)
    assert cell, label_class
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", cell[1])).strip()


def test_faults_gaps_and_conflicts_show_per_kiosk(client: TestClient, store: Store) -> None:
    store.record_status("s1", "gate-north", status(thermometer="fault"), NOW - timedelta(seconds=5))
    store.record_status("s1", "gate-south", status(), NOW - timedelta(seconds=5))
    local_morning = NOW - timedelta(hours=5)  # 10:00 in Asia/Shanghai, today there
    insert(store, [make_entry("s1", "gate-north", seq, local_morning + timedelta(minutes=seq))
                   for seq in (1, 2, 5, 9)])
    assert sign_in(client, "guard1")[0] == 303
    html = client.get("/overview").text
    assert kiosk_cell(html, "s1/gate-north", "faults") == "测温: 故障"
    assert kiosk_cell(html, "s1/gate-south", "faults") == "正常"
    assert kiosk_cell(html, "s1/gate-north", "gaps") == "缺 5 条 #3–4 #6–8"
    assert kiosk_cell(html, "s1/gate-south", "gaps") == "无"


def test_todays_counts_per_gate_and_the_open_alerts(client: TestClient, store: Store) -> None:
    today = NOW - timedelta(hours=5)
    yesterday = NOW - timedelta(days=1)
    made = [make_entry("s1", "gate-north", 1, today),
            make_entry("s1", "gate-north", 2, today + timedelta(seconds=1), decision="deny",
                       reasons=["pass_expired"]),
            make_entry("s1", "gate-east", 1, today, decision="attention", reasons=["fever"], body_c=38.3),
            make_entry("s1", "gate-east", 2, yesterday)]
    insert(store, made)
    fever = Alert(kind="fever", ts=today, detail="body 38.3 °C", id=str(uuid6.uuid7()), entry_id=made[2].id)
    store.insert_alerts([StoredAlert("s1", "gate-east", fever, today)])
    assert sign_in(client, "guard1")[0] == 303
    html = client.get("/overview").text
    gates = dict(re.findall(r'data-gate="([^"]+)">.*?class="n-entries">(\d+)<', html, re.S))
    assert gates == {"s1/gate-east": "1", "s1/gate-north": "2"}  # yesterday's entry is not today's
    assert 'data-totals="3"' in html
    assert "未处理告警：1" in html and f'data-alert="{fever.id}"' in html and "38.3 °C" in html
    store.acknowledge_alert(str(fever.id), by="clerk", at=NOW, note="")
    store.resolve_alert(str(fever.id), by="clerk", at=NOW, note="已复测正常")
    assert "未处理告警：0" in client.get("/overview").text


def test_the_event_stream_sends_the_live_part_of_the_page(client: TestClient, store: Store) -> None:
    store.record_status("s1", "gate-north", status(), NOW - timedelta(seconds=5))
    assert sign_in(client, "guard1")[0] == 303
    with client.stream("GET", "/overview/events") as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        lines = stream.iter_lines()
        assert next(lines) == "retry: 2000"
        assert next(lines) == ""
        assert next(lines) == "event: overview"
        first = next(lines)
        assert first.startswith("data: ")
        body = [first]
        for line in lines:
            if not line:
                break
            body.append(line)
    assert any('data-kiosk="s1/gate-north"' in line for line in body)


def test_the_overview_needs_a_role(client: TestClient) -> None:
    assert client.get("/overview/events").status_code == 303
