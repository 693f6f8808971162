"""A remote open on a real mosquitto: signed by an operator, obeyed once; a captured copy opens nothing."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from itertools import pairwise
from pathlib import Path

from mqtt_helpers import Observer, publish, wait_for

from checkpoint.topics import topics
from kiosk import app, sim
from kiosk.config import embedded_config_text, load_config
from kiosk.hardware import Emulation, Hardware
from kiosk.mqtt.local_broker import LocalBroker

BIN = Path(sys.executable).parent
FRAMES = Path(sim.__file__).parent / "data" / "frames"
SIM = topics("sim", "gate-sim")


def admin(*args: str) -> str:
    done = subprocess.run([str(BIN / "kiosk-admin"), *args], capture_output=True, text=True, timeout=60,
                          check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_a_replayed_open_does_not_open_the_gate(mqtt_broker: LocalBroker, tmp_path: Path) -> None:
    """Issue 12, finding 5: an open was `{by, ts}`, unsigned, and a copy opened the gate again."""
    admin("keygen", str(tmp_path / "operator.key"))
    admin("export-pubkeys", str(tmp_path / "operator.key"), "--out", str(tmp_path / "operators"))
    text = (embedded_config_text().replace('path = "frames"', f'path = "{FRAMES}"')
            .replace("~/.local/state/checkpoint-kiosk/simulate", str(tmp_path / "state"))
            .replace("port = 0            # 0 with local_broker: pick a free loopback port",
                     f"port = {mqtt_broker.port}").replace("local_broker = true", "local_broker = false"))
    path = tmp_path / "kiosk.toml"
    path.write_text(text + f'\n[commands]\nkeys_dir = "{tmp_path / "operators"}"\n')
    config = load_config(path)
    emulation = Emulation()
    daemon = app.Daemon(config, config_path=path, hardware=Hardware(config, emulation=emulation))
    observer = Observer(mqtt_broker, f"{SIM.prefix}/#")
    thread = threading.Thread(target=daemon.run, name="daemon-under-test")
    thread.start()
    try:
        wait_for(lambda: daemon.publisher is not None and daemon.publisher.connected, 20, "the kiosk online")
        wait_for(lambda: observer.on(SIM.status), 10, "the kiosk's status")
        out = admin("command", "open", "--site", "sim", "--kiosk", "gate-sim", "--op", "wang",
                    "--key", str(tmp_path / "operator.key"), "--port", str(mqtt_broker.port))
        assert "open sent to sim/gate-sim" in out
        wait_for(lambda: observer.entries(SIM.entry), 10, "the remote opening's entry")
        [captured] = observer.on(f"{SIM.cmd}/open")
        assert captured.startswith(b"CKC1.")
        publish(mqtt_broker, f"{SIM.cmd}/open", captured)  # the replay
        publish(mqtt_broker, f"{SIM.cmd}/open", b'{"by":"anyone","ts":"2020-01-01T00:00:00.000Z"}')
        time.sleep(1.5)
    finally:
        daemon.stop.set()
        thread.join(30)
        observer.close()
    assert not thread.is_alive()
    entries = observer.entries(SIM.entry)
    assert [(e.decision, e.override) for e in entries] == [("allow", "remote")], "opened once"
    pin = emulation.pin_factory.pin(config.gate.relay_pin)
    levels = [bool(s.state) for s in pin.states][1:]
    energised = sum(1 for before, after in pairwise(levels) if before and not after)
    assert energised == 1, f"the relay pulsed once (active-low), history {levels}"
