"""The 出入证 Passes pages on Starlette's TestClient: roles and CSRF, issuing one pass and a CSV batch signed
with the site's key (a duplicate pid refused, single and batch, naming it), the ID number never stored,
audited or shown, the printed sheet, revocations published retained to a real mosquitto (and kept, to
publish again, when the broker is away), the expiring list and the registry comparison."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fixtures.collector_data import at, insert, make_entry
from mqtt_helpers import Observer, wait_for
from starlette.testclient import TestClient
from web_helpers import KEY, NOW, csrf_of, sign_in, store_with_users

from checkpoint import idnumber
from checkpoint.keys import KeyRing
from checkpoint.reasons import Reason
from checkpoint.topics import revocations_topic
from kiosk.credentials.passes import PassVerifier
from kiosk.credentials.revocation import RevocationList
from kiosk.mqtt.local_broker import LocalBroker, free_port
from office.admin.cli import keygen
from office.admin.cli import main as admin_main
from office.admin.passes import export_pubkeys
from office.config import SiteSection
from office.mqtt import BrokerLink
from office.store.base import Store
from office.store.sqlite import SqliteStore
from office.web.app import create_app
from office.web.core import WebSettings

NUMBER = "11010519491231002X"  # the GB 11643 standard's own example
OTHER = "370102198001011237"
SITE_KEY = b"site one key, 32 bytes or longer."


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with store_with_users(tmp_path / "office.sqlite") as opened:
        yield opened


def site_section(tmp_path: Path, *, pass_key: bool = True) -> SiteSection:
    hmac = tmp_path / "s1.hmac"
    hmac.write_bytes(SITE_KEY)
    hmac.chmod(0o600)
    if pass_key and not (tmp_path / "s1-pass.key").exists():
        keygen(tmp_path / "s1-pass.key")
    return SiteSection(name="幸福里社区", hmac_key_file=hmac,
                       pass_key_file=tmp_path / "s1-pass.key" if pass_key else None)


def make_client(store: Store, tmp_path: Path, *, broker_port: int | None = None, pass_key: bool = True
                ) -> TestClient:
    broker = BrokerLink("127.0.0.1", broker_port or free_port(), None, None, None)
    settings = WebSettings(sites={"s1": site_section(tmp_path, pass_key=pass_key)}, broker=broker)
    return TestClient(create_app(store, KEY, settings, now=lambda: NOW), base_url="http://testserver",
                      follow_redirects=False)


@pytest.fixture
def client(store: Store, tmp_path: Path) -> Iterator[TestClient]:
    with make_client(store, tmp_path) as test_client:
        yield test_client


def _ring_dir(tmp_path: Path) -> KeyRing:
    export_pubkeys([tmp_path / "s1-pass.key"], tmp_path / "pass-keys")  # as kiosk-admin export-pubkeys
    return KeyRing.from_dir(tmp_path / "pass-keys")


def issue(client: TestClient, **fields: str) -> tuple[int, str]:
    token = csrf_of(client.get("/passes/issue").text)
    data = {"csrf": token, "site": "s1", "pid": "P-00017", "cat": "green", "hh": "9-23-301", "name": "张三丰",
            "id_number": NUMBER, "from": "2026-03-19", "days": "30", **fields}
    response = client.post("/passes/issue", data=data)
    return response.status_code, response.text


def batch(client: TestClient, text: str) -> tuple[int, str]:
    token = csrf_of(client.get("/passes/issue").text)
    response = client.post("/passes/batch", data={"csrf": token, "site": "s1", "days": "90"},
                           files={"batch": ("households.csv", text.encode(), "text/csv")})
    return response.status_code, response.text


@pytest.mark.parametrize(("name", "status"), [("guard1", 403), ("clerk", 200), ("boss", 200)])
def test_only_the_office_and_admin_may_see_passes(client: TestClient, store: Store, name: str,
                                                  status: int) -> None:
    sign_in(client, name)
    for path in ("/passes", "/passes/issue", "/passes/revoke", "/passes/registry", "/passes/sheet?pid=P-1"):
        got = client.get(path).status_code
        assert got == status or (status == 200 and path.startswith("/passes/sheet") and got == 404), path
    if status == 403:
        code, _ = 403, None
        token = csrf_of(client.get("/overview").text)
        assert client.post("/passes/issue", data={"csrf": token, "pid": "P-1"}).status_code == code
        assert client.post("/passes/revoke", data={"csrf": token, "site": "s1", "pids": "P-1",
                                                   "note": "x"}).status_code == code
        assert store.registry() == [] and store.revocations() == []


def test_signed_out_is_sent_to_sign_in(client: TestClient) -> None:
    response = client.get("/passes")
    assert response.status_code == 303 and response.headers["location"].startswith("/signin")


def test_a_post_without_the_csrf_token_is_refused(client: TestClient, store: Store) -> None:
    sign_in(client, "clerk")
    response = client.post("/passes/issue", data={"site": "s1", "pid": "P-1", "cat": "green",
                                                  "id_number": NUMBER, "days": "3"})
    assert response.status_code == 403
    response = client.post("/passes/revoke", data={"site": "s1", "pids": "P-1", "note": "lost"})
    assert response.status_code == 403
    assert store.registry() == [] and store.revocations() == []


def test_issue_one_pass_signed_audited_and_without_the_id_number(client: TestClient, store: Store,
                                                                 tmp_path: Path) -> None:
    sign_in(client, "clerk")
    status, html = issue(client)
    assert status == 201, html
    assert "/passes/sheet?pid=P-00017" in html
    [record] = store.pass_records()
    p = record.issued
    assert (p.pid, p.cat, p.hh, p.name_masked, record.site, record.issued_by) == (
        "P-00017", "green", "9-23-301", "张**", "s1", "clerk")
    assert p.idh == idnumber.parse(NUMBER).person_ref(SITE_KEY)
    local = datetime(2026, 3, 19, tzinfo=UTC) - timedelta(hours=8)  # midnight in Asia/Shanghai
    assert (p.nbf, p.exp) == (int(local.timestamp()), int((local + timedelta(days=30)).timestamp()))
    assert record.text is not None
    verdict = PassVerifier(_ring_dir(tmp_path)).verify(record.text, now=NOW)
    assert verdict.valid and verdict.pass_ is not None and verdict.pass_.pid == "P-00017"
    [audit] = [a for a in store.audit_log() if a.action == "pass.issue"]
    assert audit.who == "clerk" and "P-00017" in audit.detail
    assert_never_kept(store, client, NUMBER, "张三丰")


def test_a_pass_with_the_platforms_hpr_is_a_v2_pass(client: TestClient, store: Store,
                                                    tmp_path: Path) -> None:
    """Issue 15: the office web app takes the holder's `hpr`, which binds the pass to their health codes."""
    sign_in(client, "clerk")
    assert issue(client, hpr="bad ref!")[0] == 400
    status, html = issue(client, hpr="hpr-0000017")
    assert status == 201, html
    [record] = store.pass_records()
    assert record.text is not None
    verdict = PassVerifier(_ring_dir(tmp_path)).verify(record.text, now=NOW)
    assert verdict.valid and verdict.pass_ is not None and verdict.pass_.hpr == "hpr-0000017"


