"""PIR motion sensor (e.g. HC-SR501) on one GPIO pin, sampled and smoothed by gpiozero."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from gpiozero import MotionSensor

from drivers.base import Device, call_safely, claiming
from drivers.errors import DeviceError

log = logging.getLogger(__name__)

Callback = Callable[[], None]


class PirError(DeviceError):
    """The motion sensor could not be set up or read."""


class Pir(Device):
    """A PIR sensor with `motion_detected`, waits and callbacks; the first sample sets state silently."""

    error = PirError

    def __init__(
        self,
        pin: int | str,
        *,
        queue_len: int = 1,
        sample_rate: float = 10,
        threshold: float = 0.5,
        pull_up: bool = False,
        pin_factory: Any = None,
    ) -> None:
        """Sample `pin` `sample_rate` times a second; motion: mean of `queue_len` samples > `threshold`."""
        if queue_len < 1:
            raise ValueError(f"queue_len must be >= 1, got {queue_len}")
        if not sample_rate > 0:
            raise ValueError(f"sample_rate must be > 0, got {sample_rate}")
        if not 0 <= threshold <= 1:
            raise ValueError(f"threshold must be within 0..1, got {threshold}")
        self.device = f"pir on pin {pin}"
        self._when_motion: Callback | None = None
        self._when_no_motion: Callback | None = None
        with claiming(self.device, PirError):
            self._sensor: Any = MotionSensor(
                pin,
                pull_up=pull_up,
                queue_len=queue_len,
                sample_rate=sample_rate,
                threshold=threshold,
                pin_factory=pin_factory,
            )
        self._sensor.when_motion = self._on_motion
        self._sensor.when_no_motion = self._on_no_motion
        self._closed = False

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("motion" if self.motion_detected else "still")
        return f"<Pir {self.device} {state}>"

    @property
    def motion_detected(self) -> bool:
        """True while the smoothed sensor value is above the threshold."""
        self._check_open()
        return bool(self._sensor.motion_detected)

    @property
    def when_motion(self) -> Callback | None:
        """Called (from gpiozero's sampling thread) when motion starts; None to disable."""
        return self._when_motion

    @when_motion.setter
    def when_motion(self, callback: Callback | None) -> None:
        self._when_motion = callback

    @property
    def when_no_motion(self) -> Callback | None:
        """Called (from gpiozero's sampling thread) when motion stops; None to disable."""
        return self._when_no_motion

    @when_no_motion.setter
    def when_no_motion(self, callback: Callback | None) -> None:
        self._when_no_motion = callback

    def wait_for_motion(self, timeout: float | None = None) -> bool:
        """Block until motion or `timeout` seconds (None: no limit); True if motion was seen."""
        self._check_open()
        return bool(self._sensor.wait_for_motion(timeout))

    def wait_for_no_motion(self, timeout: float | None = None) -> bool:
        """Block until no motion or `timeout` seconds (None: no limit); True if it went still."""
        self._check_open()
        return bool(self._sensor.wait_for_no_motion(timeout))

    def close(self) -> None:
        """Stop sampling and release the pin; safe to call again."""
        if self._closed:
            return
        self._closed = True
        self._when_motion = self._when_no_motion = None
        self._sensor.close()

    def _on_motion(self) -> None:
        call_safely(self._when_motion, self.device, "when_motion")

    def _on_no_motion(self) -> None:
        call_safely(self._when_no_motion, self.device, "when_no_motion")

