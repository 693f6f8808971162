"""The office web app on Starlette's TestClient: sign-in, the rate limit, CSRF, roles, pages and the audit."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime, timedelta
from html import unescape
from pathlib import Path

import pytest
from starlette.routing import Mount, Route
from starlette.testclient import TestClient
from web_helpers import KEY, NOW, PASSWORD, csrf_of, sign_in, store_with_users

from checkpoint.entry import Status
from office.store.base import Store
from office.web.app import create_app
from office.web.core import WebSettings
from office.web.passwords import hash_password
from office.web.security import SignInLimiter

OPEN_PATHS = {"/signin", "/lang/{lang}", "/healthz"}  # /metrics: loopback only (tests/test_web_health.py)


class Clock:
    """The app's clock: NOW plus `t` seconds."""

    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> datetime:
        return NOW + timedelta(seconds=self.t)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with store_with_users(tmp_path / "office.sqlite") as opened:
        yield opened


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def client(store: Store, clock: Clock) -> Iterator[TestClient]:
    app = create_app(store, KEY, now=clock)
    with TestClient(app, base_url="http://testserver", follow_redirects=False) as test_client:
        yield test_client


def test_signing_in_sets_a_safe_cookie_and_shows_the_overview_in_chinese(client: TestClient,
                                                                         store: Store) -> None:
    page = client.get("/overview")
    assert page.status_code == 303 and page.headers["location"] == "/signin?next=/overview"
    signin = client.get("/signin")
    assert '<html lang="zh-CN">' in signin.text and "用户名" in signin.text
    token = csrf_of(signin.text)
    response = client.post("/signin", data={"csrf": token, "username": "guard1", "password": PASSWORD,
                                            "next": "/overview"})
    assert response.status_code == 303 and response.headers["location"] == "/overview"
    cookie = response.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie and "secure" not in cookie
    overview = client.get("/overview")
    assert overview.status_code == 200 and "总览" in overview.text and "guard1" in overview.text
    assert csrf_of(overview.text) != token  # a new session at sign-in: no fixation
    assert "default-src 'self'" in overview.headers["content-security-policy"]
    assert [(a.who, a.action, a.detail) for a in store.audit_log(limit=1)] == [
        ("guard1", "signin", "from testclient")]


def test_the_cookie_is_secure_over_tls(store: Store) -> None:
    app = create_app(store, KEY, WebSettings(tls=True), now=lambda: NOW)
    with TestClient(app, base_url="https://testserver", follow_redirects=False) as client:
        token = csrf_of(client.get("/signin").text)
        response = client.post("/signin", data={"csrf": token, "username": "boss", "password": PASSWORD})
        assert "secure" in response.headers["set-cookie"].lower()


def test_a_wrong_password_an_unknown_name_and_a_disabled_user_are_refused_and_audited(
        client: TestClient, store: Store) -> None:
    status, body = sign_in(client, "clerk", "wrong password")
    assert status == 401 and "用户名或密码错误" in body
    assert sign_in(client, "nobody")[0] == 401
    store.update_user("clerk", by="test", at=NOW, disabled=True)
    assert sign_in(client, "clerk")[0] == 401
    failed = [(a.who, a.detail) for a in store.audit_log() if a.action == "signin.failed"]
    assert failed == [("clerk", "from testclient: disabled"), ("nobody", "from testclient: no such user"),
                      ("clerk", "from testclient: wrong password")]


def test_sign_in_is_rate_limited_per_address_and_per_name(client: TestClient, store: Store,
                                                          clock: Clock) -> None:
    for _ in range(5):
        assert sign_in(client, "boss", "wrong password")[0] == 401
    status, body = sign_in(client, "boss")  # even the right password, while locked
    assert status == 429 and "登录失败次数过多，请 5 分钟后再试" in body
    assert sign_in(client, "clerk")[0] == 429  # the same address, another name
    assert store.audit_log(limit=1)[0].action == "signin.refused"
    clock.t += 301
    assert sign_in(client, "boss") == (303, "/overview")