def assert_never_kept(store: Store, client: TestClient, *secrets: str) -> None:
    assert isinstance(store, SqliteStore)
    db = store.path
    raw = b"".join(p.read_bytes() for p in db.parent.glob(db.name + "*"))
    pages = "".join(client.get(path).text for path in ("/passes", "/passes/revoke", "/passes/issue"))
    audit = " ".join(a.detail for a in store.audit_log())
    for secret in secrets:
        for form in (secret, secret.lower()):
            assert form.encode() not in raw, form
            assert form not in pages and form not in audit, form


def test_a_duplicate_pid_is_refused_by_name(client: TestClient, store: Store) -> None:
    sign_in(client, "clerk")
    assert issue(client)[0] == 201
    status, html = issue(client, name="李四", id_number=OTHER, cat="blue")
    assert status == 409 and "证号已存在" in html and "P-00017" in html
    assert OTHER not in html  # not even back in the form
    [record] = store.pass_records()
    assert record.issued.cat == "green"
    assert len([a for a in store.audit_log() if a.action == "pass.issue"]) == 1


def test_a_batch_is_issued_whole_or_refused_whole(client: TestClient, store: Store) -> None:
    sign_in(client, "boss")
    assert issue(client, pid="P-00002")[0] == 201
    text = ("\ufeffpid,cat,hh,name,id_number\n"
            f"P-00001,green,9-23-301,张三丰,{NUMBER}\nP-00002,blue,9-23-302,李四,{OTHER}\n"
            f"P-00003,pink,,王五,{OTHER}\n")
    status, html = batch(client, text)
    assert status == 409 and "P-00002" in html and "P-00001" not in html.split("证号已存在")[1][:200]
    assert [r.issued.pid for r in store.pass_records()] == ["P-00002"]
    status, html = batch(client, text.replace("P-00002", "P-00001"))  # twice in the batch
    assert status == 400 and "P-00001" in html and "twice" in html
    assert [r.issued.pid for r in store.pass_records()] == ["P-00002"]
    status, html = batch(client, text.replace("P-00002", "P-00004"))
    assert status == 201, html
    assert "/passes/sheet?pid=P-00001&amp;pid=P-00004&amp;pid=P-00003" in html
    assert {r.issued.pid for r in store.pass_records()} == {"P-00001", "P-00002", "P-00003", "P-00004"}
    audits = [a for a in store.audit_log() if a.action == "pass.issue"]
    assert audits[0].who == "boss" and "P-00001,P-00004,P-00003" in audits[0].detail
    assert_never_kept(store, client, NUMBER, OTHER, "张三丰")


