"""`kiosk run`: wires the devices, the flow, the outbox and the publisher; owns start and stop."""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from datetime import datetime
from pathlib import Path
from typing import Any

from drivers.camera import Camera, CameraError
from drivers.leds import FaultClass
from kiosk import __version__
from kiosk.actuate import Actuators
from kiosk.broker import LocalBroker
from kiosk.clock import SystemClock
from kiosk.comms.mqtt import Publisher
from kiosk.config import KioskConfig, load_config
from kiosk.configtypes import SecretError
from kiosk.credentials.keys import KeyRing
from kiosk.credentials.revocation import RevocationList
from kiosk.credentials.verify import build_verifier
from kiosk.entry import Devices, EntryDraft, OutboxState
from kiosk.events import CodesSeen, DeviceState, Event, Motion, Reload, RemoteOpen, StaffAck, StaffHold
from kiosk.flow import Gate
from kiosk.hardware import Hardware
from kiosk.outbox import Outbox
from kiosk.scanner import Debouncer, Scanner
from kiosk.tomlconfig import ConfigError

log = logging.getLogger(__name__)

JOIN_TIMEOUT_S = 5.0
WATCHDOG_STALE_S = 10.0  # the gate loop must have turned within this for a watchdog ping


class OutboxRecorder:
    """The flow's recorder: entries and alerts go to the outbox first, then the publisher is nudged."""

    def __init__(self, outbox: Outbox, publisher: Publisher | None) -> None:
        self.outbox = outbox
        self.publisher = publisher
        self.last_seq: int | None = None

    def record(self, fields: dict[str, Any]) -> str:
        entry = self.outbox.append(EntryDraft.model_validate(fields))
        self.last_seq = entry.seq
        if self.publisher is not None:
            self.publisher.wake()
        return str(entry.id)

    def household_allowed_since(self, household: str, since: datetime) -> int:
        return self.outbox.count_allowed(household, since)

    def alert(self, kind: str, detail: str, entry_id: str | None = None) -> None:
        try:
            self.outbox.append_alert(kind, detail, entry_id)  # type: ignore[arg-type]
        except Exception:
            log.exception("cannot record the %s alert", kind)
            return
        if self.publisher is not None:
            self.publisher.wake()


def status_provider(gate: Callable[[], Gate | None]) -> Callable[[OutboxState], Devices]:
    """The publisher's status callback: device states as the gate sees them."""

    def provide(_outbox: OutboxState) -> Devices:
        current = gate()
        faults = current.faults if current is not None else {}
        return Devices(
            camera="fault" if FaultClass.CAMERA in faults else "ok",
            thermometer="fault" if FaultClass.THERMOMETER in faults else "ok",
        )

    return provide


