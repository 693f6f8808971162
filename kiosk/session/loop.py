"""The lane's thread: events from any thread go into a queue; one thread handles them and the timers."""

from __future__ import annotations

import queue
import threading
import time
from abc import ABC, abstractmethod

from kiosk.clock import Clock
from kiosk.session.events import Event

MAX_WAIT_S = 0.5


class EventLoop(ABC):
    """`submit` from any thread; `run` (the lane thread) or `drain` (the simulator) calls `step`."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.heartbeat = time.monotonic()
        self._events: queue.SimpleQueue[Event] = queue.SimpleQueue()

    @abstractmethod
    def step(self, event: Event | None = None) -> None:
        """Handle one event (or none) and then any timer that is due; never raises."""

    @abstractmethod
    def next_deadline(self) -> float | None:
        """The clock's monotonic time of the next timer, if any."""

    def submit(self, event: Event) -> None:
        """Queue an event from any thread."""
        self._events.put(event)

    def run(self, stop: threading.Event) -> None:
        """Handle events and timers until `stop` is set; `heartbeat` shows the loop turning."""
        while not stop.is_set():
            self.heartbeat = time.monotonic()
            deadline = self.next_deadline()
            wait = MAX_WAIT_S
            if deadline is not None:
                wait = min(max(deadline - self.clock.monotonic(), 0.0), MAX_WAIT_S)
            try:
                event: Event | None = self._events.get(timeout=wait)
            except queue.Empty:
                event = None
            self.step(event)

    def drain(self) -> None:
        """Handle every queued event now (the simulator's single-threaded loop)."""
        while True:
            try:
                event = self._events.get_nowait()
            except queue.Empty:
                return
            self.step(event)