def test_bad_fields_are_named_and_nothing_is_issued(client: TestClient, store: Store) -> None:
    sign_in(client, "clerk")
    assert issue(client, pid="P 1")[0] == 400
    assert issue(client, cat="purple")[0] == 400
    status, html = issue(client, id_number="", idh="")
    assert status == 400 and "身份证号或 idh" in html
    status, html = issue(client, id_number=NUMBER[:-1] + "1")
    assert status == 400 and "ID number" in html and NUMBER[:-1] not in html
    assert issue(client, days="", to="2026-03-01")[0] == 400
    assert store.registry() == []


def test_a_site_without_a_pass_key_issues_nothing(store: Store, tmp_path: Path) -> None:
    with make_client(store, tmp_path, pass_key=False) as client:
        sign_in(client, "clerk")
        html = client.get("/passes/issue").text
        assert 'id="no-pass-key"' in html and "pass_key_file" in html
        token = csrf_of(html)
        response = client.post("/passes/issue", data={"csrf": token, "site": "s1", "pid": "P-1",
                                                      "cat": "green", "name": "张三", "idh": "ab" * 32,
                                                      "days": "3"})
        assert response.status_code == 409 and "签名密钥" in response.text
    assert store.registry() == []


def test_the_sheet_has_a_card_in_each_colour_with_the_community(client: TestClient, store: Store) -> None:
    sign_in(client, "clerk")
    for pid, cat in (("P-1", "green"), ("P-2", "blue"), ("P-3", "red"), ("P-4", "pink")):
        assert issue(client, pid=pid, cat=cat)[0] == 201
    html = client.get("/passes/sheet?pid=P-1&pid=P-2&pid=P-3&pid=P-4&pid=P-9").text
    cards = re.findall(r'<article class="pass-card (\w+)" data-pid="([^"]+)"', html)
    assert cards == [("green", "P-1"), ("blue", "P-2"), ("red", "P-3"), ("pink", "P-4")]
    for words in ("绿色", "居民", "蓝色", "租户", "红色", "返回人员", "粉色", "访客"):
        assert words in html
    assert html.count("幸福里社区") == 4 and html.count("<svg") == 4 and "2026-03-19 至 2026-04-17" in html
    assert "P-9" in html.split("无法打印")[1][:100]
    assert "style=" not in html and "<style" not in html  # the CSP allows stylesheets from /static only


