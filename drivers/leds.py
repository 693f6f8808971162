"""Green, red and amber status LEDs driven through named patterns defined as data."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from enum import StrEnum
from itertools import cycle
from typing import Any

from gpiozero import LEDBoard

from drivers.base import Device, claiming
from drivers.errors import DeviceError

LIT, DARK = "#", "."
_COLOURS = ("green", "red", "amber")


class LedError(DeviceError):
    """The status LEDs could not be set up or driven."""


class FaultClass(StrEnum):
    """What failed; each class has its own amber blink code."""

    THERMOMETER = "thermometer"
    CAMERA = "camera"
    BROKER = "broker"
    GATE = "gate"


# Amber flashes per fault code, then a pause: staff count the flashes.
FAULT_FLASHES: dict[FaultClass, int] = {
    FaultClass.THERMOMETER: 1,
    FaultClass.CAMERA: 2,
    FaultClass.BROKER: 3,
    FaultClass.GATE: 4,
}


@dataclass(frozen=True, slots=True)
class Pattern:
    """Per-LED tracks, one character per step ('#' lit, '.' dark); a one-step track holds steady."""

    green: str = DARK
    red: str = DARK
    amber: str = DARK

    def __post_init__(self) -> None:
        tracks = self.tracks()
        length = max(len(track) for track in tracks)
        for colour, track in zip(_COLOURS, tracks, strict=True):
            if not track or set(track) - {LIT, DARK}:
                raise ValueError(f"{colour} track {track!r} must be non-empty '{LIT}'/'{DARK}' steps")
            if len(track) not in (1, length):
                raise ValueError(f"{colour} track has {len(track)} steps; expected 1 or {length}")

    def tracks(self) -> tuple[str, str, str]:
        """The green, red and amber tracks."""
        return self.green, self.red, self.amber

    def steps(self) -> list[tuple[bool, bool, bool]]:
        """(green, red, amber) for each step of one cycle."""
        tracks = self.tracks()
        length = max(len(track) for track in tracks)
        full = [track * length if len(track) == 1 else track for track in tracks]
        return [(g == LIT, r == LIT, a == LIT) for g, r, a in zip(*full, strict=True)]


def blink_code(flashes: int) -> str:
    """Amber track for a fault code: `flashes` flashes of 3 steps lit, 3 dark, then a 12-step pause."""
    return (LIT * 3 + DARK * 3) * flashes + DARK * 12


def fault_pattern(kind: FaultClass) -> str:
    """The pattern name for a fault class, e.g. 'fault:camera'."""
    return f"fault:{FaultClass(kind).value}"


# Timings assume the default step of 0.1 s.
PATTERNS: dict[str, Pattern] = {
    "off": Pattern(),
    "idle": Pattern(green=LIT * 2 + DARK * 18),  # 0.2 s green flash every 2 s
    "allow": Pattern(green=LIT),
    "deny": Pattern(red=LIT),
    "attention": Pattern(amber=LIT * 5 + DARK * 5),  # 1 Hz amber blink
    **{fault_pattern(kind): Pattern(amber=blink_code(n)) for kind, n in FAULT_FLASHES.items()},
}


class StatusLeds(Device):
    """Three LEDs showing one named pattern at a time; switching stops the old one first."""

    error = LedError

    def __init__(
        self,
        *,
        green: int | str,
        red: int | str,
        amber: int | str,
        active_high: bool = True,
        step_s: float = 0.1,
        pin_factory: Any = None,
    ) -> None:
        """Claim the three pins as outputs, all dark; `step_s` is the length of one pattern step."""
        if not step_s > 0:
            raise ValueError(f"step_s must be > 0, got {step_s}")
        self.device = f"status leds on pins green={green} red={red} amber={amber}"
        self._step_s = step_s
        self._lock = threading.Lock()
        self._pattern = "off"
        with claiming(self.device, LedError, "the pins"):
            self._board: Any = LEDBoard(
                green=green,
                red=red,
                amber=amber,
                active_high=active_high,
                initial_value=False,
                pwm=False,
                _order=_COLOURS,
                pin_factory=pin_factory,
            )
        self._closed = False

    def __repr__(self) -> str:
        return f"<StatusLeds {self.device} {'closed' if self._closed else self._pattern}>"

    @property
    def pattern(self) -> str:
        """Name of the pattern showing now (a key of `PATTERNS`)."""
        return self._pattern

    @property
    def step_s(self) -> float:
        """Length of one pattern step in seconds."""
        return self._step_s

    def show(self, name: str) -> None:
        """Switch to the pattern `name`; showing the current pattern again leaves it running."""
        try:
            pattern = PATTERNS[name]
        except KeyError:
            raise ValueError(f"unknown LED pattern {name!r}; known: {sorted(PATTERNS)}") from None
        with self._lock:
            self._check_open()
            if name == self._pattern:
                return
            self._board.source = None  # stops and joins the previous pattern's thread
            steps = pattern.steps()
            if len(steps) == 1:
                self._board.value = steps[0]
            else:
                # Every step sets all three LEDs, so nothing from the previous pattern lingers.
                self._board.source_delay = self._step_s
                self._board.source = cycle(steps)
            self._pattern = name

    def idle(self) -> None:
        """Slow green heartbeat: waiting for the next person."""
        self.show("idle")

    def allow(self) -> None:
        """Solid green: pass."""
        self.show("allow")

    def deny(self) -> None:
        """Solid red: no entry."""
        self.show("deny")

    def attention(self) -> None:
        """Amber blink: staff needed."""
        self.show("attention")

    def fault(self, kind: FaultClass) -> None:
        """Amber blink code for `kind` (1-4 flashes, then a pause); green and red dark."""
        self.show(fault_pattern(kind))

    def off(self) -> None:
        """All LEDs dark."""
        self.show("off")

    def close(self) -> None:
        """Stop the pattern, turn every LED off and release the pins; safe to call again."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._pattern = "off"
            try:
                self._board.source = None
                self._board.off()
            finally:
                self._board.close()
