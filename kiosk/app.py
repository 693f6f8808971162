"""`kiosk run`: the daemon. It starts the parts in named steps (kiosk/wiring.py) and stops them in reverse."""

from __future__ import annotations

import logging
import signal
import threading
import time
from contextlib import ExitStack
from pathlib import Path

from checkpoint import __version__
from checkpoint.configtypes import SecretError
from checkpoint.keys import KeyRing
from checkpoint.systemd import sd_notify
from checkpoint.tomlconfig import ConfigError
from drivers.camera import Camera, CameraError
from drivers.leds import FaultClass
from kiosk import wiring
from kiosk.clock import SystemClock
from kiosk.config import KioskConfig, load_config
from kiosk.credentials.revocation import RevocationList
from kiosk.credentials.verify import build_verifier
from kiosk.hardware import Hardware
from kiosk.mqtt.commands import CommandHandler
from kiosk.mqtt.publisher import Publisher
from kiosk.recorder import OutboxRecorder
from kiosk.scanner import Debouncer, Scanner
from kiosk.session.events import (
    CodesSeen,
    DeviceState,
    Event,
    Motion,
    Reload,
    RemoteOpen,
    StaffAck,
    StaffHold,
)
from kiosk.session.lane import Lane

log = logging.getLogger(__name__)

JOIN_TIMEOUT_S = 5.0
WATCHDOG_STALE_S = 10.0  # the lane's loop must have turned within this for a watchdog ping


def _camera_loop(hw: Hardware, lane: Lane, stop: threading.Event) -> None:
    """Frames → scanner → debouncer → lane, riding out camera failures."""
    scanner, debouncer = Scanner(), Debouncer()

    def fault(exc: CameraError) -> None:
        lane.submit(DeviceState(FaultClass.CAMERA, False, str(exc)))

    def recover() -> None:
        lane.submit(DeviceState(FaultClass.CAMERA, True))

    cfg = hw.config.camera
    camera = Camera(hw.camera_source, backoff_initial_s=cfg.reopen_backoff_s,
                    backoff_max_s=cfg.reopen_backoff_max_s, on_fault=fault, on_recover=recover)
    for frame in camera.frames(stop):
        started = time.perf_counter()
        codes = debouncer.feed(scanner(frame))
        if codes:
            decode_ms = (time.perf_counter() - started) * 1000
            lane.submit(CodesSeen(tuple(codes), decode_ms))


