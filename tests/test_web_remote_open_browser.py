"""A remote open sent from the 告警 page in a real headless Chromium opens a running emulated kiosk's gate,
and the same signed command replayed does not open it again.

Everything is real but the hardware: a mosquitto, the kiosk daemon on emulated GPIO and thermometer, the
office service (ingest and web) on SQLite, and Debian's Chromium. A person with a valid pass and health
code but a fever makes the kiosk record an attention and a fever alert; the alert reaches the open page;
an office user confirms a remote open with a note; the kiosk checks the office's signature (its .pub is in
the kiosk's [commands] keys_dir) and resolves that attention by opening the gate. The command, captured
on the broker and published again, is refused as a replay (kiosk/mqtt/commands.py), and would find no
open attention anyway (kiosk/session/lane.py).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path

import pytest
from mqtt_helpers import Observer, publish, wait_for
from playwright.sync_api import Browser
from web_helpers import office_web

from checkpoint.keys import public_pem
from checkpoint.topics import topics
from kiosk import app, sim
from kiosk.config import KioskConfig, embedded_config_text, load_config
from kiosk.hardware import EMULATED_AMBIENT_C, Emulation, Hardware
from kiosk.mqtt.local_broker import LocalBroker
from kiosk.scanner import Scanner
from kiosk.session.events import CodesSeen, Motion
from kiosk.sim.issuer import Issuer, render
from kiosk.sim.scenario import HealthSpec, PassSpec, Person
from office.admin.cli import keygen
from office.admin.passes import export_pubkeys
from office.store.sqlite import SqliteStore
from office.web.passwords import hash_password

PASSWORD = "correct horse battery"
FRAMES = Path(sim.__file__).parent / "data" / "frames"
SIM = topics("sim", "gate-sim")
FEVER = Person(at_s=0, pass_=PassSpec(cat="red", hh="9-23-301"), health=HealthSpec(status="green"),
               skin_c=37.2, ambient_c=EMULATED_AMBIENT_C)


def kiosk_config(tmp_path: Path, broker: LocalBroker, issuer: Issuer, operators: Path) -> Path:
    """The embedded (emulated) kiosk on `broker`, trusting `issuer`'s passes and codes and the office's
    command key, with a camera that sees no code (codes are handed to the lane below)."""
    frames = tmp_path / "frames"
    frames.mkdir()
    (frames / "000-empty.png").write_bytes((FRAMES / "000-empty.png").read_bytes())
    passes, health = tmp_path / "pass-keys", tmp_path / "health-keys"
    for directory, key, kid in ((passes, issuer.office, issuer.office_kid),
                                (health, issuer.health, issuer.health_kid)):
        directory.mkdir()
        (directory / f"{kid}.pub").write_bytes(public_pem(key.public_key()))
    text = (embedded_config_text().replace('path = "frames"', f'path = "{frames}"')
            .replace("~/.local/state/checkpoint-kiosk/simulate", str(tmp_path / "kiosk-state"))
            .replace("port = 0            # 0 with local_broker: pick a free loopback port",
                     f"port = {broker.port}").replace("local_broker = true", "local_broker = false")
            .replace('providers = ["token", "dcc"]', f'providers = ["token"]\ntoken_keys_dir = "{health}"'))
    path = tmp_path / "kiosk.toml"
    path.write_text(text + f'\n[passes]\nkeys_dir = "{passes}"\n\n[commands]\nkeys_dir = "{operators}"\n')
    return path


def relay_pulses(emulation: Emulation, config: KioskConfig) -> int:
    """How often the (active-low) relay was energised."""
    levels = [bool(s.state) for s in emulation.pin_factory.pin(config.gate.relay_pin).states][1:]
    return sum(1 for before, after in pairwise(levels) if before and not after)


@pytest.fixture
def kiosk(tmp_path: Path, mqtt_broker: LocalBroker) -> Iterator[tuple[app.Daemon, Emulation, Issuer]]:
    """The kiosk daemon, online on the broker, trusting the office command key at tmp_path/office.key."""
    keygen(tmp_path / "office.key")
    export_pubkeys([tmp_path / "office.key"], tmp_path / "operators")
    issuer = Issuer()
    path = kiosk_config(tmp_path, mqtt_broker, issuer, tmp_path / "operators")
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


def show_fever(daemon: app.Daemon, emulation: Emulation, issuer: Issuer) -> None:
    """A person with a valid red pass and a green code, at 37.2 °C on the skin, at the gate."""
    assert emulation.chip is not None and daemon.lane is not None
    emulation.chip.object_c = FEVER.skin_c
    daemon.lane.submit(Motion())
    codes = Scanner()(render(issuer.codes(1, FEVER, datetime.now(UTC))))  # read from a frame, as at the gate
    assert len(codes) == 2
    daemon.lane.submit(CodesSeen(tuple(codes), 5.0))


def test_a_remote_open_from_the_alert_page_opens_the_gate_once(
        tmp_path: Path, mqtt_broker: LocalBroker, browser: Browser,
        kiosk: tuple[app.Daemon, Emulation, Issuer], caplog: pytest.LogCaptureFixture) -> None:
    daemon, emulation, issuer = kiosk
    db = tmp_path / "office.sqlite"
    with SqliteStore(db) as store:
        store.add_user("clerk", "office", hash_password(PASSWORD), by="test", at=datetime.now(UTC))
    observer = Observer(mqtt_broker, f"{SIM.prefix}/#")
    config = {"broker": {"port": mqtt_broker.port, "client_id": "office-under-test"},
              "ingest": {"enabled": True, "writer": "thread"},
              "report": {"out_dir": str(tmp_path / "reports"), "publish": False},
              "sites": {"sim": {"command_key_file": str(tmp_path / "office.key")}}}
    page = browser.new_page(viewport={"width": 1280, "height": 900}, locale="zh-CN")
    try:
        with office_web(tmp_path, db, config=config) as served:
            page.goto(f"{served.url}/alerts")
            page.fill("input[name=username]", "clerk")
            page.fill("input[name=password]", PASSWORD)
            page.click("button[type=submit]")
            page.wait_for_url(f"{served.url}/alerts")
            page.evaluate("window.stillTheSamePage = true")
            page.wait_for_timeout(700)  # the event stream is open
            show_fever(daemon, emulation, issuer)
            wait_for(lambda: observer.entries(SIM.entry), 15, "the attention entry")
            [attention] = observer.entries(SIM.entry)
            assert (attention.decision, attention.reasons) == ("attention", ["fever"])
            card = page.locator(f"article[data-kind='fever']:has(code:text-is('{attention.id}'))")
            card.wait_for(timeout=5000)
            assert page.evaluate("window.stillTheSamePage") is True  # it arrived live
            assert "9-23-301" in card.inner_text() and relay_pulses(emulation, daemon.config) == 0
            card.locator("a", has_text="远程开门").click()
            page.wait_for_url(f"{served.url}/alerts/open?alert=*")
            page.fill("textarea[name=note]", "复测体温 36.8，放行")
            page.screenshot(path=str(tmp_path / "remote-open.png"), full_page=True)
            page.click("form.remote-open button[type=submit]")
            page.locator("#open-sent").wait_for(timeout=5000)
            page.screenshot(path=str(tmp_path / "remote-open-sent.png"), full_page=True)
            wait_for(lambda: observer.json(SIM.resolution), 10, "the kiosk's resolution")
            [resolution] = observer.json(SIM.resolution)
            assert (resolution["entry_id"], resolution["by"], resolution["opened"]) == (
                attention.id, "remote", True)
            assert resolution["operator"] == "clerk"
            wait_for(lambda: relay_pulses(emulation, daemon.config) == 1, 5, "the gate opened")
            [captured] = observer.on(f"{SIM.cmd}/open")
            assert captured.startswith(b"CKC1.")
            caplog.set_level(logging.WARNING, logger="kiosk.mqtt.commands")
            publish(mqtt_broker, f"{SIM.cmd}/open", captured)  # the replay
            wait_for(lambda: "a replay (nonce already used)" in caplog.text, 5, "the replay refused")
            page.wait_for_timeout(1500)
            assert relay_pulses(emulation, daemon.config) == 1, "the replay opened nothing"
            assert len(observer.json(SIM.resolution)) == 1
            assert len(observer.entries(SIM.entry)) == 1, "and recorded no manual opening either"
    finally:
        page.close()
        observer.close()
    with SqliteStore(db) as store:
        [audit] = [a for a in store.audit_log() if a.action == "alert.remote_open"]
    assert audit.who == "clerk" and f"entry={attention.id}" in audit.detail and "site=sim" in audit.detail
