"""`kiosk simulate --serve`: after the scenario, the office web app stays up on 127.0.0.1 with a crowd that
keeps arriving, at the pace of the clock, at two simulated gates, so the overview and the alerts move.

Everything is the real thing but the hardware: a private mosquitto, two kiosk daemons on emulated devices,
and the office service (ingest and web) on a SQLite store in the simulation's state directory. The
simulated office signs passes and revocations with the issuer's key, which the kiosks trust, and sends
remote opens with a command key of its own, so every page works. A user `admin` gets a new random password
at each start, printed once. It runs until `stop` is set (Ctrl-C, SIGTERM).
"""

from __future__ import annotations

import random
import secrets
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from checkpoint.keys import kid_for, public_pem
from kiosk import app
from kiosk.config import KioskConfig, embedded_config_text, load_config
from kiosk.credentials.verify import SIMULATION_SITE_KEY
from kiosk.hardware import EMULATED_AMBIENT_C, Emulation, Hardware
from kiosk.mqtt.local_broker import LocalBroker, free_port
from kiosk.scanner import Scanner
from kiosk.session.events import CodesSeen, Motion
from kiosk.sim.issuer import Issuer, render
from kiosk.sim.scenario import Person
from office.config import OfficeConfig
from office.ingest.service import Collector
from office.store.opening import open_store
from office.web.passwords import hash_password

GATES = ("gate-north", "gate-south")
SITE_NAME = "模拟小区"
ARRIVAL_EVERY_S = 3.0  # on average, at each gate
START_TIMEOUT_S = 30.0
HOUSEHOLDS = [f"{b}-{u}-{f}0{r}" for b in (1, 2, 3) for u in (1, 2) for f in range(1, 7) for r in (1, 2)]


@dataclass
class DemoGate:
    """One simulated kiosk: its daemon, its emulated devices and its thread."""

    name: str
    daemon: app.Daemon
    emulation: Emulation
    thread: threading.Thread


def _write_key(path: Path, key: Ed25519PrivateKey) -> Path:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    path.chmod(0o600)
    return path


