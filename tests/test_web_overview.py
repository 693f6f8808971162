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
from office.web.overview import NEWEST_ALERTS, Sent, SharedOverview, changes


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
    gates = dict(re.findall(r'data-gate="([^"]+)"[^>]*>.*?class="n-entries">(\d+)<', html, re.S))
    assert gates == {"s1/gate-east": "1", "s1/gate-north": "2"}  # yesterday's entry is not today's
    assert 'data-totals="3"' in html
    assert "未处理告警：1" in html and f'data-alert="{fever.id}"' in html and "38.3 °C" in html
    store.acknowledge_alert(str(fever.id), by="clerk", at=NOW, note="")
    store.resolve_alert(str(fever.id), by="clerk", at=NOW, note="已复测正常")
    assert "未处理告警：0" in client.get("/overview").text


def test_the_event_stream_sends_the_live_parts_of_the_page(client: TestClient, store: Store) -> None:
    store.record_status("s1", "gate-north", status(), NOW - timedelta(seconds=5))
    assert sign_in(client, "guard1")[0] == 303
    events: dict[str, str] = {}
    with client.stream("GET", "/overview/events") as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        lines = stream.iter_lines()
        assert next(lines) == "retry: 2000"
        assert next(lines) == ""
        for _ in range(3):  # the first poll sends every part
            name = next(lines).removeprefix("event: ")
            data = []
            for line in lines:
                if not line:
                    break
                data.append(line.removeprefix("data: "))
            events[name] = "\n".join(data)
    assert list(events) == ["today", "alerts", "kiosks"]
    assert 'data-kiosk="s1/gate-north"' in events["kiosks"] and "今天还没有通行记录" in events["today"]
    assert 'sse-swap="kiosk:s1/gate-north"' in events["kiosks"]


def test_the_overview_needs_a_role(client: TestClient) -> None:
    assert client.get("/overview/events").status_code == 303


def stored_alert(store: Store, minutes_ago: int, *, with_id: bool = True) -> Alert:
    alert = Alert(kind="fault" if not with_id else "fever", ts=NOW - timedelta(minutes=minutes_ago),
                  detail="thermometer: no answer", id=str(uuid6.uuid7()) if with_id else None)
    store.insert_alerts([StoredAlert("s1", "gate-north", alert, NOW)])
    return alert


def test_open_alerts_are_counted_in_the_store(each_store: Store) -> None:
    """Acknowledged alerts are still open; resolved ones (by id, or by number for one without) are not."""
    made = [stored_alert(each_store, minutes, with_id=minutes != 50) for minutes in (70, 60, 50, 40, 30, 20)]
    bare = next(view for view in each_store.recent_alerts() if view.stored.alert == made[2])
    assert bare.key.startswith("n:")
    assert each_store.resolve_alert(bare.key, by="clerk", at=NOW, note="修好了")
    assert each_store.resolve_alert(str(made[4].id), by="clerk", at=NOW, note="复测正常")
    assert each_store.acknowledge_alert(str(made[5].id), by="guard1", at=NOW)
    newest, count = each_store.open_alerts(limit=2)
    assert count == 4
    assert [view.stored.alert for view in newest] == [made[5], made[3]]
    assert newest[0].handling is not None and newest[0].handling.acked_by == "guard1"
    assert each_store.open_alerts(limit=10)[0][-1].stored.alert == made[0]


def test_the_open_alert_count_is_not_capped_by_the_lines_shown(client: TestClient, store: Store) -> None:
    for minutes in range(1, 2 * NEWEST_ALERTS + 2):
        stored_alert(store, minutes)
    store.record_status("s1", "gate-south", Status(state="offline"), NOW - timedelta(minutes=90))
    assert sign_in(client, "guard1")[0] == 303
    html = client.get("/overview").text
    assert f"未处理告警：{2 * NEWEST_ALERTS + 2}" in html  # the stored ones and the offline kiosk
    section = re.search(r'<section class="open-alerts" sse-swap="alerts">.*?</section>', html, re.S)
    assert section and section[0].count('class="alert-line') == NEWEST_ALERTS


def test_every_stream_shares_one_read_per_poll(store: Store) -> None:
    """Many open overviews cost one read of the store per poll, not one each."""
    web = create_app(store, KEY, now=lambda: NOW).state.web
    shared = SharedOverview(web, max_age_s=60)
    first = shared.parts("zh")
    assert first.rows == {"kiosks": [], "today": []} and shared.parts("zh") is first
    store.record_status("s1", "gate-north", status(), NOW - timedelta(seconds=5))
    assert shared.parts("zh") is first  # within max_age_s: the read already made
    english = shared.parts("en")
    assert "Open alerts: 0" in english.html("alerts") and "未处理告警" in first.html("alerts")
    assert SharedOverview(web, max_age_s=0).parts("zh").rows["kiosks"] == ["kiosk:s1/gate-north"]


def test_a_heartbeat_sends_its_row_and_a_new_kiosk_the_table(store: Store) -> None:
    web = create_app(store, KEY, now=lambda: NOW).state.web
    shared = SharedOverview(web, max_age_s=0)
    for kiosk in ("gate-north", "gate-south"):
        store.record_status("s1", kiosk, status(), NOW - timedelta(seconds=30))
    sent = Sent()
    assert [event.split("\n")[0] for event in changes(shared.parts("zh"), sent)] == [
        "event: today", "event: alerts", "event: kiosks"]
    assert changes(shared.parts("zh"), sent) == []  # nothing changed: nothing sent
    north = shared.parts("zh").html("kiosk:s1/gate-north")
    store.record_status("s1", "gate-south", status(outbox={"backlog": 7}), NOW - timedelta(seconds=1))
    parts = shared.parts("zh")
    (row,) = changes(parts, sent)
    assert parts.html("kiosk:s1/gate-north") is north  # an unchanged row is not rendered again
    assert row.startswith("event: kiosk:s1/gate-south\ndata: <tr ")
    assert '<td data-label="待发送">7</td>' in row
    store.record_status("s1", "gate-east", status(), NOW)
    assert [event.split("\n")[0] for event in changes(shared.parts("zh"), sent)] == ["event: kiosks"]


def test_an_entry_sends_its_gate_and_the_totals(store: Store) -> None:
    web = create_app(store, KEY, now=lambda: NOW).state.web
    shared = SharedOverview(web, max_age_s=0)
    morning = NOW - timedelta(hours=5)
    insert(store, [make_entry("s1", "gate-north", 1, morning), make_entry("s1", "gate-east", 1, morning)])
    sent = Sent()
    changes(shared.parts("zh"), sent)
    insert(store, [make_entry("s1", "gate-north", 2, morning + timedelta(minutes=1))])
    gate, totals = sorted(changes(shared.parts("zh"), sent))
    assert gate.startswith("event: gate:s1/gate-north\n")
    assert '<td data-label="通行" class="n-entries">2' in gate
    assert totals.startswith("event: totals\n") and 'data-totals="3"' in totals
    insert(store, [make_entry("s1", "gate-south", 1, morning)])
    events = changes(shared.parts("zh"), sent)
    assert [event.split("\n")[0] for event in events] == ["event: today"]
    assert events[0].count("<tr data-gate=") == 3
