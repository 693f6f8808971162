"""Counting failed checks and guessed ID numbers at one kiosk: a forgery alert, and brute force slowed."""

from __future__ import annotations

from collections import deque

from checkpoint.reasons import Reason
from kiosk.credentials.verdict import Verdict

# A code that fails its check, as a forgery does; an unknown QR code (a shop's menu) is not one.
FORGERY_SIGNS = frozenset({Reason.PASS_INVALID, Reason.HEALTH_CODE_INVALID})
# Decided reasons that are forgery signs by themselves: one is enough for an alert (a borrowed code).
FORGERY_OUTCOMES = frozenset({Reason.HEALTH_CODE_NOT_HOLDER})


def is_forgery_sign(verdict: Verdict) -> bool:
    """A code failing its check, or a well-formed ID number nobody registered (how guessing looks)."""
    guessed = verdict.kind == "id_number" and Reason.NO_PASS in verdict.reasons
    return guessed or bool(set(verdict.reasons) & FORGERY_SIGNS)


class ForgeryWatch:
    """Failed checks within a sliding window; `limit` of them make an alert and slow the lane down."""

    def __init__(self, *, limit: int, window_s: float) -> None:
        self.limit = limit
        self.window_s = window_s
        self._times: deque[float] = deque()

    def count(self, verdict: Verdict, now: float) -> str | None:
        """Note `verdict` seen at monotonic `now`; the alert's text when this one reaches the limit."""
        if not is_forgery_sign(verdict):
            return None
        self._times.append(now)
        while self._times and now - self._times[0] > self.window_s:
            self._times.popleft()
        if len(self._times) != self.limit:
            return None
        return (f"{len(self._times)} invalid codes or unregistered ID numbers in {self.window_s:g} s "
                f"(last: {verdict.kind} {','.join(verdict.reasons)})")

    @property
    def under_attack(self) -> bool:
        """The limit was reached within the window (as of the last count)."""
        return len(self._times) >= self.limit