def test_a_name_is_locked_whatever_the_address(store: Store, clock: Clock) -> None:
    limiter = SignInLimiter(store, now=clock)
    limiter.failed(["address:a", "user:boss"])
    for n in range(4):
        limiter.failed([f"address:b{n}", "user:boss"])
    assert limiter.retry_after(["address:c", "user:boss"]) == 300
    assert limiter.retry_after(["address:a", "user:clerk"]) == 0


def test_every_web_process_on_one_store_counts_the_same_failures(tmp_path: Path, store: Store,
                                                                 clock: Clock) -> None:
    """Was in memory per process: a city's second web process let a guesser start again."""
    first, second = SignInLimiter(store, now=clock), SignInLimiter(store, now=clock)
    for n in range(3):
        first.failed([f"address:a{n}", "user:boss"])
    for n in range(2):
        second.failed([f"address:b{n}", "user:boss"])
    assert first.retry_after(["user:boss"]) == second.retry_after(["user:boss"]) == 300
    clock.t += 150
    assert second.retry_after(["user:boss"]) == 150
    clock.t += 150
    assert first.retry_after(["user:boss"]) == 0
    second.failed(["user:clerk"])
    second.succeeded(["user:clerk"])
    assert store.signin_failures(["user:clerk"], since=NOW) == {"user:clerk": []}


def test_a_copied_cookie_signs_nobody_in_after_sign_out(client: TestClient, store: Store) -> None:
    """Was valid until it expired: a cookie copied from an office PC kept working after its user left."""
    assert sign_in(client, "clerk")[0] == 303
    copied = dict(client.cookies)
    token = csrf_of(client.get("/overview").text)
    assert client.post("/signout", headers={"x-csrf-token": token}).status_code == 303
    client.cookies.clear()
    client.cookies.update(copied)
    page = client.get("/overview")
    assert page.status_code == 303 and page.headers["location"].startswith("/signin")


def test_a_session_ends_when_its_hours_are_up(client: TestClient, clock: Clock) -> None:
    assert sign_in(client, "clerk")[0] == 303
    clock.t += 11.9 * 3600
    assert client.get("/overview").status_code == 200
    clock.t += 0.2 * 3600
    assert client.get("/overview").status_code == 303


def test_a_post_without_the_csrf_token_is_refused(client: TestClient, store: Store) -> None:
    refused = client.post("/signin", data={"username": "boss", "password": PASSWORD})
    assert refused.status_code == 403 and "页面已过期" in refused.text
    assert sign_in(client, "boss")[0] == 303
    assert client.post("/signout", data={"csrf": "forged"}).status_code == 403
    assert client.get("/overview").status_code == 200  # still signed in
    token = csrf_of(client.get("/overview").text)
    assert client.post("/signout", headers={"x-csrf-token": token}).headers["location"] == "/signin"
    assert client.get("/overview").status_code == 303
    assert store.audit_log(limit=1)[0].action == "signout"


@pytest.mark.parametrize(("name", "overview", "admin"), [("guard1", 200, 403), ("clerk", 200, 403),
                                                         ("boss", 200, 200)])
def test_each_role_sees_its_pages(client: TestClient, name: str, overview: int, admin: int) -> None:
    assert sign_in(client, name)[0] == 303
    assert client.get("/overview").status_code == overview
    page = client.get("/admin")
    assert page.status_code == admin
    if admin == 403:
        assert "没有权限" in page.text
    assert client.get("/api/kiosks").status_code == 200
    assert client.get("/api/audit").status_code == admin
    assert ("/admin" in client.get("/overview").text) == (admin == 200)


def test_no_page_or_api_answers_without_a_role(client: TestClient) -> None:
    app = client.app
    guarded = [route for route in app.routes  # type: ignore[attr-defined]
               if isinstance(route, Route) and route.path not in OPEN_PATHS]
    assert {r.path for r in guarded} >= {"/", "/overview", "/admin", "/api/kiosks", "/api/audit", "/signout"}
    for route in guarded:
        for method in sorted(route.methods or {"GET"}):
            if method == "HEAD":
                continue
            response = client.request(method, route.path)
            if route.path.startswith("/api/") or route.path == "/metrics":
                assert response.status_code == 401, route.path
            else:
                assert response.status_code == 303, route.path
                assert response.headers["location"].startswith("/signin"), route.path
    assert [r.path for r in app.routes if isinstance(r, Mount)] == ["/static"]  # type: ignore[attr-defined]