def revoke(client: TestClient, pids: str, note: str = "证件遗失") -> tuple[int, str]:
    token = csrf_of(client.get("/passes/revoke").text)
    response = client.post("/passes/revoke", data={"csrf": token, "site": "s1", "pids": pids, "note": note})
    return response.status_code, response.text


def test_a_revocation_is_signed_and_published_retained(store: Store, tmp_path: Path,
                                                       mqtt_broker: LocalBroker) -> None:
    with make_client(store, tmp_path, broker_port=mqtt_broker.port) as client:
        sign_in(client, "clerk")
        assert issue(client, pid="P-1")[0] == 201
        status, html = revoke(client, "P-1, P-7")
        assert status == 200 and 'id="revoked-now"' in html and "尚未发布" not in html
        assert revoke(client, "P-1")[0] == 409  # already revoked: no new list
        assert revoke(client, "P-2", note="")[0] == 400
    observer = Observer(mqtt_broker, revocations_topic("s1"))  # retained: a kiosk connecting later gets it
    try:
        wait_for(lambda: observer.on(revocations_topic("s1")), 5, "the retained list")
        [text] = observer.on(revocations_topic("s1"))
    finally:
        observer.close()
    listing = RevocationList(_ring_dir(tmp_path), site="s1")
    assert listing.offer(text).accepted and listing.serial == store.revocation_state("s1").serial
    assert listing.revoked() == frozenset({"P-1", "P-7"})
    [record] = store.pass_records()
    verdict = PassVerifier(_ring_dir(tmp_path), revoked=listing.revoked).verify(record.text or "", now=NOW)
    assert verdict.reasons == (Reason.PASS_REVOKED,)
    [audit] = [a for a in store.audit_log() if a.action == "pass.revoke"]
    assert audit.who == "clerk" and "P-1,P-7" in audit.detail and "证件遗失" in audit.detail
    assert store.revocation_state("s1").published


def test_a_revocation_the_broker_did_not_take_is_kept_to_publish_again(
        store: Store, tmp_path: Path, mqtt_broker: LocalBroker) -> None:
    with make_client(store, tmp_path) as client:  # a port where no broker listens
        sign_in(client, "clerk")
        status, html = revoke(client, "P-5", note="搬离")
        assert status == 502 and "尚未发布" in html and "cannot reach the broker" in html
    assert [r.pid for r in store.revocations()] == ["P-5"] and not store.revocation_state("s1").published
    with make_client(store, tmp_path, broker_port=mqtt_broker.port) as client:
        sign_in(client, "clerk")
        html = client.get("/passes/revoke").text
        assert "尚未发布" in html and "搬离" in html and "clerk" in html
        response = client.post("/passes/publish", data={"csrf": csrf_of(html), "site": "s1"})
        assert response.status_code == 303
        assert "尚未发布" not in client.get("/passes/revoke").text
    state = store.revocation_state("s1")
    assert state.published and state.serial >= int(NOW.timestamp()) and state.revoked == ("P-5",)
    assert [a.action for a in store.audit_log()][:2] == ["pass.revoke.publish", "signin"]


def test_the_expiring_list_and_the_filters(client: TestClient, store: Store) -> None:
    sign_in(client, "clerk")
    assert issue(client, pid="P-1", days="3")[0] == 201
    assert issue(client, pid="P-2", days="30", cat="blue", hh="9-1-101")[0] == 201
    html = client.get("/passes").text
    expiring = html.split("全部出入证")[0]
    assert 'data-pid="P-1"' in expiring and 'data-pid="P-2"' not in expiring
    assert 'data-pid="P-2"' in client.get("/passes?days=40").text.split("全部出入证")[0]
    filtered = client.get("/passes?cat=blue").text.split("全部出入证")[1]
    assert 'data-pid="P-2"' in filtered and 'data-pid="P-1"' not in filtered
    assert client.get("/passes?cat=purple").status_code == 400


