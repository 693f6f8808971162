"""`kiosk check`: open each configured device once and report one line per device."""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass

from checkpoint.configtypes import SecretError
from drivers import camera as camera_driver
from drivers.base import describe_gpio_error
from drivers.errors import DeviceError
from drivers.leds import StatusLeds
from kiosk.config import KioskConfig
from kiosk.hardware import Hardware
from kiosk.mqtt.local_broker import BrokerError, LocalBroker, probe_broker

log = logging.getLogger(__name__)


class CheckFailed(Exception):
    """A device answered, but wrongly: the message says what to check."""


@dataclass(frozen=True)
class CheckResult:
    """The outcome for one device: `line` is what `kiosk check` prints."""

    device: str
    ok: bool
    detail: str
    required: bool

    @property
    def line(self) -> str:
        if self.ok:
            return f"{self.device} {self.detail}".rstrip()
        suffix = "" if self.required else " (optional)"
        return f"{self.device} {self.detail}{suffix}"


def _check(
    device: str, required: bool, probe: Callable[[], str], fail_word: str = "failed", *, gpio: bool = False
) -> CheckResult:
    """Run `probe`; any exception becomes a failed result naming the device, never a crash.

    With `gpio`, an error the driver did not wrap (one from the pin library) says what to check.
    """
    try:
        detail = probe()
    except Exception as exc:
        log.debug("%s self-test failed", device, exc_info=True)
        plain = isinstance(exc, DeviceError | CheckFailed)
        reason = describe_gpio_error(exc) if gpio and not plain else str(exc)
        return CheckResult(device, False, f"{fail_word}: {reason}", required)
    return CheckResult(device, True, detail, required)


def _camera(hw: Hardware) -> str:
    return "ok " + camera_driver.self_test(hw.camera_source(), fps=hw.config.camera.fps)


def _thermometer(hw: Hardware) -> str:
    with hw.thermometer() as sensor:
        reading = sensor.read()
    return f"ok ambient {reading.ambient_c:.1f} °C"


def _gate(hw: Hardware) -> str:
    with hw.relay() as relay:
        if relay.is_open:
            raise CheckFailed("relay energised at start; check active_high and the relay board")
    return "ok"


def _leds(hw: Hardware) -> str:
    leds: StatusLeds
    with hw.leds() as leds:
        leds.idle()
        leds.off()
    return "ok"


def _pir(hw: Hardware) -> str:
    pir = hw.pir()
    if pir is None:
        return "disabled"
    with pir:
        return f"ok {'motion' if pir.motion_detected else 'no motion'}"


def _button(hw: Hardware) -> str:
    button = hw.button()
    if button is None:
        return "disabled"
    with button:
        if button.is_pressed:
            raise CheckFailed("reads pressed at start; check the wiring and pull_up")
    return "ok"


def _voice(hw: Hardware) -> str:
    cfg = hw.config.voice
    if not cfg.enabled:
        return "disabled"
    with hw.voice() as voice:
        voice.check_output()  # opens the audio device, as the daemon does for every prompt
        voice.prepare()
        count = len(voice.keys)
    emulated = " (emulated)" if hw.emulated else ""
    return f"ok {count} prompts ({cfg.voice}), audio out {cfg.device}{emulated}"


def _broker(hw: Hardware) -> str:
    cfg = hw.config.mqtt
    with ExitStack() as stack:
        host, port = cfg.host, cfg.port
        if cfg.local_broker:
            broker = stack.enter_context(LocalBroker(host=cfg.host, port=cfg.port))
            host, port = broker.host, broker.port
        try:
            password = cfg.password()
        except SecretError as exc:
            raise BrokerError(str(exc)) from None
        probe_broker(host, port, timeout_s=cfg.connect_timeout_s, username=cfg.username,
                     password=password, tls=cfg.tls, tls_ca=cfg.ca_file)
    return f"ok {host}:{port}" + (" (local)" if cfg.local_broker else "")


def run_self_test(config: KioskConfig, *, hardware: Hardware | None = None) -> list[CheckResult]:
    """Check every configured device in turn; a failure in one never stops the others."""
    hw = hardware if hardware is not None else Hardware(config)
    return [
        _check("camera", config.camera.required, lambda: _camera(hw)),
        _check("thermometer", config.thermometer.required, lambda: _thermometer(hw)),
        _check("gate", True, lambda: _gate(hw), gpio=True),
        _check("leds", True, lambda: _leds(hw), gpio=True),
        _check("pir", False, lambda: _pir(hw), gpio=True),
        _check("button", config.button.enabled, lambda: _button(hw), gpio=True),
        _check("voice", config.voice.required, lambda: _voice(hw)),
        _check("broker", config.mqtt.required, lambda: _broker(hw), fail_word="unreachable"),
    ]
