"""Sign-in rate limiting, the per-session CSRF token and the hash that names a session in the store."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable, MutableMapping
from datetime import datetime, timedelta
from typing import Any

from checkpoint.entry import utc_now
from office.store.base import Store

CSRF_FIELD = "csrf"
CSRF_HEADER = "x-csrf-token"


class SignInLimiter:
    """Refuses sign-in to a client address or a user name that failed `failures` times within `window_s`,
    until the oldest of those failures is `window_s` old. The failures are kept in the store, so every web
    process on it counts them together and a restart forgets none."""

    def __init__(self, store: Store, *, failures: int = 5, window_s: float = 300.0,
                 now: Callable[[], datetime] = utc_now) -> None:
        self.store, self.failures, self.window_s, self.now = store, failures, window_s, now

    def retry_after(self, keys: list[str]) -> float:
        """Seconds until these keys may try again; 0 if they may now."""
        now = self.now()
        window = timedelta(seconds=self.window_s)
        waits = [0.0]
        for times in self.store.signin_failures(keys, since=now - window).values():
            if len(times) >= self.failures:
                waits.append((times[-self.failures] + window - now).total_seconds())
        return max(waits)

    def failed(self, keys: list[str]) -> None:
        """Count a failed sign-in against each key."""
        now = self.now()
        self.store.signin_failed(keys, at=now, forget_before=now - timedelta(seconds=self.window_s))

    def succeeded(self, keys: list[str]) -> None:
        """Forget the failures of these keys."""
        self.store.signin_succeeded(keys)


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


def session_hash(session_id: str) -> str:
    """What the store keeps of a session's secret id: its SHA-256, so a copy of the store signs nobody in."""
    return hashlib.sha256(session_id.encode()).hexdigest()
