"""Sign-in rate limiting and the per-session CSRF token."""

from __future__ import annotations

import secrets
import threading
import time
from collections import deque
from collections.abc import Callable, MutableMapping
from typing import Any

CSRF_FIELD = "csrf"
CSRF_HEADER = "x-csrf-token"


class SignInLimiter:
    """Refuses sign-in for `lockout_s` to a client address or a user name with `failures` failed tries
    within `window_s`. In memory: each web process counts on its own, and a restart forgets."""

    def __init__(self, *, failures: int = 5, window_s: float = 300.0, lockout_s: float = 300.0,
                 clock: Callable[[], float] = time.monotonic, max_keys: int = 10_000) -> None:
        self.failures, self.window_s, self.lockout_s = failures, window_s, lockout_s
        self.clock = clock
        self.max_keys = max_keys
        self._lock = threading.Lock()
        self._failed: dict[str, deque[float]] = {}
        self._locked_until: dict[str, float] = {}

    def retry_after(self, keys: list[str]) -> float:
        """Seconds until these keys may try again; 0 if they may now."""
        now = self.clock()
        with self._lock:
            return max([0.0, *(self._locked_until.get(key, 0.0) - now for key in keys)])

    def failed(self, keys: list[str]) -> None:
        """Count a failed sign-in against each key; lock a key that reached the limit."""
        now = self.clock()
        with self._lock:
            if len(self._failed) >= self.max_keys:
                self._forget(now)
            for key in keys:
                tries = self._failed.setdefault(key, deque())
                tries.append(now)
                while tries and tries[0] <= now - self.window_s:
                    tries.popleft()
                if len(tries) >= self.failures:
                    self._locked_until[key] = now + self.lockout_s
                    tries.clear()

    def succeeded(self, keys: list[str]) -> None:
        """Forget the failures of these keys."""
        with self._lock:
            for key in keys:
                self._failed.pop(key, None)

    def _forget(self, now: float) -> None:
        self._failed = {k: v for k, v in self._failed.items() if v and v[-1] > now - self.window_s}
        self._locked_until = {k: t for k, t in self._locked_until.items() if t > now}


def csrf_token(session: MutableMapping[str, Any]) -> str:
    """This session's CSRF token, made on first use."""
    token = session.get(CSRF_FIELD)
    if not isinstance(token, str):
        token = session[CSRF_FIELD] = secrets.token_urlsafe(32)
    return token


def csrf_ok(session: MutableMapping[str, Any], sent: object) -> bool:
    """Whether `sent` is this session's token."""
    token = session.get(CSRF_FIELD)
    return isinstance(token, str) and isinstance(sent, str) and secrets.compare_digest(token, sent)
