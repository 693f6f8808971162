"""The 出入证 Passes pages in Debian's headless Chromium, on the real office service and a real mosquitto:

(a) a batch issued from an uploaded CSV prints as an A4 sheet whose QR codes, decoded with zxing-cpp from
    a screenshot, are the signed passes shown, each card wholly in its colour with its Chinese colour name
    and the community's name;
(b) a pass issued and then revoked in the browser is denied (pass_revoked) by a running emulated kiosk,
    which took the signed list from the retained revocations topic.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import zxingcpp
from mqtt_helpers import Observer, wait_for
from PIL import Image
from playwright.sync_api import Browser, Page
from web_helpers import office_web

from checkpoint.keys import public_pem
from checkpoint.topics import topics
from kiosk import app, sim
from kiosk.config import embedded_config_text, load_config
from kiosk.hardware import Emulation, Hardware
from kiosk.mqtt.local_broker import LocalBroker
from kiosk.scanner import Scanner
from kiosk.session.events import CodesSeen, Motion
from kiosk.sim.issuer import Issuer, render
from kiosk.sim.scenario import HealthSpec, Person
from office.admin.cli import keygen
from office.admin.passes import export_pubkeys
from office.store.sqlite import SqliteStore
from office.web.passwords import hash_password

PASSWORD = "correct horse battery"
FRAMES = Path(sim.__file__).parent / "data" / "frames"
SIM = topics("sim", "gate-sim")
CARDS = {"green": ("绿色", "居民"), "blue": ("蓝色", "租户"), "red": ("红色", "返回人员"),
         "pink": ("粉色", "访客")}


def office_keys(tmp_path: Path) -> tuple[Path, Path]:
    """A pass key (kiosk-admin keygen) and a site HMAC key file (32+ bytes, 0600)."""
    keygen(tmp_path / "pass.key")
    hmac = tmp_path / "site.hmac"
    hmac.write_bytes(b"the site's HMAC key, 32 bytes long or more")
    hmac.chmod(0o600)
    return tmp_path / "pass.key", hmac


def signed_in(browser: Browser, url: str, path: str) -> Page:
    page = browser.new_page(viewport={"width": 1280, "height": 900}, locale="zh-CN", device_scale_factor=2)
    page.goto(f"{url}{path}")
    page.fill("input[name=username]", "clerk")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{url}{path}")
    return page


def add_clerk(db: Path) -> None:
    with SqliteStore(db) as store:
        store.add_user("clerk", "office", hash_password(PASSWORD), by="test", at=datetime.now(UTC))


def test_the_printed_sheet_scans_to_the_signed_passes(tmp_path: Path, browser: Browser,
                                                      mqtt_broker: LocalBroker) -> None:
    pass_key, hmac = office_keys(tmp_path)
    db = tmp_path / "office.sqlite"
    add_clerk(db)
    batch = tmp_path / "households.csv"
    batch.write_text("pid,cat,hh,name,id_number\n"
                     "P-00001,green,9-23-301,张三丰,11010519491231002X\n"
                     "P-00002,blue,9-23-302,李四,370102198001011237\n"
                     "P-00003,red,9-23-303,王五,11010519491231002X\n"
                     "P-00004,pink,,赵六,370102198001011237\n", encoding="utf-8")
    config = {"sites": {"s1": {"name": "幸福里社区", "pass_key_file": str(pass_key),
                               "hmac_key_file": str(hmac)}},
              "broker": {"port": mqtt_broker.port}}
    with office_web(tmp_path, db, config=config) as served:
        page = signed_in(browser, served.url, "/passes/issue")
        try:
            page.set_input_files("form[action='/passes/batch'] input[type=file]", str(batch))
            page.click("form[action='/passes/batch'] button[type=submit]")
            page.locator("#issued").wait_for(timeout=5000)
            page.click("#print-sheet")
            page.wait_for_url(f"{served.url}/passes/sheet?*")
            page.emulate_media(media="print")
            shot = page.screenshot(full_page=True)
            (tmp_path / "pass-sheet.png").write_bytes(shot)
            cards = {}
            for cat, (colour, kind) in CARDS.items():
                card = page.locator(f".pass-card.{cat}")
                text = card.inner_text()
                assert colour in text and kind in text and "幸福里社区" in text, text
                background = card.evaluate("c => getComputedStyle(c).backgroundColor")
                cards[card.get_attribute("data-pid")] = background
        finally:
            page.close()
    with SqliteStore(db) as store:
        signed = {r.issued.pid: r.text for r in store.pass_records()}
    assert set(cards) == set(signed) == {"P-00001", "P-00002", "P-00003", "P-00004"}
    assert len(set(cards.values())) == 4 and "rgba(0, 0, 0, 0)" not in cards.values()  # a colour each
    image = np.asarray(Image.open(io.BytesIO(shot)).convert("L"))
    decoded = sorted(result.text for result in zxingcpp.read_barcodes(image))
    assert decoded == sorted(t for t in signed.values() if t), "every QR on the sheet is a signed pass shown"


@contextmanager
def running_kiosk(tmp_path: Path, mqtt_broker: LocalBroker) -> Iterator[tuple[app.Daemon, Emulation, Issuer]]:
    """The emulated kiosk (site "sim") on the broker, trusting the office's pass key and the simulated
    health authority, with a camera that sees no code (codes are handed to the lane)."""
    issuer = Issuer()
    frames, passes, health = tmp_path / "frames", tmp_path / "pass-keys", tmp_path / "health-keys"
    frames.mkdir()
    (frames / "000-empty.png").write_bytes((FRAMES / "000-empty.png").read_bytes())
    export_pubkeys([tmp_path / "pass.key"], passes)  # kiosk-admin export-pubkeys
    health.mkdir()
    (health / f"{issuer.health_kid}.pub").write_bytes(public_pem(issuer.health.public_key()))
    text = (embedded_config_text().replace('path = "frames"', f'path = "{frames}"')
            .replace("~/.local/state/checkpoint-kiosk/simulate", str(tmp_path / "kiosk-state"))
            .replace("port = 0            # 0 with local_broker: pick a free loopback port",
                     f"port = {mqtt_broker.port}").replace("local_broker = true", "local_broker = false")
            .replace('providers = ["token", "dcc"]', f'providers = ["token"]\ntoken_keys_dir = "{health}"'))
    path = tmp_path / "kiosk.toml"
    path.write_text(text + f'\n[passes]\nkeys_dir = "{passes}"\n')
    config = load_config(path)
    emulation = Emulation()
    daemon = app.Daemon(config, config_path=path, hardware=Hardware(config, emulation=emulation))
    thread = threading.Thread(target=daemon.run, name="kiosk-under-test")
    thread.start()
    try:
        wait_for(lambda: daemon.publisher is not None and daemon.publisher.connected and daemon.lane,
                 20, "the kiosk online")
        yield daemon, emulation, issuer
    finally:
        daemon.stop.set()
        thread.join(30)
    assert not thread.is_alive()


def test_a_pass_revoked_in_the_browser_is_denied_at_the_kiosk(
        tmp_path: Path, browser: Browser, mqtt_broker: LocalBroker) -> None:
    pass_key, hmac = office_keys(tmp_path)
    db = tmp_path / "office.sqlite"
    add_clerk(db)
    config = {"sites": {"sim": {"name": "幸福里社区", "pass_key_file": str(pass_key),
                                "hmac_key_file": str(hmac)}},
              "broker": {"port": mqtt_broker.port}}
    with office_web(tmp_path, db, config=config) as served, \
            running_kiosk(tmp_path, mqtt_broker) as (daemon, emulation, issuer):
        page = signed_in(browser, served.url, "/passes/issue")
        try:
            form = page.locator("form[action='/passes/issue']")
            form.locator("input[name=pid]").fill("P-00042")
            form.locator("select[name=cat]").select_option("blue")
            form.locator("input[name=hh]").fill("9-23-301")
            form.locator("input[name=name]").fill("陈小明")
            form.locator("input[name=idh]").fill(issuer.idh(1))  # the holder of the health code below
            form.locator("button[type=submit]").click()
            page.locator("#issued").wait_for(timeout=5000)
            page.goto(f"{served.url}/passes")
            page.check("#all-passes input[value='P-00042']")
            page.click("#all-passes ~ button[formaction='/passes/revoke']")
            page.wait_for_url(f"{served.url}/passes/revoke?*")
            assert page.input_value("textarea[name=pids]") == "P-00042"
            page.fill("textarea[name=note]", "住户反映证件遗失")
            page.click("form.revoke button[type=submit]")
            page.locator("#revoked-now").wait_for(timeout=5000)
            assert "尚未发布" not in page.inner_text("main")
            assert "住户反映证件遗失" in page.inner_text("table.revoked-list")
        finally:
            page.close()
        revocations = daemon.revocations
        assert revocations is not None
        with SqliteStore(db) as store:
            serial = store.revocation_state("sim").serial
        assert serial > 0
        wait_for(lambda: revocations.serial == serial, 5, "the kiosk took the list")
        assert revocations.revoked() == frozenset({"P-00042"})
        with SqliteStore(db) as store:
            [record] = store.pass_records()
        assert record.text is not None
        observer = Observer(mqtt_broker, SIM.entry)
        try:
            assert emulation.chip is not None and daemon.lane is not None
            emulation.chip.object_c = 34.5
            token = issuer.codes(1, Person(at_s=0, health=HealthSpec(status="green")), datetime.now(UTC))
            daemon.lane.submit(Motion())
            codes = Scanner()(render([record.text, *token]))
            assert len(codes) == 2
            daemon.lane.submit(CodesSeen(tuple(codes), 5.0))
            wait_for(lambda: observer.entries(SIM.entry), 10, "the kiosk's entry")
            [entry] = observer.entries(SIM.entry)
        finally:
            observer.close()
    assert entry.decision == "deny" and entry.reasons == ["pass_revoked"], entry
    assert entry.pass_ is not None and entry.pass_.pid == "P-00042"
    with SqliteStore(db) as store:
        [audit] = [a for a in store.audit_log() if a.action == "pass.revoke"]
    assert audit.who == "clerk" and "P-00042" in audit.detail
