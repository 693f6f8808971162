"""Staff push-button: a short press acknowledges, holding it for `hold_s` opens the gate."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from gpiozero import Button

from drivers.base import Device, call_safely, claiming
from drivers.errors import DeviceError

log = logging.getLogger(__name__)

Callback = Callable[[], None]


class ButtonError(DeviceError):
    """The staff button could not be set up or read."""


class StaffButton(Device):
    """One button, two gestures: `when_hold_open` once while held, `when_acknowledge` on a short release."""

    error = ButtonError

    def __init__(
        self,
        pin: int | str,
        *,
        hold_s: float = 2.0,
        bounce_s: float | None = None,
        pull_up: bool = True,
        pin_factory: Any = None,
    ) -> None:
        """Watch `pin` (pressed = pulled to ground when `pull_up`); a press of `hold_s` or more is a hold."""
        if not hold_s > 0:
            raise ValueError(f"hold_s must be > 0, got {hold_s}")
        if bounce_s is not None and not bounce_s > 0:
            raise ValueError(f"bounce_s must be None or > 0, got {bounce_s}")
        self.device = f"staff button on pin {pin}"
        self.when_hold_open: Callback | None = None
        self.when_acknowledge: Callback | None = None
        # _pressed/_held describe the press under way; the lock makes "hold" and "release" exclusive.
        self._lock = threading.Lock()
        self._pressed = False
        self._held = False
        with claiming(self.device, ButtonError):
            self._button: Any = Button(
                pin,
                pull_up=pull_up,
                bounce_time=bounce_s,
                hold_time=hold_s,
                hold_repeat=False,
                pin_factory=pin_factory,
            )
        self._button.when_pressed = self._on_pressed
        self._button.when_held = self._on_held
        self._button.when_released = self._on_released
        self._closed = False

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("pressed" if self.is_pressed else "released")
        return f"<StaffButton {self.device} {state}>"

    @property
    def hold_s(self) -> float:
        """Seconds a press must last to count as hold-to-open."""
        self._check_open()
        return float(self._button.hold_time)

    @property
    def is_pressed(self) -> bool:
        """True while the button is down."""
        self._check_open()
        return bool(self._button.is_pressed)

    def close(self) -> None:
        """Stop watching and release the pin; safe to call again."""
        if self._closed:
            return
        self._closed = True
        self.when_hold_open = self.when_acknowledge = None
        self._button.close()

    def _on_pressed(self) -> None:
        with self._lock:
            self._pressed, self._held = True, False

    def _on_held(self) -> None:
        with self._lock:
            # A release that won the race already counted this press as an acknowledge.
            if not self._pressed or self._held:
                return
            self._held = True
        call_safely(self.when_hold_open, self.device, "when_hold_open")

    def _on_released(self) -> None:
        with self._lock:
            short = self._pressed and not self._held
            self._pressed = self._held = False
        if short:
            call_safely(self.when_acknowledge, self.device, "when_acknowledge")