def test_the_registry_comparison(client: TestClient, store: Store) -> None:
    sign_in(client, "clerk")
    assert issue(client, pid="P-1", hh="9-1-101", **{"from": "2026-01-01", "days": "300"})[0] == 201
    assert issue(client, pid="P-2", hh="9-1-102", **{"from": "2026-01-01", "days": "300"})[0] == 201
    insert(store, [make_entry("s1", "gate-north", 1, at("2026-03-18T01:00:00.000Z"),
                              pass_=("P-1", "green", "9-1-101")),
                   make_entry("s1", "gate-north", 2, at("2026-03-18T02:00:00.000Z"),
                              pass_=("P-666", "red", "9-9-999"))])
    html = client.get("/passes/registry").text
    assert '<tr data-pid="P-666">' in html and '<tr data-pid="P-1">' not in html
    assert '<tr data-hh="9-1-102">' in html and '<tr data-hh="9-1-101">' not in html
    assert client.get("/passes/registry?absent_days=0").status_code == 400


def test_kiosk_admin_refuses_a_pid_already_in_its_registry(tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    """The command line's registry (passes.csv in --out) refuses a taken pid too, and its sheet has the
    same cards with the community's name."""
    keygen(tmp_path / "office.key")
    out = tmp_path / "out"
    common = ["issue-pass", "--key", str(tmp_path / "office.key"), "--idh", "ab" * 32, "--days", "3",
              "--out", str(out)]
    assert admin_main([*common, "--pid", "P-1", "--cat", "green"]) == 0
    registry = (out / "passes.csv").read_text(encoding="utf-8")
    capsys.readouterr()
    assert admin_main([*common, "--pid", "P-1", "--cat", "blue"]) == 1
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0 and "P-1" in error and "already issued" in error
    batch_csv = tmp_path / "batch.csv"
    batch_csv.write_text(f"pid,cat,idh\nP-2,red,{'cd' * 32}\nP-1,pink,{'cd' * 32}\n", encoding="utf-8")
    batch_args = ["issue-pass", "--key", str(tmp_path / "office.key"), "--batch", str(batch_csv), "--days",
                  "3", "--community", "幸福里社区", "--out", str(out)]
    assert admin_main(batch_args) == 1
    assert "P-1" in capsys.readouterr().err and not (out / "P-2.txt").exists()
    assert (out / "passes.csv").read_text(encoding="utf-8") == registry
    batch_csv.write_text(f"pid,cat,idh\nP-2,red,{'cd' * 32}\nP-3,pink,{'cd' * 32}\n", encoding="utf-8")
    assert admin_main(batch_args) == 0
    sheet = (out / "sheet.html").read_text(encoding="utf-8")
    assert re.findall(r'class="pass-card (\w+)"', sheet) == ["red", "pink"]
    assert sheet.count("幸福里社区") >= 2 and "红色" in sheet and "返回人员" in sheet and "访客" in sheet
    assert ".pass-card.red { background" in sheet and "@media print" in sheet


def test_an_unreadable_site_key_is_named_and_nothing_is_issued(client: TestClient, store: Store,
                                                               tmp_path: Path) -> None:
    (tmp_path / "s1.hmac").chmod(0o644)  # a key others may read is refused, as the kiosk refuses it
    sign_in(client, "clerk")
    status, html = issue(client)
    assert status == 409 and "hmac_key" in html and NUMBER not in html
    assert store.registry() == []


def test_the_pages_in_english(client: TestClient) -> None:
    sign_in(client, "clerk")
    client.get("/lang/en")
    assert "A batch from CSV" in client.get("/passes/issue").text
    assert "Each site&#39;s revocation list" in client.get("/passes/revoke").text
    assert "Households not seen for 7 days" in client.get("/passes/registry").text
    assert "Passes expiring in the next 7 days" in client.get("/passes").text
