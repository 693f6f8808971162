"""Gate benchmark: code-to-gate time over many sessions, and the daemon's start-up time and memory.

Run: .venv/bin/python -m bench.gate [--sessions 500]
"""

from __future__ import annotations

import argparse
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from checkpoint.keys import KeyRing
from kiosk.actuators import Actuators
from kiosk.config import KioskConfig, embedded_config_text, load_config
from kiosk.credentials.health_token import HealthTokenVerifier
from kiosk.credentials.passes import PassVerifier
from kiosk.credentials.verify import CredentialVerifier
from kiosk.hardware import Emulation, Hardware
from kiosk.outbox import Outbox
from kiosk.recorder import OutboxRecorder
from kiosk.scanner import Debouncer, Scanner
from kiosk.session.events import CodesSeen, Motion
from kiosk.session.lane import Lane
from kiosk.sim.issuer import Issuer, render
from kiosk.sim.scenario import HealthSpec, PassSpec, Person

FRAMES = Path(__file__).resolve().parents[1] / "kiosk" / "sim" / "data" / "frames"


class WallClock:
    """Real time, but waits return at once: the bench measures work, not the sampling window."""

    def monotonic(self) -> float:
        return time.monotonic()

    def now(self) -> datetime:
        return datetime.now(UTC)

    def synced(self) -> bool:
        return True

    def sleep(self, seconds: float) -> None:
        pass


class TimedActuators(Actuators):
    """Notes when the relay was energised (just after: the LEDs and prompt are included, conservatively)."""

    opened_at: float | None = None

    def open_gate(self, *, override: str | None) -> None:
        super().open_gate(override=override)
        self.opened_at = time.perf_counter()


def config_file(directory: Path) -> Path:
    text = embedded_config_text().replace('path = "frames"', f'path = "{FRAMES}"')
    text = text.replace("~/.local/state/checkpoint-kiosk/simulate", str(directory / "state"))
    text = text.replace("relay_pulse_s = 1.5", "relay_pulse_s = 0.01\ndeny_hold_s = 0")
    path = directory / "kiosk.toml"
    path.write_text(text)
    return path


def code_to_gate(config: KioskConfig, directory: Path, sessions: int) -> list[float]:
    """Milliseconds from the frame holding the last needed code (reading in hand) to the relay energised."""
    issuer = Issuer()
    hw = Hardware(config, emulation=Emulation(realtime_camera=False))
    assert hw.emulation is not None and hw.emulation.chip is not None
    chip = hw.emulation.chip
    person = Person(at_s=0, pass_=PassSpec(cat="green", hh="9-23-301"), health=HealthSpec(status="green"))
    scanner = Scanner()
    times: list[float] = []
    with Outbox(directory / "outbox.sqlite", site=config.site.id, kiosk=config.site.kiosk) as outbox, \
            hw.relay() as relay, hw.leds() as leds, hw.thermometer() as sensor:
        actuators = TimedActuators(relay=relay, leds=leds, voice=None,
                                   relay_pulse_s=config.gate.relay_pulse_s)
        verifier = CredentialVerifier(passes=PassVerifier(KeyRing.of(issuer.office.public_key())),
                                      token=HealthTokenVerifier(KeyRing.of(issuer.health.public_key())))
        gate = Lane(config, actuators=actuators, read_thermometer=sensor.read, verifier=verifier,
                    recorder=OutboxRecorder(outbox, None), clock=WallClock())
        for index in range(sessions):
            pass_text, token = issuer.codes(index, person, datetime.now(UTC))
            health_frame, pass_frame = render([token]), render([pass_text])
            debouncer = Debouncer()
            chip.object_c = 34.4
            gate.submit(Motion())
            gate.drain()
            gate.step(None)  # the presence poll takes the reading: it is in hand before the last code
            gate.submit(CodesSeen(tuple(debouncer.feed(scanner(health_frame))), 0.0))
            gate.drain()
            actuators.opened_at = None
            started = time.perf_counter()
            codes = debouncer.feed(scanner(pass_frame))
            gate.submit(CodesSeen(tuple(codes), 0.0))
            gate.drain()
            if actuators.opened_at is None:
                raise RuntimeError(f"session {index}: the gate did not open ({gate.state})")
            times.append((actuators.opened_at - started) * 1000)
            chip.object_c = chip.ambient_c
            time.sleep(0.02)
            gate.step(None)  # cooldown over: back to idle
    return times


def daemon_start(config_path: Path, directory: Path) -> tuple[float, int]:
    """Seconds from exec to READY=1, and VmRSS in kB 5 s later."""
    notify = directory / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(notify))
    sock.settimeout(30)
    env = {**os.environ, "NOTIFY_SOCKET": str(notify)}
    started = time.monotonic()
    proc = subprocess.Popen([Path(sys.executable).parent / "kiosk", "run", "--config", str(config_path)],
                            env=env, stderr=subprocess.DEVNULL)
    try:
        while sock.recv(256) != b"READY=1":
            pass
        ready_s = time.monotonic() - started
        time.sleep(5)
        status = Path(f"/proc/{proc.pid}/status").read_text()
        rss_kb = int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS")))
    finally:
        proc.terminate()
        proc.wait(30)
        sock.close()
    return ready_s, rss_kb


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sessions", type=int, default=500)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-gate-") as tmp:
        directory = Path(tmp)
        path = config_file(directory)
        times = code_to_gate(load_config(path), directory, args.sessions)
        ready_s, rss_kb = daemon_start(path, directory)
    p95 = statistics.quantiles(times, n=20)[-1]
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    print("| measure | value | target |")
    print("|---|--:|--:|")
    print(f"| code-to-gate median ({len(times)} sessions) | {statistics.median(times):.1f} ms | |")
    print(f"| code-to-gate p95 | {p95:.1f} ms | < 50 ms |")
    print(f"| code-to-gate max | {max(times):.1f} ms | |")
    print(f"| daemon start-up to READY=1 | {ready_s:.2f} s | < 3 s |")
    print(f"| daemon RSS after warm-up | {rss_kb / 1024:.0f} MB | < 150 MB |")
    ok = p95 < 50 and ready_s < 3 and rss_kb < 150 * 1024
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
