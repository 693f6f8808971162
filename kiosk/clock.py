"""Clocks for the gate: the system clock with a sync check, and a virtual clock for simulation."""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol

log = logging.getLogger(__name__)

# Wall-clock times before this cannot be real: a Pi without a battery-backed clock boots in 1970
# (or at its last fake-hwclock save). Bump with each release.
CLOCK_FLOOR = datetime(2026, 11, 1, tzinfo=UTC)
_TIME_ERROR = 5  # adjtimex(2): the clock is not synchronised
_TIMEX_SIZE = 256  # sizeof(struct timex) is 208 on 64-bit Linux; modes = 0 only reads


class Clock(Protocol):
    """What the flow needs of time: a monotonic clock, the wall clock, and a way to wait."""

    def monotonic(self) -> float: ...

    def now(self) -> datetime: ...

    def synced(self) -> bool: ...

    def sleep(self, seconds: float) -> None: ...


def kernel_says_synced() -> bool | None:
    """adjtimex(2)'s view of NTP sync; None when it cannot be asked."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        buffer = ctypes.create_string_buffer(_TIMEX_SIZE)
        state = int(libc.adjtimex(buffer))
    except (OSError, AttributeError):
        return None
    return None if state < 0 else state != _TIME_ERROR


class SystemClock:
    """The real clock; until the wall clock is trusted, `now()` is the last trusted time plus elapsed time."""

    def __init__(
        self,
        *,
        anchor_file: Path | None = None,
        stop: threading.Event | None = None,
        wall: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._wall = wall
        self._anchor_file = anchor_file
        self._stop = stop or threading.Event()
        self._anchor: tuple[datetime, float] | None = None
        self._last_saved = 0.0
        if anchor_file is not None:
            try:
                saved = datetime.fromisoformat(anchor_file.read_text().strip())
                self._anchor = (saved, time.monotonic())
            except (OSError, ValueError):
                pass

    def monotonic(self) -> float:
        return time.monotonic()

    def synced(self) -> bool:
        """True when the kernel reports NTP sync (or cannot say) and the time is past the floor."""
        return self._wall() >= CLOCK_FLOOR and kernel_says_synced() is not False

    def now(self) -> datetime:
        """The trusted wall time: the system's when synced, else the anchor plus monotonic time."""
        wall = self._wall()
        if self.synced():
            self._remember(wall)
            return wall
        if self._anchor is not None:
            saved, at = self._anchor
            return max(saved + timedelta(seconds=time.monotonic() - at), CLOCK_FLOOR)
        return max(wall, CLOCK_FLOOR)

    def sleep(self, seconds: float) -> None:
        self._stop.wait(max(seconds, 0.0))

    def _remember(self, wall: datetime) -> None:
        mono = time.monotonic()
        self._anchor = (wall, mono)
        if self._anchor_file is None or mono - self._last_saved < 60:
            return
        self._last_saved = mono
        try:
            tmp = self._anchor_file.with_suffix(".tmp")
            tmp.write_text(wall.isoformat())
            tmp.replace(self._anchor_file)
        except OSError as exc:
            log.warning("cannot save the trusted time to %s: %s", self._anchor_file, exc)


class VirtualClock:
    """Simulated time: `sleep` advances it at once (or in real time when `realtime`)."""

    def __init__(self, start: datetime, *, realtime: bool = False) -> None:
        if start.tzinfo is None:
            raise ValueError("the virtual clock needs an aware start time")
        self._start = start
        self._t = 0.0
        self._realtime = realtime
        self._lock = threading.Lock()

    def monotonic(self) -> float:
        with self._lock:
            return self._t

    def now(self) -> datetime:
        return self._start + timedelta(seconds=self.monotonic())

    def synced(self) -> bool:
        return True

    def sleep(self, seconds: float) -> None:
        self.advance_to(self.monotonic() + max(seconds, 0.0))

    def advance_to(self, t: float) -> None:
        """Move time forward to `t` seconds after the start (never backwards)."""
        with self._lock:
            step = t - self._t
            if step <= 0:
                return
        if self._realtime:
            time.sleep(step)
        with self._lock:
            self._t = max(self._t, t)
