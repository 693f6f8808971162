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

from kiosk import app, sim
from kiosk.config import embedded_config_text, load_config
from kiosk.hardware import Emulation, Hardware

BIN = Path(sys.executable).parent
FRAMES = Path(sim.__file__).parent / "data" / "frames"


def emulated_config(tmp_path: Path) -> Path:
    text = embedded_config_text().replace('path = "frames"', f'path = "{FRAMES}"')
    text = text.replace("~/.local/state/checkpoint-kiosk/simulate", str(tmp_path / "state"))
    path = tmp_path / "kiosk.toml"
    path.write_text(text)
    return path


def test_relay_never_moves_during_start_up_reload_and_shutdown(tmp_path: Path) -> None:
    path = emulated_config(tmp_path)
    config = load_config(path)
    emulation = Emulation()
    daemon = app.Daemon(config, config_path=path, hardware=Hardware(config, emulation=emulation))
    stop = daemon.stop
    thread = threading.Thread(target=daemon.run, name="daemon-under-test")
    thread.start()
    deadline = time.monotonic() + 20
    while daemon.lane is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert daemon.lane is not None
    path.write_text(path.read_text().replace("fever_threshold_c = 37.3", "fever_threshold_c = 37.5")
                    .replace("relay_pulse_s = 1.5", "relay_pulse_s = 3.0"))
    assert daemon.reload("test")
    deadline = time.monotonic() + 5
    while daemon.lane.config.policy.fever_threshold_c != 37.5 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert daemon.lane.config.policy.fever_threshold_c == 37.5
    assert daemon.lane.config.gate.relay_pulse_s == 1.5, "device settings wait for a restart"
    path.write_text(path.read_text().replace("fever_threshold_c = 37.5", "fever_threshold_c = 99"))
    assert not daemon.reload("test"), "a bad config is refused and the running one kept"
    time.sleep(1.0)
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


class EventSink:
    """Stands in for the gate: the camera loop only submits events to it."""

    def __init__(self) -> None:
        from datetime import UTC, datetime

        from kiosk.clock import VirtualClock

        self.clock = VirtualClock(datetime(2026, 11, 23, tzinfo=UTC))
        self.events: list[object] = []

    def submit(self, event: object) -> None:
        self.events.append(event)

    def wait_for(self, predicate: object, timeout_s: float = 15.0) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if any(predicate(e) for e in list(self.events)):  # type: ignore[operator]
                return True
            time.sleep(0.05)
        return False


def test_camera_unplugged_then_back_is_reported_and_recovers(tmp_path: Path) -> None:
    import shutil

    from drivers.leds import FaultClass
    from kiosk.session.events import CodesSeen, DeviceState

    frames = tmp_path / "frames"
    shutil.copytree(FRAMES, frames)
    text = emulated_config(tmp_path).read_text().replace(str(FRAMES), str(frames))
    text = text.replace("[camera]\n", "[camera]\nreopen_backoff_s = 0.1\nreopen_backoff_max_s = 0.4\n")
    (tmp_path / "kiosk.toml").write_text(text)
    config = load_config(tmp_path / "kiosk.toml")
    sink = EventSink()
    stop = threading.Event()
    thread = threading.Thread(target=app._camera_loop, args=(Hardware(config), sink, stop), name="camera")
    thread.start()
    try:
        assert sink.wait_for(lambda e: isinstance(e, CodesSeen))
        shutil.rmtree(frames)  # unplugged
        assert sink.wait_for(lambda e: e == DeviceState(FaultClass.CAMERA, False, e.detail)
                             if isinstance(e, DeviceState) else False)
        shutil.copytree(FRAMES, frames)  # plugged back in
        assert sink.wait_for(lambda e: isinstance(e, DeviceState) and e.ok)
    finally:
        stop.set()
        thread.join(10)
    assert not thread.is_alive()


def test_run_without_gpio_fails_clearly_and_shut(tmp_path: Path) -> None:
    text = emulated_config(tmp_path).read_text().replace('hardware = "emulated"', 'hardware = "real"')
    key = tmp_path / "site.key"
    key.write_bytes(b"k" * 32)
    key.chmod(0o600)
    text = text.replace('timezone = "Asia/Shanghai"', f'timezone = "Asia/Shanghai"\nhmac_key_file = "{key}"')
    (tmp_path / "kiosk.toml").write_text(text)
    env = {**os.environ, "GPIOZERO_PIN_FACTORY": "no-such-factory"}
    done = subprocess.run([BIN / "kiosk", "run", "--config", str(tmp_path / "kiosk.toml")], env=env,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 1
    assert "cannot start: gate relay on pin 17" in done.stderr
    assert "Traceback" not in done.stderr
