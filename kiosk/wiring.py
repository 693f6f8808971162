"""The gate's wiring, written once: the daemon (`kiosk run`) and the simulator build the gate with these.

Each function opens one part and registers its closing on the caller's `ExitStack`, so that parts close
in the reverse order of their opening.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from typing import Any

from checkpoint.entry import Devices, OutboxState
from checkpoint.keys import KeyRing
from drivers.leds import FaultClass
from kiosk.actuators import Actuators
from kiosk.clock import Clock
from kiosk.config import KioskConfig
from kiosk.credentials.verify import CredentialVerifier
from kiosk.hardware import Hardware
from kiosk.mqtt.commands import CommandCheck, CommandHandler
from kiosk.mqtt.local_broker import LocalBroker
from kiosk.mqtt.nonces import NonceStore
from kiosk.mqtt.publisher import Publisher
from kiosk.outbox import Outbox
from kiosk.recorder import OutboxRecorder
from kiosk.session.events import Resolved, Result
from kiosk.session.lane import Lane

log = logging.getLogger(__name__)


class LaneRef:
    """The lane once it is built: the publisher starts first and asks for device states through this."""

    def __init__(self) -> None:
        self.lane: Lane | None = None

    def __call__(self) -> Lane | None:
        return self.lane


def status_provider(lane: Callable[[], Lane | None]) -> Callable[[OutboxState], Devices]:
    """The publisher's status callback: device states as the lane sees them (all ok before it exists)."""

    def provide(_outbox: OutboxState) -> Devices:
        current = lane()
        faults = current.faults if current is not None else {}
        return Devices(
            camera="fault" if FaultClass.CAMERA in faults else "ok",
            thermometer="fault" if FaultClass.THERMOMETER in faults else "ok",
        )

    return provide


def open_actuators(stack: ExitStack, hw: Hardware, config: KioskConfig) -> Actuators:
    """Relay (claimed shut first, so nothing moves during start-up), LEDs and, if enabled, the voice."""
    relay = stack.enter_context(hw.relay())
    leds = stack.enter_context(hw.leds())
    voice = stack.enter_context(hw.voice()) if config.voice.enabled else None
    if voice is not None:
        try:
            voice.prepare()
        except Exception as exc:
            log.error("voice prompts unavailable: %s", exc)
    return Actuators(relay=relay, leds=leds, voice=voice, relay_pulse_s=config.gate.relay_pulse_s)


def start_local_broker(stack: ExitStack, config: KioskConfig) -> KioskConfig:
    """With `mqtt.local_broker`, a private mosquitto on loopback; the config then names its port."""
    if not config.mqtt.local_broker:
        return config
    broker = stack.enter_context(LocalBroker(host=config.mqtt.host, port=config.mqtt.port))
    mqtt = config.mqtt.model_copy(update={"port": broker.port, "local_broker": False})
    return config.model_copy(update={"mqtt": mqtt})


def open_outbox(stack: ExitStack, config: KioskConfig) -> Outbox:
    """The durable outbox in `storage.state_dir`."""
    return stack.enter_context(Outbox.from_config(config.storage, config.site))


def command_check(stack: ExitStack, config: KioskConfig, clock: Clock) -> CommandCheck | None:
    """How signed commands are checked: the operators' keys and the used nonces; None without keys."""
    if config.commands.keys_dir is None:
        return None
    nonces = stack.enter_context(NonceStore(config.storage.state_dir / "commands.sqlite"))
    return CommandCheck(keys=KeyRing.from_dir(config.commands.keys_dir), site=config.site.id,
                        kiosk=config.site.kiosk, nonces=nonces, now=clock.now, synced=clock.synced)


def start_publisher(stack: ExitStack, config: KioskConfig, outbox: Outbox, lane: LaneRef, *,
                    commands: Mapping[str, CommandHandler] | None = None, check: CommandCheck | None = None,
                    on_revocations: Callable[[bytes], object] | None = None,
                    stop: threading.Event | None = None) -> Publisher:
    """The MQTT publisher, started: it drains the outbox and reports the lane's device states."""
    publisher = Publisher(
        config.mqtt, outbox, status=status_provider(lane), commands=commands, stop=stop,
        backlog_alert=config.storage.backlog_alert, on_revocations=on_revocations, command_check=check,
    )
    stack.callback(publisher.close)
    publisher.start()
    return publisher


def build_lane(config: KioskConfig, lane: LaneRef, *, actuators: Actuators,
               read_thermometer: Callable[[], Any], verifier: CredentialVerifier, recorder: OutboxRecorder,
               clock: Clock, on_result: Callable[[Result], None] | None = None,
               on_resolution: Callable[[Resolved], None] | None = None) -> Lane:
    """The session state machine; `lane` refers to it from now on."""
    built = Lane(config, actuators=actuators, read_thermometer=read_thermometer, verifier=verifier,
                 recorder=recorder, clock=clock, on_result=on_result, on_resolution=on_resolution)
    lane.lane = built
    return built
