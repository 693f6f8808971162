"""Gate relay on one GPIO pin: timed background pulses plus manual hold-open and shut."""

from __future__ import annotations

import threading
import time
from typing import Any

from gpiozero import DigitalOutputDevice, GPIOZeroError

from drivers.base import Device
from drivers.errors import DeviceError

MAX_PULSE_S = 30.0


class RelayError(DeviceError):
    """The gate relay could not be set up or driven."""


class GateRelay(Device):
    """A relay that opens the gate while energised; `active_high=False` suits active-low boards."""

    error = RelayError

    def __init__(
        self,
        pin: int | str,
        *,
        active_high: bool = True,
        initial_value: bool = False,
        pin_factory: Any = None,
    ) -> None:
        """Claim `pin` as an output, energised at once only if `initial_value` is True."""
        self.device = f"gate relay on pin {pin}"
        self._lock = threading.Lock()
        self._deadline: float | None = None
        self._held = False
        try:
            self._out: Any = DigitalOutputDevice(
                pin, active_high=active_high, initial_value=initial_value, pin_factory=pin_factory
            )
        except GPIOZeroError as err:
            raise RelayError(self.device, f"cannot claim the pin: {err}") from err
        self._closed = False

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("open" if self.is_open else "shut")
        return f"<GateRelay {self.device} {state}>"

    @property
    def active_high(self) -> bool:
        """True when the relay is energised by a high pin."""
        self._check_open()
        return bool(self._out.active_high)

    @property
    def is_open(self) -> bool:
        """True while the relay is energised (gate released)."""
        self._check_open()
        return bool(self._out.is_active)

    def pulse(self, seconds: float) -> None:
        """Energise for `seconds` in the background; extends, never cuts short, a pulse; ignored if held."""
        if not 0 < seconds <= MAX_PULSE_S:
            raise ValueError(f"pulse of {seconds} s outside 0 < s <= {MAX_PULSE_S:g}")
        with self._lock:
            self._check_open()
            if self._held:
                return
            deadline = time.monotonic() + seconds
            if self._deadline is not None:
                deadline = max(deadline, self._deadline)
            self._deadline = deadline
            # on() energises before returning (stopping any running pulse); blink() then times the
            # release. The pin stays active across the handover, so an extension has no gap.
            self._out.on()
            on_time = max(deadline - time.monotonic(), 0.0)
            self._out.blink(on_time=on_time, off_time=0, n=1, background=True)

    def hold_open(self) -> None:
        """Energise until `shut()` (manual override); cancels a timed pulse, and ignores pulses meanwhile."""
        with self._lock:
            self._check_open()
            self._deadline = None
            self._held = True
            self._out.on()

    def shut(self) -> None:
        """De-energise now, cancelling any timed pulse or hold."""
        with self._lock:
            self._check_open()
            self._deadline = None
            self._held = False
            self._out.off()

    def close(self) -> None:
        """Shut the gate (inactive level) and release the pin; safe to call again."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._deadline = None
            try:
                self._out.off()
            finally:
                self._out.close()
