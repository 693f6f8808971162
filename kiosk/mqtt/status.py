"""Small state machines of the publisher: refusal backoff, backlog alerts and pruning."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable

from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode

from checkpoint.entry import AlertKind
from kiosk.outbox import Outbox, OutboxError

log = logging.getLogger(__name__)

AlertSink = Callable[[AlertKind, str], object]
PRUNE_BATCH = 2000


def describe_code(code: int) -> str:
    """'Not authorized (135)' for a PUBACK reason code."""
    try:
        name = ReasonCode(PacketTypes.PUBACK, identifier=code).getName()
    except Exception:
        name = "reason code"
    return f"{name} ({code})"


class Hold:
    """Backoff for one kind of message after the broker refused it: wait, then probe with one row."""

    def __init__(self, min_s: float, max_s: float) -> None:
        self._min_s = min_s
        self._max_s = max_s
        self.delay = min_s
        self.held = False
        self.retry_at = 0.0  # time.monotonic(); math.inf while a probe is out

    def may_send(self, now: float) -> bool:
        """Whether rows of this kind may be published now (held: one probe once the backoff is over)."""
        return not self.held or now >= self.retry_at

    def probing(self) -> None:
        """A probe is out: send nothing more until its PUBACK."""
        self.retry_at = math.inf

    def wait_s(self, now: float) -> float:
        """How long until the next probe may go out (1 s when there is nothing to wait for)."""
        if self.held and now < self.retry_at < math.inf:
            return self.retry_at - now
        return 1.0

    def refused(self, now: float) -> bool:
        """Record a refusal; True when it starts a new episode."""
        first = not self.held
        if first or self.retry_at == math.inf:
            self.retry_at = now + self.delay
            self.delay = min(self.delay * 2, self._max_s)
        self.held = True
        return first

    def accepted(self) -> bool:
        """Record an accepted row; True when it ends an episode."""
        was = self.held
        self.held, self.delay, self.retry_at = False, self._min_s, 0.0
        return was

    def reconnected(self) -> None:
        """A new connection: probe at once, keeping the backoff reached so far."""
        if self.held:
            self.retry_at = 0.0


class BacklogWatch:
    """Raises a fault alert when the backlog reaches `threshold` or the outbox is full; prunes it."""

    def __init__(self, outbox: Outbox, threshold: int | None, prune_interval_s: float,
                 check_interval_s: float = 5.0) -> None:
        self._outbox = outbox
        self._threshold = threshold
        self._prune_interval_s = prune_interval_s
        self._check_interval_s = check_interval_s
        self._next_prune = 0.0
        self._next_check = 0.0
        self._high = False
        self._full = False

    def check(self, alert: AlertSink) -> None:
        """Prune and look at the backlog, each at its own interval."""
        now = time.monotonic()
        try:
            if now >= self._next_prune:
                self._next_prune = now + self._prune_interval_s
                while self._outbox.prune(limit=PRUNE_BATCH) == PRUNE_BATCH:
                    time.sleep(0.01)  # short transactions: the flow's appends never wait long
            if now < self._next_check:
                return
            self._next_check = now + self._check_interval_s
            state = self._outbox.backlog()
            limit = self._threshold
            if limit is not None:
                if state.backlog >= limit and not self._high:
                    alert("fault", f"outbox backlog of {state.backlog} entries (threshold {limit}), "
                                   f"oldest {state.oldest_s or 0:.0f} s")
                self._high = state.backlog >= limit or (self._high and state.backlog > limit // 2)
            if state.full and not self._full:
                alert("fault", f"outbox full: {state.backlog + state.alerts} undelivered rows; "
                               "still recording, nothing is dropped")
            self._full = state.full
        except OutboxError as exc:
            log.error("outbox: %s", exc)
