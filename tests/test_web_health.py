"""`/healthz` (no sign-in, says only whether the store answers) and `/metrics` (Prometheus text, for a
loopback scraper or an admin) on Starlette's TestClient."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import uuid6
from starlette.testclient import TestClient
from web_helpers import KEY, NOW, sign_in, store_with_users

from checkpoint.entry import Alert, Status
from office.store.base import Store, StoredAlert
from office.web.app import create_app


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with store_with_users(tmp_path / "office.sqlite") as opened:
        yield opened


def client_from(store: Store, host: str) -> TestClient:
    return TestClient(create_app(store, KEY, now=lambda: NOW), base_url="http://testserver",
                      follow_redirects=False, client=(host, 50000))


def metric(text: str, name: str) -> float:
    found = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    assert found, (name, text)
    return float(found[1])


def test_healthz_answers_without_a_sign_in_and_says_nothing_else(store: Store) -> None:
    with client_from(store, "203.0.113.9") as client:
        response = client.get("/healthz")
        assert response.status_code == 200 and response.json() == {"status": "ok", "store": "ok"}
        store.close()
        failing = client.get("/healthz")
        assert failing.status_code == 503 and failing.json() == {"status": "failing", "store": "failing"}


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
def test_a_loopback_scraper_reads_the_metrics_without_signing_in(store: Store, host: str) -> None:
    beat = Status.model_validate({"state": "online", "camera": "ok", "thermometer": "ok"})
    store.record_status("s1", "gate-north", beat, NOW - timedelta(seconds=5))
    store.record_status("s1", "gate-south", beat, NOW - timedelta(hours=1))
    store.record_status("s1", "gate-east", Status.model_validate({"state": "offline"}), NOW)
    store.insert_alerts([StoredAlert("s1", "gate-north", Alert(kind="fever", ts=NOW, detail="body 38.1 °C",
                                                               id=str(uuid6.uuid7())), NOW)])
    with client_from(store, host) as client:
        client.get("/signin")
        client.get("/nowhere")
        response = client.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert metric(text, "office_entries_stored") == 0
    assert metric(text, 'office_kiosks{state="online"}') == 1
    assert metric(text, 'office_kiosks{state="silent"}') == 1
    assert metric(text, 'office_kiosks{state="offline"}') == 1
    assert metric(text, "office_open_alerts") == 1
    assert metric(text, 'office_web_requests_total{route="/signin",status="200"}') == 1
    assert metric(text, 'office_web_requests_total{route="unmatched",status="404"}') == 1
    assert 'office_build_info{version="' in text


def test_anyone_else_needs_the_admin_role(store: Store) -> None:
    with client_from(store, "203.0.113.9") as client:
        assert client.get("/metrics").status_code == 401
        sign_in(client, "clerk")
        assert client.get("/metrics").status_code == 403
    with client_from(store, "203.0.113.9") as client:
        sign_in(client, "boss")
        response = client.get("/metrics")
        assert response.status_code == 200 and "office_entries_stored" in response.text


def test_two_apps_in_one_process_keep_their_own_counts(store: Store) -> None:
    with client_from(store, "127.0.0.1") as first, client_from(store, "127.0.0.1") as second:
        first.get("/signin")
        first.get("/signin")
        second.get("/signin")
        signins = 'office_web_requests_total{route="/signin",status="200"}'
        assert metric(first.get("/metrics").text, signins) == 2
        assert metric(second.get("/metrics").text, signins) == 1