def sd_notify(message: str) -> None:
    """Tell systemd about our state (READY=1, WATCHDOG=1, STOPPING=1); a no-op outside systemd."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return
    if address.startswith("@"):
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.sendto(message.encode(), address)
    except OSError as exc:
        log.warning("sd_notify %s failed: %s", message, exc)


def _camera_loop(hw: Hardware, gate: Gate, stop: threading.Event) -> None:
    """Frames → scanner → debouncer → gate, riding out camera failures."""
    scanner, debouncer = Scanner(), Debouncer()

    def fault(exc: CameraError) -> None:
        gate.submit(DeviceState(FaultClass.CAMERA, False, str(exc)))

    def recover() -> None:
        gate.submit(DeviceState(FaultClass.CAMERA, True))

    cfg = hw.config.camera
    camera = Camera(hw.camera_source, backoff_initial_s=cfg.reopen_backoff_s,
                    backoff_max_s=cfg.reopen_backoff_max_s, on_fault=fault, on_recover=recover)
    for frame in camera.frames(stop):
        started = time.perf_counter()
        codes = debouncer.feed(scanner(frame))
        if codes:
            decode_ms = (time.perf_counter() - started) * 1000
            gate.submit(CodesSeen(tuple(codes), decode_ms))


class Daemon:
    """The kiosk process: `run()` until stopped; `reload()` re-reads the config file."""

    def __init__(self, config: KioskConfig, *, config_path: Path | None = None,
                 stop: threading.Event | None = None, hardware: Hardware | None = None) -> None:
        self.config = config
        self.config_path = config_path
        self.stop = stop or threading.Event()
        self.hw = hardware or Hardware(config)
        self.gate: Gate | None = None
        self.publisher: Publisher | None = None
        self.revocations: RevocationList | None = None

    def reload(self, by: str) -> bool:
        """Apply a changed policy and credential settings without touching the devices; False if refused."""
        gate = self.gate
        if self.config_path is None or gate is None:
            log.warning("reload by %s ignored: no config file or not running", by)
            return False
        try:
            new = load_config(self.config_path)
        except ConfigError as exc:
            log.error("reload by %s refused: %s", by, "; ".join(exc.problems))
            return False
        live = self.config
        fixed = [name for name in _NEEDS_RESTART if getattr(new, name) != getattr(live, name)]
        if fixed:
            log.warning("reload by %s: %s changed; restart the service to apply that", by, ", ".join(fixed))
        merged = new.model_copy(update={name: getattr(live, name) for name in _NEEDS_RESTART})
        try:
            verifier = build_verifier(merged, revocations=self.revocations)
        except (OSError, SecretError) as exc:
            log.error("reload by %s refused: %s", by, exc)
            return False
        gate.submit(Reload(merged, verifier))
        log.info("reload by %s: policy and credentials applied", by)
        return True

    def run(self) -> int:
        """The daemon: returns when SIGTERM/SIGINT (or `stop`) asks it to."""
        stop, hw = self.stop, self.hw
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGTERM, signal.SIGINT):
                signal.signal(signum, lambda *_: stop.set())
            signal.signal(signal.SIGHUP, lambda *_: self._reload_async("SIGHUP"))
        with ExitStack() as stack:
            relay = stack.enter_context(hw.relay())  # claimed shut first, so nothing moves during start-up
            config = self.config
            if config.mqtt.local_broker:
                broker = stack.enter_context(LocalBroker(host=config.mqtt.host, port=config.mqtt.port))
                mqtt = config.mqtt.model_copy(update={"port": broker.port, "local_broker": False})
                config = self.config = config.model_copy(update={"mqtt": mqtt})
            leds = stack.enter_context(hw.leds())
            voice = stack.enter_context(hw.voice()) if config.voice.enabled else None
            if voice is not None:
                try:
                    voice.prepare()
                except Exception as exc:
                    log.error("voice prompts unavailable: %s", exc)
            sensor = stack.enter_context(hw.thermometer())
            outbox = stack.enter_context(Outbox.from_config(config.storage, config.site))
            if config.passes.keys_dir is not None:
                self.revocations = RevocationList(
                    KeyRing.from_dir(config.passes.keys_dir), site=config.site.id,
                    path=config.storage.state_dir / "revocations.txt",
                )
            verifier = build_verifier(config, revocations=self.revocations)
            clock = SystemClock(anchor_file=config.storage.state_dir / "trusted-time", stop=stop)
            commands: dict[str, Callable[[dict[str, Any]], None]] = {
                "open": lambda cmd: self._submit(RemoteOpen(str(cmd.get("by", "?")))),
                "ping": lambda cmd: self.publisher.publish_status() if self.publisher else None,
                "reload": lambda cmd: self._reload_async(f"cmd/reload from {cmd.get('by', '?')}"),
            }
            revocations = self.revocations
            publisher = self.publisher = Publisher(
                config.mqtt, outbox, status=status_provider(lambda: self.gate), commands=commands, stop=stop,
                backlog_alert=config.storage.backlog_alert,
                on_revocations=revocations.offer if revocations is not None else None,
                # Without a trusted clock, a command's age cannot be judged: accept it rather than drop all.
                command_max_age_s=60.0 if clock.synced() else None,
            )
            stack.callback(publisher.close)
            gate = self.gate = Gate(
                config, actuators=Actuators(relay=relay, leds=leds, voice=voice,
                                            relay_pulse_s=config.gate.relay_pulse_s),
                read_thermometer=sensor.read, verifier=verifier, recorder=OutboxRecorder(outbox, publisher),
                clock=clock,
            )
            stack.callback(lambda: gate.verifier.close())
            pir, button = hw.pir(), hw.button()
            if pir is not None:
                stack.enter_context(pir).when_motion = lambda: gate.submit(Motion())
            if button is not None:
                stack.enter_context(button)
                button.when_hold_open = lambda: gate.submit(StaffHold())
                button.when_acknowledge = lambda: gate.submit(StaffAck())
            publisher.start()
            threads = [
                threading.Thread(target=gate.run, args=(stop,), name="gate"),
                threading.Thread(target=_camera_loop, args=(hw, gate, stop), name="camera"),
            ]
            for thread in threads:
                thread.start()
            sd_notify("READY=1")
            log.info("kiosk %s/%s running (checkpoint-kiosk %s)", config.site.id, config.site.kiosk,
                     __version__)
            self._supervise(gate, publisher, threads)
            sd_notify("STOPPING=1")
            for thread in threads:
                thread.join(JOIN_TIMEOUT_S)
                if thread.is_alive():
                    log.warning("thread %s did not stop within %g s", thread.name, JOIN_TIMEOUT_S)
            relay.shut()
        return 0

    def _reload_async(self, by: str) -> None:
        """Reload off the caller's thread (a signal handler or the MQTT loop must not block)."""
        threading.Thread(target=self.reload, args=(by,), name="reload", daemon=True).start()

    def _submit(self, event: Event) -> None:
        if self.gate is not None:
            self.gate.submit(event)

    def _supervise(self, gate: Gate, publisher: Publisher, threads: list[threading.Thread]) -> None:
        """Ping the watchdog while the gate loop turns; show the broker's state on the LEDs."""
        broker_ok: bool | None = None
        while not self.stop.wait(1.0):
            if all(t.is_alive() for t in threads) and time.monotonic() - gate.heartbeat < WATCHDOG_STALE_S:
                sd_notify("WATCHDOG=1")  # only while the gate loop is alive
            if publisher.connected != broker_ok:
                broker_ok = publisher.connected
                gate.submit(DeviceState(FaultClass.BROKER, broker_ok, "" if broker_ok else "not connected"))


# Sections whose change needs the devices reopened: a reload keeps the running values.
_NEEDS_RESTART = (
    "hardware", "site", "camera", "thermometer", "gate", "leds", "pir", "button", "voice", "mqtt", "storage",
)


def run(config: KioskConfig, *, config_path: Path | None = None, stop: threading.Event | None = None,
        hardware: Hardware | None = None) -> int:
    """Run the daemon until it is stopped."""
    return Daemon(config, config_path=config_path, stop=stop, hardware=hardware).run()