class Daemon:
    """The kiosk process: `run()` until stopped; `reload()` re-reads the config file."""

    def __init__(self, config: KioskConfig, *, config_path: Path | None = None,
                 stop: threading.Event | None = None, hardware: Hardware | None = None) -> None:
        self.config = config
        self.config_path = config_path
        self.stop = stop or threading.Event()
        self.hw = hardware or Hardware(config)
        self.lane: Lane | None = None
        self.publisher: Publisher | None = None
        self.revocations: RevocationList | None = None

    def reload(self, by: str) -> bool:
        """Apply a changed policy and credential settings without touching the devices; False if refused."""
        lane = self.lane
        if self.config_path is None or lane is None:
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
        lane.submit(Reload(merged, verifier))
        log.info("reload by %s: policy and credentials applied", by)
        return True

    def run(self) -> int:
        """The daemon: returns when SIGTERM/SIGINT (or `stop`) asks it to."""
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGTERM, signal.SIGINT):
                signal.signal(signum, lambda *_: self.stop.set())
            signal.signal(signal.SIGHUP, lambda *_: self._reload_async("SIGHUP"))
        with ExitStack() as stack:
            lane, publisher = self._start(stack)
            threads = self._start_threads(lane)
            sd_notify("READY=1")
            log.info("kiosk %s/%s running (checkpoint-kiosk %s)", self.config.site.id, self.config.site.kiosk,
                     __version__)
            self._supervise(lane, publisher, threads)
            sd_notify("STOPPING=1")
            self._join(threads)
            lane.act.relay.shut()
        return 0

    def _start(self, stack: ExitStack) -> tuple[Lane, Publisher]:
        """Open every part in order (each closes on `stack`, in reverse); the lane is the last."""
        hw, stop = self.hw, self.stop
        actuators = wiring.open_actuators(stack, hw, self.config)
        config = self.config = wiring.start_local_broker(stack, self.config)
        sensor = stack.enter_context(hw.thermometer())
        outbox = wiring.open_outbox(stack, config)
        revocations = self.revocations = self._revocation_list(config)
        verifier = build_verifier(config, revocations=revocations)
        clock = SystemClock(anchor_file=config.storage.state_dir / "trusted-time", stop=stop)
        ref = wiring.LaneRef()
        publisher = self.publisher = wiring.start_publisher(
            stack, config, outbox, ref, commands=self._commands(), stop=stop,
            check=wiring.command_check(stack, config, clock),
            on_revocations=revocations.offer if revocations is not None else None,
        )
        lane = self.lane = wiring.build_lane(
            config, ref, actuators=actuators, read_thermometer=sensor.read, verifier=verifier,
            recorder=OutboxRecorder(outbox, publisher), clock=clock,
        )
        stack.callback(lambda: lane.verifier.close())
        self._attach_inputs(stack, lane)
        return lane, publisher

    @staticmethod
    def _revocation_list(config: KioskConfig) -> RevocationList | None:
        if config.passes.keys_dir is None:
            return None
        return RevocationList(KeyRing.from_dir(config.passes.keys_dir), site=config.site.id,
                              path=config.storage.state_dir / "revocations.txt")

    def _commands(self) -> dict[str, CommandHandler]:
        return {
            "open": lambda cmd: self._submit(RemoteOpen(cmd.op, entry_id=cmd.entry)),
            "reload": lambda cmd: self._reload_async(f"cmd/reload by {cmd.op}"),
        }

    def _attach_inputs(self, stack: ExitStack, lane: Lane) -> None:
        """The PIR and the staff button, when configured, submit their events to the lane."""
        pir, button = self.hw.pir(), self.hw.button()
        if pir is not None:
            stack.enter_context(pir).when_motion = lambda: lane.submit(Motion())
        if button is not None:
            stack.enter_context(button)
            button.when_hold_open = lambda: lane.submit(StaffHold())
            button.when_acknowledge = lambda: lane.submit(StaffAck())

    def _start_threads(self, lane: Lane) -> list[threading.Thread]:
        threads = [
            threading.Thread(target=lane.run, args=(self.stop,), name="lane"),
            threading.Thread(target=_camera_loop, args=(self.hw, lane, self.stop), name="camera"),
        ]
        for thread in threads:
            thread.start()
        return threads

    @staticmethod
    def _join(threads: list[threading.Thread]) -> None:
        for thread in threads:
            thread.join(JOIN_TIMEOUT_S)
            if thread.is_alive():
                log.warning("thread %s did not stop within %g s", thread.name, JOIN_TIMEOUT_S)

    def _reload_async(self, by: str) -> None:
        """Reload off the caller's thread (a signal handler or the MQTT loop must not block)."""
        threading.Thread(target=self.reload, args=(by,), name="reload", daemon=True).start()

    def _submit(self, event: Event) -> None:
        if self.lane is not None:
            self.lane.submit(event)

    def _supervise(self, lane: Lane, publisher: Publisher, threads: list[threading.Thread]) -> None:
        """Ping the watchdog while the lane's loop turns; show the broker's state on the LEDs."""
        broker_ok: bool | None = None
        while not self.stop.wait(1.0):
            if all(t.is_alive() for t in threads) and time.monotonic() - lane.heartbeat < WATCHDOG_STALE_S:
                sd_notify("WATCHDOG=1")  # only while the lane's loop is alive
            if publisher.connected != broker_ok:
                broker_ok = publisher.connected
                lane.submit(DeviceState(FaultClass.BROKER, broker_ok, "" if broker_ok else "not connected"))


# Sections whose change needs the devices reopened: a reload keeps the running values.
_NEEDS_RESTART = (
    "hardware", "site", "camera", "thermometer", "gate", "leds", "pir", "button", "voice", "mqtt", "storage",
    "commands",
)


def run(config: KioskConfig, *, config_path: Path | None = None, stop: threading.Event | None = None,
        hardware: Hardware | None = None) -> int:
    """Run the daemon until it is stopped."""
    return Daemon(config, config_path=config_path, stop=stop, hardware=hardware).run()
