"""What every device driver shares: context-manager use, an idempotent close, safe user callbacks, and
claiming GPIO pins (through gpiozero's pin factories) with errors that say what to check."""

from __future__ import annotations

import logging
import os
import sys
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import Any, ClassVar, Self

from gpiozero import BadPinFactory, GPIOZeroError
from gpiozero import Device as GpioDevice

from drivers.errors import DeviceError

log = logging.getLogger(__name__)

Callback = Callable[[], None]


class Device(ABC):
    """A physical device: `with` closes it, `closed` says so, and use after close raises `error`."""

    error: ClassVar[type[DeviceError]] = DeviceError
    device: str
    _closed: bool = False

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    @property
    def closed(self) -> bool:
        """True once `close()` has been called."""
        return self._closed

    @abstractmethod
    def close(self) -> None:
        """Release the device; safe to call again."""

    def _check_open(self) -> None:
        if self._closed:
            raise self.error(self.device, "device is closed")


def call_safely(callback: Callback | None, device: str, name: str) -> None:
    """Run a user callback; an exception is logged, not raised, so gpiozero's threads keep running."""
    if callback is None:
        return
    try:
        callback()
    except Exception:
        log.exception("%s: %s callback failed", device, name)


def pin_factory_or_default(pin_factory: Any) -> Any:
    """`pin_factory`, else gpiozero's default factory, made on first use as gpiozero does it."""
    if pin_factory is not None:
        return pin_factory
    GpioDevice.ensure_pin_factory()  # $GPIOZERO_PIN_FACTORY, else the first pin library that loads
    return GpioDevice.pin_factory


@contextmanager
def claiming(device: str, error: type[DeviceError], what: str = "the pin") -> Iterator[None]:
    """Turn any failure to set up GPIO inside the block into `error`, saying what to check.

    Making the pin factory can fail with anything its pin library raises (lgpio: OSError at import,
    `lgpio.error` on a busy line), not only gpiozero's own errors.
    """
    try:
        yield
    except DeviceError:
        raise
    except Exception as err:
        raise error(device, f"cannot claim {what}: {describe_gpio_error(err)}") from err


def describe_gpio_error(err: BaseException) -> str:
    """One line on why a GPIO library failed and what to check; other errors as they describe themselves."""
    text = " ".join(str(err).split()) or type(err).__name__
    if isinstance(err, OSError) and ".lgd-nfy" in text:
        return (
            f"lgpio cannot make its notification pipe (.lgd-nfy*) in {_lgpio_workdir()}: run the program "
            "from a directory it can write, or set LG_WD to one"
        )
    if type(err).__module__ == "lgpio":  # lgpio.error: its text is lgpio's error message
        reason = str(getattr(err, "value", text))
        if "gpiochip" in reason:
            return f"lgpio: {reason}: check /dev/gpiochip* exists and this user is in the gpio group"
        if "busy" in reason.lower():
            return f"lgpio: {reason}: another program holds the line (see gpioinfo)"
        return f"lgpio: {reason}"
    if isinstance(err, BadPinFactory | ImportError):
        return f"no GPIO library: {text}; check GPIOZERO_PIN_FACTORY and that lgpio is installed"
    if isinstance(err, PermissionError):
        return f"{text}: check this user is in the gpio group"
    if isinstance(err, GPIOZeroError):
        return text
    return f"{type(err).__name__}: {text}" if str(err) else text


def _lgpio_workdir() -> str:
    """Where lgpio makes its pipes: $LG_WD, else the working directory."""
    if lg_wd := os.environ.get("LG_WD"):
        return f"LG_WD={lg_wd}"
    try:
        return f"the working directory {os.getcwd()}"
    except OSError:
        return "the working directory (deleted)"


def claim_output(pin: Any, level: bool) -> None:
    """Make the gpiozero `pin` an output at `level`, passing through no other level where the library allows.

    gpiozero 2.0.1's lgpio pins inherit `Pin.output_with_state`, which claims the line at 0 and then
    writes the level: a 5-70 µs low pulse, enough to click an active-low relay. lgpio itself claims a
    line at a given level, so for its pins that call is made directly. A line that is already an
    output at `level` is left alone.
    """
    if pin.function == "output" and bool(pin.state) == level:
        return
    # A pin can only be an lgpio pin if gpiozero has imported its lgpio module: look there rather than
    # import lgpio here (its import makes a notification pipe, and fails where it cannot).
    lgpio_pins = sys.modules.get("gpiozero.pins.lgpio")
    if lgpio_pins is not None and isinstance(pin, lgpio_pins.LGPIOPin):
        lgpio_pins.lgpio.gpio_claim_output(pin.factory._handle, pin._number, int(level))
    else:
        pin.output_with_state(level)
