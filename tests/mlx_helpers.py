"""Shared by the MLX90614 tests: a clock that moves only when the driver sleeps."""

from __future__ import annotations


class FakeTime:
    """The driver's `sleep` and the emulator's `clock` in one: sleeping advances `now` at once."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def monotonic(self) -> float:
        return self.now
