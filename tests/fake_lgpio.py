"""A recording stand-in for the `lgpio` module, to run gpiozero's real LGPIOFactory without a Pi.

It follows lgpio 0.2's Python API (gpiochip_open, gpio_claim_input(handle, gpio, lFlags=0),
gpio_claim_output(handle, gpio, level=0, lFlags=0), gpio_write, gpio_read, gpio_free, gpio_get_mode,
gpiochip_close, `lgpio.error`) and models each line's physical level: a claimed output drives its
level; an input or a freed line reads its external pull resistor (None: nothing holds it, it floats).
"""

from __future__ import annotations

import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SET_ACTIVE_LOW = 4
SET_OPEN_DRAIN = 8
SET_OPEN_SOURCE = 16
SET_PULL_UP = 32
SET_PULL_DOWN = 64
SET_PULL_NONE = 128
RISING_EDGE = 1
FALLING_EDGE = 2
BOTH_EDGES = 3

_GPIO_IS_OUTPUT = 2
_GPIO_IS_INPUT = 65536
PI4_REVISION = 0xC03112  # Raspberry Pi 4B 4 GB; GPIO17 is header pin 11 on every 40-pin Pi


class LgpioError(Exception):
    """lgpio's own exception (`lgpio.error`): its str() is the repr of lgpio's error text."""

    def __init__(self, value: str) -> None:
        self.value = value
        super().__init__(value)

    def __str__(self) -> str:
        return repr(self.value)


LgpioError.__module__ = "lgpio"  # as the real class reports itself
LgpioError.__qualname__ = LgpioError.__name__ = "error"


@dataclass(frozen=True)
class Sample:
    """The line after one call: what was called, whether it is an output, and the level on the wire."""

    call: str
    output: bool
    level: int | None


@dataclass
class Line:
    pull: int | None = None
    claimed: str | None = None  # None, "input" or "output"
    driven: int = 0
    history: list[Sample] = field(default_factory=list)

    @property
    def level(self) -> int | None:
        return self.driven if self.claimed == "output" else self.pull


class FakeLgpio(types.ModuleType):
    """Install as sys.modules["lgpio"] before gpiozero.pins.lgpio is imported."""

    error = LgpioError
    SET_ACTIVE_LOW = SET_ACTIVE_LOW
    SET_OPEN_DRAIN = SET_OPEN_DRAIN
    SET_OPEN_SOURCE = SET_OPEN_SOURCE
    SET_PULL_UP = SET_PULL_UP
    SET_PULL_DOWN = SET_PULL_DOWN
    SET_PULL_NONE = SET_PULL_NONE
    RISING_EDGE = RISING_EDGE
    FALLING_EDGE = FALLING_EDGE
    BOTH_EDGES = BOTH_EDGES

    def __init__(self) -> None:
        super().__init__("lgpio")
        self.calls: list[tuple[object, ...]] = []
        self.lines: dict[int, Line] = {}
        self.busy: set[int] = set()  # lines another process holds: claiming them fails with "GPIO busy"
        self.open_handles: set[int] = set()

    def line(self, gpio: int) -> Line:
        return self.lines.setdefault(gpio, Line())

    def pull(self, gpio: int, level: int | None) -> None:
        """Fit an external pull resistor to `level` (None: none fitted)."""
        self.line(gpio).pull = level

    def history(self, gpio: int) -> list[Sample]:
        return list(self.line(gpio).history)

    def _note(self, call: str, gpio: int) -> None:
        line = self.line(gpio)
        line.history.append(Sample(call, line.claimed == "output", line.level))

    def _check(self, handle: int, gpio: int) -> Line:
        if handle not in self.open_handles:
            raise LgpioError("unknown handle")
        return self.line(gpio)

    def gpiochip_open(self, gpiochip: int) -> int:
        self.calls.append(("gpiochip_open", gpiochip))
        handle = len(self.calls)
        self.open_handles.add(handle)
        return handle

    def gpiochip_close(self, handle: int) -> int:
        self.calls.append(("gpiochip_close", handle))
        self.open_handles.discard(handle)
        for gpio, line in self.lines.items():
            if line.claimed is not None:
                line.claimed = None
                self._note("gpiochip_close", gpio)
        return 0

    def gpio_claim_input(self, handle: int, gpio: int, lFlags: int = 0) -> int:
        self.calls.append(("gpio_claim_input", gpio, lFlags))
        line = self._check(handle, gpio)
        if gpio in self.busy:
            raise LgpioError("GPIO busy")
        line.claimed = "input"
        self._note("gpio_claim_input", gpio)
        return 0

    def gpio_claim_output(self, handle: int, gpio: int, level: int = 0, lFlags: int = 0) -> int:
        self.calls.append(("gpio_claim_output", gpio, level, lFlags))
        line = self._check(handle, gpio)
        if gpio in self.busy:
            raise LgpioError("GPIO busy")
        line.claimed, line.driven = "output", int(bool(level))
        self._note("gpio_claim_output", gpio)
        return 0

    def gpio_free(self, handle: int, gpio: int) -> int:
        self.calls.append(("gpio_free", gpio))
        line = self._check(handle, gpio)
        line.claimed = None
        self._note("gpio_free", gpio)
        return 0

    def gpio_write(self, handle: int, gpio: int, level: int) -> int:
        self.calls.append(("gpio_write", gpio, int(bool(level))))
        line = self._check(handle, gpio)
        if line.claimed != "output":
            raise LgpioError("GPIO not set as an output")
        line.driven = int(bool(level))
        self._note("gpio_write", gpio)
        return 0

    def gpio_read(self, handle: int, gpio: int) -> int:
        level = self._check(handle, gpio).level
        return 0 if level is None else level

    def gpio_get_mode(self, handle: int, gpio: int) -> int:
        return _GPIO_IS_OUTPUT if self._check(handle, gpio).claimed == "output" else _GPIO_IS_INPUT


def pi_factory_class(lgpio_factory: Any) -> Any:
    """gpiozero's LGPIOFactory, told it runs on a Pi 4 (it reads the revision from /proc otherwise)."""

    class PiLGPIOFactory(lgpio_factory):  # type: ignore[misc]
        def _get_revision(self) -> int:
            return PI4_REVISION

    return PiLGPIOFactory


def write_failing_lgpio(directory: Path) -> Path:
    """An `lgpio.py` that fails at import as lgpio 0.2 does when it cannot make its notification pipe.

    lgpio's import opens a notification pipe: the C library makes `.lgd-nfyN` in its working directory
    ($LG_WD, else the current one) and returns a negative handle when that fails; the Python side then
    opens '.lgd-nfy<handle>' in the current directory, which raises FileNotFoundError.
    """
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "lgpio.py"
    path.write_text(
        "_notify = -3  # what lgNotifyOpen returns: LG_BAD_PATHNAME\n"
        "_file = open(f'.lgd-nfy{_notify}', 'rb')\n"
    )
    return path