def _secret_file(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    path.chmod(0o600)
    return path


def _trust(directory: Path, key: Ed25519PrivateKey, kid: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{kid}.pub").write_bytes(public_pem(key.public_key()))
    return directory


def _kiosk_config(home: Path, gate: str, broker: LocalBroker, issuer: Issuer, operators: Path) -> KioskConfig:
    """The embedded kiosk as `gate` on `broker`, trusting the issuer's passes and codes and the office's
    command key; its camera sees nothing (the crowd hands codes to the lane)."""
    frames = home / gate / "frames"
    frames.mkdir(parents=True, exist_ok=True)
    (frames / "000-empty.png").write_bytes((Path(__file__).parent / "data" / "frames" / "000-empty.png")
                                           .read_bytes())
    passes = _trust(home / "pass-keys", issuer.office, issuer.office_kid)
    health = _trust(home / "health-keys", issuer.health, issuer.health_kid)
    text = (embedded_config_text()
            .replace('kiosk = "gate-sim"', f'kiosk = "{gate}"')
            .replace('path = "frames"', f'path = "{frames}"')
            .replace("~/.local/state/checkpoint-kiosk/simulate", str(home / gate / "state"))
            .replace("port = 0            # 0 with local_broker: pick a free loopback port",
                     f"port = {broker.port}").replace("local_broker = true", "local_broker = false")
            .replace('providers = ["token", "dcc"]', f'providers = ["token"]\ntoken_keys_dir = "{health}"'))
    path = home / gate / "kiosk.toml"
    path.write_text(text + f'\n[passes]\nkeys_dir = "{passes}"\n\n[commands]\nkeys_dir = "{operators}"\n')
    return load_config(path)


@contextmanager
def _gate(home: Path, name: str, broker: LocalBroker, issuer: Issuer, operators: Path,
          stop: threading.Event) -> Iterator[DemoGate]:
    config = _kiosk_config(home, name, broker, issuer, operators)
    emulation = Emulation()
    daemon = app.Daemon(config, hardware=Hardware(config, emulation=emulation), stop=stop)
    thread = threading.Thread(target=daemon.run, name=f"kiosk-{name}")
    thread.start()
    try:
        yield DemoGate(name, daemon, emulation, thread)
    finally:
        stop.set()
        thread.join(30)


def _office_config(home: Path, store: Path, broker: LocalBroker, port: int, issuer: Issuer) -> OfficeConfig:
    return OfficeConfig.model_validate({
        "broker": {"port": broker.port, "client_id": "demo-office"},
        "store": {"kind": "sqlite", "path": str(store)},
        "ingest": {"writer": "thread"},
        "report": {"out_dir": str(home / "reports"), "publish": False, "formats": ["json"]},
        "sites": {"sim": {
            "name": SITE_NAME,
            "hmac_key_file": str(_secret_file(home / "site.key", SIMULATION_SITE_KEY)),
            "pass_key_file": str(_write_key(home / "pass.key", issuer.office)),
            "command_key_file": str(home / "command.key"),
        }},
        "web": {"port": port, "session_key_file": str(_secret_file(home / "session.key",
                                                                   secrets.token_bytes(32)))},
    })


def one_person(rng: random.Random) -> tuple[float, dict[str, object]]:
    """Someone at the gate: skin temperature and what their codes say (mostly all well)."""
    roll = rng.random()
    health: dict[str, object] = {"status": "green", "travel": "green"}
    pass_: dict[str, object] = {"cat": rng.choice(["green"] * 6 + ["blue"] * 2 + ["red", "pink"]),
                                "hh": rng.choice(HOUSEHOLDS)}
    skin_c = round(rng.uniform(33.8, 35.2), 1)
    if roll < 0.06:
        skin_c = round(rng.uniform(37.1, 37.8), 1)  # a fever: an attention and an alert
    elif roll < 0.10:
        health["status"] = "yellow"
    elif roll < 0.13:
        pass_["valid_for_s"] = 60.0
        pass_["valid_from_s"] = -3600.0  # expired an hour ago
    elif roll < 0.15:
        health["travel"], health["star"] = "green", True
    return skin_c, {"pass": pass_, "health": health}


def _crowd(gates: list[DemoGate], issuer: Issuer, stop: threading.Event, rng: random.Random) -> None:
    """People keep arriving at each gate until `stop`."""
    scanner = Scanner()
    index = 10_000
    while not stop.wait(rng.expovariate(len(gates) / ARRIVAL_EVERY_S)):
        gate = rng.choice(gates)
        lane, chip = gate.daemon.lane, gate.emulation.chip
        if lane is None or chip is None:
            continue
        index += 1
        skin_c, spec = one_person(rng)
        person = Person.model_validate({"at_s": 0, "skin_c": skin_c, "ambient_c": EMULATED_AMBIENT_C, **spec})
        chip.object_c = skin_c
        lane.submit(Motion())
        codes = scanner(render(issuer.codes(index, person, datetime.now(UTC))))
        lane.submit(CodesSeen(tuple(codes), 5.0))
        if stop.wait(2.5):
            return
        chip.object_c = chip.ambient_c  # they walk on


def serve(state: Path, *, port: int, stop: threading.Event, out: Callable[[str], None] = print,
          seed: int | None = None) -> int:
    """Serve the office with a live crowd until `stop`; 0 after a clean stop, 1 if it could not start."""
    home = state / "serve"
    home.mkdir(parents=True, exist_ok=True)
    store_path = state / "office.sqlite"
    issuer = Issuer()
    password = secrets.token_urlsafe(12)
    with ExitStack() as stack:
        broker = stack.enter_context(LocalBroker())
        command_key = Ed25519PrivateKey.generate()
        _write_key(home / "command.key", command_key)
        operators = _trust(home / "operators", command_key, kid_for(command_key.public_key()))
        office = _office_config(home, store_path, broker, port or free_port(), issuer)
        with open_store("sqlite", path=store_path) as store:
            now = datetime.now(UTC)
            if not store.add_user("admin", "admin", hash_password(password), by="kiosk simulate --serve",
                                  at=now):
                store.update_user("admin", by="kiosk simulate --serve", at=now,
                                  password_hash=hash_password(password), role="admin", disabled=False)
        service = Collector(office, stop=threading.Event(), serve_web=True)
        office_thread = threading.Thread(target=service.run, name="office")
        office_thread.start()
        stack.callback(office_thread.join, 30)
        stack.callback(service.stop.set)
        gates = [stack.enter_context(_gate(home, name, broker, issuer, operators, threading.Event()))
                 for name in GATES]
        if not _started(service, gates, stop):
            out("the demo office or its kiosks did not start (see the log above)")
            return 1
        assert service.web is not None
        out(f"office: http://127.0.0.1:{service.web.port}/  user admin, password {password} (this run only)")
        out(f"people keep arriving at {' and '.join(GATES)}; Ctrl-C stops")
        crowd = threading.Thread(target=_crowd, args=(gates, issuer, stop, random.Random(seed)), name="crowd")
        crowd.start()
        stop.wait()
        crowd.join(10)
    out("stopped")
    return 0


def _started(service: Collector, gates: list[DemoGate], stop: threading.Event) -> bool:
    for _ in range(int(START_TIMEOUT_S / 0.1)):
        web_up = service.web is not None and service.web.alive
        kiosks_up = all(g.daemon.publisher is not None and g.daemon.publisher.connected and g.daemon.lane
                        for g in gates)
        ingest_up = service.ingest is not None and service.ingest.subscribed
        if web_up and kiosks_up and ingest_up:
            return True
        if stop.wait(0.1):
            return False
    return False
