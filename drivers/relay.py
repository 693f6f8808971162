"""Gate relay on one GPIO pin: timed background pulses plus manual hold-open and shut."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from drivers.base import Device, claim_output, claiming, describe_gpio_error, pin_factory_or_default
from drivers.errors import DeviceError

log = logging.getLogger(__name__)

MAX_PULSE_S = 30.0


class RelayError(DeviceError):
    """The gate relay could not be set up or driven."""


class GateRelay(Device):
    """A relay that opens the gate while energised; `active_high=False` suits active-low boards.

    Wiring: the relay board's IN to the GPIO (default GPIO17, header pin 11), its GND to a Pi ground,
    the gate contact on COM/NO. Fit a 10 kΩ pull resistor from IN to the relay's inactive level, safe
    for 3.3 V GPIO (active-low: to 3V3, never to the board's 5 V; active-high: to GND), so the relay
    stays off while no program drives the pin.

    The pin is claimed as an output already at the inactive level, with no other level on the way
    (gpiozero's lgpio pins would claim it low first). `close()` leaves it driven at the inactive level
    for the rest of the process instead of handing it back as a floating input; after the process
    exits, only the pull resistor holds it.
    """

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
        self._closed = True  # until the pin is claimed
        self._spec = pin
        self._active_high = active_high
        self._lock = threading.Lock()
        self._deadline: float | None = None
        self._timer: threading.Timer | None = None
        self._held = False
        with claiming(self.device, RelayError):
            self._factory: Any = pin_factory_or_default(pin_factory)
            self._factory.reserve_pins(self, pin)
            try:
                self._pin: Any = self._factory.pin(pin)
                claim_output(self._pin, self._level(initial_value))
            except BaseException:
                self._factory.release_pins(self, pin)
                raise
        self._closed = False

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("open" if self.is_open else "shut")
        return f"<GateRelay {self.device} {state}>"

    @property
    def active_high(self) -> bool:
        """True when the relay is energised by a high pin."""
        self._check_open()
        return self._active_high

    @property
    def is_open(self) -> bool:
        """True while the relay is energised (gate released)."""
        self._check_open()
        return bool(self._pin.state) == self._active_high

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
            self._drive(True)  # if this fails, a running pulse keeps its release
            self._cancel_release()
            self._deadline = deadline
            self._timer = threading.Timer(max(deadline - time.monotonic(), 0.0), self._release, (deadline,))
            self._timer.daemon = True
            self._timer.start()

    def hold_open(self) -> None:
        """Energise until `shut()` (manual override); cancels a timed pulse, and ignores pulses meanwhile."""
        with self._lock:
            self._check_open()
            self._cancel_release()
            self._held = True
            self._drive(True)

    def shut(self) -> None:
        """De-energise now, cancelling any timed pulse or hold."""
        with self._lock:
            self._check_open()
            self._cancel_release()
            self._held = False
            self._drive(False)

    def close(self) -> None:
        """Shut the gate and give up the pin, leaving it driven at the inactive level; safe to call again."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._cancel_release()
            self._held = False
            try:
                self._drive(False)
            finally:
                self._factory.release_pins(self, self._spec)

    def _conflicts_with(self, other: object) -> bool:
        """gpiozero's reservation hook: the relay shares its pin with no other device."""
        return True

    def _level(self, energised: bool) -> bool:
        return energised == self._active_high

    def _drive(self, energised: bool) -> None:
        try:
            self._pin.state = self._level(energised)
        except Exception as err:
            action = "energise" if energised else "de-energise"
            raise RelayError(self.device, f"cannot {action}: {describe_gpio_error(err)}") from err

    def _cancel_release(self) -> None:
        self._deadline = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _release(self, deadline: float) -> None:
        """End of a pulse: de-energise, unless the pulse was extended, cancelled or the relay closed."""
        with self._lock:
            if self._closed or self._deadline != deadline:
                return
            self._deadline = None
            self._timer = None
            try:
                self._drive(False)
            except RelayError:
                log.exception("%s: cannot end the pulse", self.device)