def test_a_disabled_user_or_a_changed_password_ends_the_session(client: TestClient, store: Store) -> None:
    assert sign_in(client, "clerk")[0] == 303
    store.update_user("clerk", by="test", at=NOW, password_hash=hash_password("another password"))
    assert client.get("/overview").status_code == 303
    assert sign_in(client, "clerk", "another password")[0] == 303
    store.update_user("clerk", by="test", at=NOW, disabled=True)
    assert client.get("/api/kiosks").status_code == 401


def test_the_overview_lists_kiosks_and_greys_a_silent_one(client: TestClient, store: Store) -> None:
    beat = Status.model_validate({"state": "online", "outbox": {"backlog": 3}, "camera": "ok",
                                  "thermometer": "ok", "version": "0.1.0"})
    store.record_status("s1", "gate-north", beat, NOW - timedelta(seconds=20))
    store.record_status("s1", "gate-south", beat, NOW - timedelta(minutes=10))
    store.record_status("s1", "gate-west", Status.model_validate({"state": "offline"}), NOW)
    assert sign_in(client, "guard1")[0] == 303
    html = client.get("/overview").text
    found = re.findall(r'<tr class="kiosk ([^"]+)" data-kiosk="([^"]+)"', html)
    rows = {kiosk: state for state, kiosk in found}
    assert rows == {"s1/gate-north": "online", "s1/gate-south": "silent silent-row",
                    "s1/gate-west": "offline"}
    assert "在线" in html and "离线" in html and "无响应" in html
    assert "2026-03-19 14:59:40" in html  # the heartbeat in local time (Asia/Shanghai)
    api = {k["kiosk"]: (k["state"], k["backlog"]) for k in client.get("/api/kiosks").json()}
    assert api == {"gate-north": ("online", 3), "gate-south": ("silent", 3), "gate-west": ("offline", None)}


def test_english_is_a_switch_away(client: TestClient) -> None:
    switched = client.get("/lang/en?next=/signin")
    assert switched.headers["location"] == "/signin"
    assert "User name" in client.get("/signin").text
    assert sign_in(client, "boss")[0] == 303
    assert "Overview" in client.get("/overview").text  # the language survives the sign-in
    assert client.get("/lang/zh?next=//evil.example").headers["location"] == "/overview"
    filtered = "/entries?decision=deny&hh=9-1-101"
    switch = re.search(r'href="(/lang/[a-z]+\?next=[^"]+)"', client.get(filtered).text)
    assert switch and unescape(switch[1]) == "/lang/en?next=/entries"  # no query written into the page
    back = client.get(unescape(switch[1]), headers={"referer": f"http://testserver{filtered}"})
    assert back.headers["location"] == filtered  # the page's query, from the Referer
    elsewhere = client.get("/lang/zh?next=/entries", headers={"referer": "http://evil.example/entries?x=1"})
    assert elsewhere.headers["location"] == "/entries"


def test_a_sign_in_never_redirects_off_the_site(client: TestClient) -> None:
    assert sign_in(client, "boss", next_path="https://evil.example/") == (303, "/overview")


def test_the_admin_page_lists_users_and_the_audit_log(client: TestClient, store: Store) -> None:
    assert sign_in(client, "boss")[0] == 303
    html = client.get("/admin").text
    for text in ("guard1", "门岗", "clerk", "办公室", "boss", "管理员", "user.add", "signin"):
        assert text in html
    assert "<form" not in html.split("<main>")[1]  # read only


def test_static_assets_ship_with_the_app(client: TestClient) -> None:
    css = client.get("/static/office.css")
    assert css.status_code == 200 and "@media" in css.text
    assert "http" not in re.sub(r"https?://testserver", "", client.get("/signin").text.split("<body>")[0])


def test_a_short_session_key_is_refused(store: Store) -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        create_app(store, b"short")
