"""`kiosk run`: start-up, systemd notify and watchdog, shutdown, and a relay that never moves meanwhile."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from kiosk import app
from kiosk.config import embedded_config_text, load_config
from kiosk.hardware import Emulation, Hardware

BIN = Path(sys.executable).parent
FRAMES = Path(app.__file__).parent / "data" / "frames"


def emulated_config(tmp_path: Path) -> Path:
    text = embedded_config_text().replace('path = "frames"', f'path = "{FRAMES}"')
    text = text.replace("~/.local/state/checkpoint-kiosk/simulate", str(tmp_path / "state"))
    path = tmp_path / "kiosk.toml"
    path.write_text(text)
    return path


def test_relay_never_moves_during_start_up_and_shutdown(tmp_path: Path) -> None:
    config = load_config(emulated_config(tmp_path))
    emulation = Emulation()
    hardware = Hardware(config, emulation=emulation)
    stop = threading.Event()
    thread = threading.Thread(target=app.run, args=(config,), kwargs={"stop": stop, "hardware": hardware},
                              name="daemon-under-test")
    thread.start()
    time.sleep(2.0)
    stop.set()
    thread.join(30)
    assert not thread.is_alive()
    pin = emulation.pin_factory.pin(config.gate.relay_pin)
    levels = [bool(s.state) for s in pin.states][1:]  # [0] is the mock pin before anyone claimed it
    assert levels, "the relay pin was never claimed"
    # Active-low board: the daemon drives the input high (de-energised) and it never goes low.
    assert all(levels), f"relay pin history {levels}"


def test_daemon_notifies_systemd_and_stops_on_sigterm(tmp_path: Path) -> None:
    notify = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(notify))
    sock.settimeout(0.2)
    env = {**os.environ, "NOTIFY_SOCKET": str(notify), "JOURNAL_STREAM": "8:12345"}
    started = time.monotonic()
    proc = subprocess.Popen([BIN / "kiosk", "run", "--config", str(emulated_config(tmp_path))], env=env,
                            stderr=subprocess.PIPE, text=True)
    messages: list[str] = []
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and messages.count("WATCHDOG=1") < 2:
            try:
                messages.append(sock.recv(256).decode())
            except TimeoutError:
                assert proc.poll() is None, "the daemon exited early"
        ready_s = time.monotonic() - started
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        with_rest = _drain(sock)
        sock.close()
    messages += with_rest
    assert messages[0] == "READY=1", messages
    assert messages.count("WATCHDOG=1") >= 2
    assert messages[-1] == "STOPPING=1"
    assert proc.returncode == 0, stderr
    assert ready_s < 30
    assert "<6>kiosk.app: kiosk sim/gate-sim running" in stderr  # journald priority prefix, no timestamp


def _drain(sock: socket.socket) -> list[str]:
    out = []
    try:
        while True:
            out.append(sock.recv(256).decode())
    except (TimeoutError, OSError):
        return out
