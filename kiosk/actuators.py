"""What the gate does for each decision: relay, LEDs and voice together."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from functools import partial

from checkpoint.reasons import Reason
from drivers.leds import FaultClass, StatusLeds
from drivers.relay import GateRelay
from drivers.voice import Voice

log = logging.getLogger(__name__)

_FAULT_ORDER = (FaultClass.GATE, FaultClass.THERMOMETER, FaultClass.CAMERA, FaultClass.BROKER)


class Actuators:
    """Drives the relay, the status LEDs and the voice; a failing part is logged, never raised."""

    def __init__(
        self, *, relay: GateRelay, leds: StatusLeds, voice: Voice | None, relay_pulse_s: float
    ) -> None:
        self.relay = relay
        self.leds = leds
        self.voice = voice
        self.relay_pulse_s = relay_pulse_s

    def say(self, key: str) -> None:
        """Speak a prompt (returns at once)."""
        if self.voice is not None:
            try:
                self.voice.say(key)
            except Exception:
                log.exception("voice prompt %r failed", key)

    def show_idle(self, faults: Mapping[FaultClass, str], *, attention: bool = False) -> None:
        """The blink code of the most serious fault, else amber while an attention waits, else heartbeat."""
        for kind in _FAULT_ORDER:
            if kind in faults:
                self._leds(partial(self.leds.fault, kind))
                return
        self._leds(self.leds.attention if attention else self.leds.idle)

    def open_gate(self, *, override: str | None) -> None:
        """Green, relay pulse, and the allow (or override) prompt."""
        self._leds(self.leds.allow)
        self.relay.pulse(self.relay_pulse_s)
        self.say("override" if override is not None else "allow")

    def deny(self, reasons: tuple[Reason, ...]) -> None:
        """Red, gate shut, and the first reason spoken."""
        self.shut()
        self._leds(self.leds.deny)
        self.say(str(reasons[0]) if reasons else "attention")

    def attention(self, reasons: tuple[Reason, ...]) -> None:
        """Amber blink, gate shut, and the request to wait (or the reason that needs staff)."""
        self.shut()
        self._leds(self.leds.attention)
        if Reason.FEVER in reasons:
            self.say("fever")
        elif reasons:
            self.say(str(reasons[0]))
        else:
            self.say("attention")

    def shut(self) -> None:
        """De-energise the relay now."""
        try:
            self.relay.shut()
        except Exception:
            log.exception("cannot shut the relay")

    def _leds(self, show: Callable[[], None]) -> None:
        try:
            show()
        except Exception:
            log.exception("cannot drive the status LEDs")
