"""The `http` health-code provider: an online health-code platform asked within a hard deadline.

The transport that keeps every step within the deadline is kiosk/credentials/deadline_http.py.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import logging
import math
import re
import ssl
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal
from urllib.parse import urlsplit

from checkpoint.reasons import HealthStatus, Reason, TravelStatus
from checkpoint.signed import PLATFORM_REF_PATTERN
from kiosk.credentials.deadline_http import DeadlineConnection
from kiosk.credentials.verdict import HealthFacts, Verdict, travel_reasons

log = logging.getLogger(__name__)

MAX_BODY = 64 * 1024
CACHE_MAX_ENTRIES = 1024
IDLE_REUSE_S = 10.0  # older idle keep-alive connections may have been dropped silently by a NAT or proxy
MAX_TIMESTAMP = 10**11  # unix seconds; anything later is garbage

_COLOURS: dict[str, HealthStatus] = {"green": "green", "yellow": "yellow", "red": "red"}
_COLOUR_REASONS: dict[HealthStatus, tuple[Reason, ...]] = {
    "green": (),
    "yellow": (Reason.HEALTH_CODE_YELLOW,),
    "red": (Reason.HEALTH_CODE_RED,),
}
_UNKNOWN_CODE = frozenset({404, 422})
_PLATFORM_REF = re.compile(PLATFORM_REF_PATTERN)


class _Failure(Exception):
    """The platform gave no usable answer; `retryable` when another attempt might."""

    def __init__(self, detail: str, *, retryable: bool = False) -> None:
        super().__init__(detail)
        self.detail = detail
        self.retryable = retryable


@dataclass(frozen=True)
class _Answer:
    """A well-formed platform answer: a colour, or "invalid" for a code it does not know."""

    status: HealthStatus | Literal["invalid"]
    generated_at: float = 0.0
    idh: str | None = None
    travel: TravelStatus | None = None
    star: bool | None = None
    hpr: str | None = None


def _reject_constant(name: str) -> object:
    raise ValueError(f"{name} is not JSON")


def _timestamp(value: object) -> float:
    """`generated_at` as unix seconds: a number, or ISO 8601 with a time zone."""
    if isinstance(value, bool):
        raise _Failure("generated_at is not a time")
    if isinstance(value, int | float):
        if not (math.isfinite(value) and 0 <= value < MAX_TIMESTAMP):
            raise _Failure("generated_at out of range")
        return float(value)
    if isinstance(value, str) and len(value) <= 64:
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise _Failure("generated_at is not ISO 8601") from None
        if parsed.tzinfo is None:
            raise _Failure("generated_at has no time zone")
        return parsed.timestamp()
    raise _Failure("generated_at is not a time")


def _parse(data: bytes, expect_idh: str | None) -> _Answer:
    """The platform's JSON answer, checked field by field."""
    try:
        doc = json.loads(data.decode("utf-8"), parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        raise _Failure("body is not JSON") from None
    if not isinstance(doc, dict):
        raise _Failure("body is not a JSON object")
    status = doc.get("status")
    if status == "invalid":
        return _Answer("invalid")
    colour = _COLOURS.get(status) if isinstance(status, str) else None
    if colour is None:
        raise _Failure("unexpected status")
    generated_at = _timestamp(doc.get("generated_at"))
    idh = doc.get("idh")
    if idh is not None and not (isinstance(idh, str) and 0 < len(idh) <= 256):
        raise _Failure("idh is not a string")
    if not isinstance(doc.get("name_masked", ""), str | None):
        raise _Failure("name_masked is not a string")
    if expect_idh is not None:
        if idh is not None and idh != expect_idh:
            raise _Failure("answer is about another person")
        idh = expect_idh
    travel, star = _travel(doc)
    hpr = doc.get("hpr")
    if hpr is not None and not (isinstance(hpr, str) and _PLATFORM_REF.fullmatch(hpr)):
        raise _Failure("hpr is not a platform reference")
    return _Answer(colour, generated_at, idh, travel, star, hpr)


def _travel(doc: dict[str, object]) -> tuple[TravelStatus | None, bool | None]:
    """The optional travel card: `travel` a colour, `star` a bool (false when absent); neither, no card."""
    travel, star = doc.get("travel"), doc.get("star")
    if travel is None:
        if star is not None:
            raise _Failure("star without travel")
        return None, None
    colour = _COLOURS.get(travel) if isinstance(travel, str) else None
    if colour is None:
        raise _Failure("unexpected travel")
    if star is not None and not isinstance(star, bool):
        raise _Failure("star is not a boolean")
    return colour, bool(star)


def _down(detail: str) -> Verdict:
    return Verdict(
        "health_http", valid=False, status="platform_down", reasons=(Reason.PLATFORM_DOWN,), detail=detail
    )


_INVALID = Verdict(
    "health_http",
    valid=False,
    status="invalid",
    reasons=(Reason.HEALTH_CODE_INVALID,),
    detail="the platform does not know this code",
    health=HealthFacts("http", None),
)


class HttpHealthProvider:
    """Asks an online health-code platform about a scanned code or an ID hash, within `timeout_s` in all."""

    def __init__(
        self,
        url: str,
        *,
        timeout_s: float = 0.8,
        cache_s: float = 30.0,
        retries: int = 1,
        token: bytes | None = None,
        max_age_s: int = 180,
        clock_skew_s: int = 30,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("the health platform URL must be http:// or https:// with a host")
        if parts.username is not None or parts.password is not None:
            raise ValueError("the health platform URL must not carry credentials; use the token")
        if not (timeout_s > 0 and cache_s >= 0 and retries >= 0 and max_age_s > 0 and clock_skew_s >= 0):
            raise ValueError("timeout_s and max_age_s must be positive; cache_s, retries, clock_skew_s >= 0")
        self._host = parts.hostname
        self._port = parts.port or (443 if parts.scheme == "https" else 80)
        self._target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self._tls = ssl.create_default_context() if parts.scheme == "https" else None
        self._headers = {
            "Content-Type": "application/json",
            "Accept": "application/json",
            "User-Agent": "checkpoint-kiosk",
        }
        if token is not None:
            bearer = token.strip()
            if not bearer or any(not 0x21 <= b < 0x7F for b in bearer):
                raise ValueError("the health platform token must be printable ASCII without spaces")
            self._headers["Authorization"] = f"Bearer {bearer.decode('ascii')}"
        self._timeout_s = timeout_s
        self._cache_s = cache_s
        self._retries = retries
        self._max_age_s = max_age_s
        self._clock_skew_s = clock_skew_s
        self._clock = clock
        self._lock = threading.Lock()
        self._cache: OrderedDict[bytes, tuple[float, _Answer]] = OrderedDict()
        self._idle: DeadlineConnection | None = None
        self._closed = False

    def check_code(self, payload: str, *, now: datetime) -> Verdict:
        """The platform's verdict on a scanned health-code payload."""
        return self._check("code", payload, now)

    def check_idh(self, idh: str, *, now: datetime) -> Verdict:
        """The platform's verdict on the person with this keyed ID hash."""
        return self._check("idh", idh, now)

    def close(self) -> None:
        """Close the kept-alive connection; idempotent."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, None
        if idle is not None:
            idle.close()

    def __enter__(self) -> HttpHealthProvider:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _check(self, field: Literal["code", "idh"], value: str, now: datetime) -> Verdict:
        key = hashlib.sha256(f"{field}\0{value}".encode("utf-8", "surrogatepass")).digest()
        answer = self._cached(key)
        if answer is None:
            try:
                answer = self._ask(field, value)
            except _Failure as failure:
                log.warning("health platform unusable: %s", failure.detail)
                return _down(failure.detail)
            if answer.status != "invalid":
                self._remember(key, answer)
        return self._verdict(answer, now)

    def _verdict(self, answer: _Answer, now: datetime) -> Verdict:
        if answer.status == "invalid":
            return _INVALID
        health = HealthFacts("http", answer.status, idh=answer.idh, issued_at=math.floor(answer.generated_at),
                             travel=answer.travel, star=answer.star, hpr=answer.hpr)
        colour = _COLOUR_REASONS[answer.status] + travel_reasons(answer.travel, answer.star)
        age = now.timestamp() - answer.generated_at
        if age < -self._clock_skew_s:
            return _down(f"generated_at is {-age:.0f} s in the future")
        if age > self._max_age_s:
            return Verdict(
                "health_http",
                valid=False,
                status="expired",
                reasons=(Reason.HEALTH_CODE_EXPIRED, *colour),
                detail=f"generated {age:.0f} s ago (max {self._max_age_s} s)",
                health=health,
            )
        return Verdict("health_http", valid=True, status=answer.status, reasons=colour, health=health)

    def _cached(self, key: bytes) -> _Answer | None:
        with self._lock:
            entry = self._cache.get(key)
            if entry is None:
                return None
            if self._clock() >= entry[0]:
                del self._cache[key]
                return None
            self._cache.move_to_end(key)
            return entry[1]

    def _remember(self, key: bytes, answer: _Answer) -> None:
        if self._cache_s <= 0:
            return
        with self._lock:
            self._cache[key] = (self._clock() + self._cache_s, answer)
            self._cache.move_to_end(key)
            while len(self._cache) > CACHE_MAX_ENTRIES:
                self._cache.popitem(last=False)

    def _ask(self, field: Literal["code", "idh"], value: str) -> _Answer:
        status, data = self._post(json.dumps({field: value}).encode("ascii"))
        if status in _UNKNOWN_CODE:
            return _Answer("invalid")
        if not 200 <= status < 300:
            raise _Failure(f"HTTP {status}")
        return _parse(data, value if field == "idh" else None)

    def _post(self, body: bytes) -> tuple[int, bytes]:
        """POST with retries for connection errors and 5xx, all within one deadline."""
        deadline = time.monotonic() + self._timeout_s
        retries = self._retries
        while True:
            conn, reused = self._checkout(deadline)
            try:
                status, data = self._exchange(conn, body)
            except _Failure as exc:
                conn.close()
                if not exc.retryable:
                    raise
                failure = exc
            except (OSError, http.client.HTTPException, ValueError) as exc:
                conn.close()
                if isinstance(exc, TimeoutError) or time.monotonic() >= deadline:
                    raise _Failure(f"timeout after {self._timeout_s:g} s") from None
                if reused:
                    continue  # the server dropped a kept-alive connection: reconnecting costs no retry
                failure = _Failure(f"unreachable: {type(exc).__name__}: {str(exc)[:160]}")
            else:
                self._checkin(conn)
                if status < 500:
                    return status, data
                failure = _Failure(f"HTTP {status}")
            if retries <= 0 or time.monotonic() >= deadline:
                raise failure
            retries -= 1

    def _exchange(self, conn: DeadlineConnection, body: bytes) -> tuple[int, bytes]:
        conn.request("POST", self._target, body=body, headers=self._headers)
        response = conn.getresponse()
        length = response.length
        if length is not None and length > MAX_BODY:
            raise _Failure(f"body of {length} bytes is over {MAX_BODY}")
        data = response.read(MAX_BODY + 1)
        if len(data) > MAX_BODY:
            raise _Failure(f"body is over {MAX_BODY} bytes")
        if length is not None and len(data) != length:
            raise _Failure("body shorter than its Content-Length", retryable=True)
        if response.will_close or not response.isclosed():
            conn.close()
        return response.status, data

    def _checkout(self, deadline: float) -> tuple[DeadlineConnection, bool]:
        with self._lock:
            idle, self._idle = self._idle, None
        if idle is not None:
            if idle.sock is not None and time.monotonic() - idle.idle_since < IDLE_REUSE_S:
                idle.deadline = deadline
                return idle, True
            idle.close()
        conn = DeadlineConnection(self._host, self._port, self._tls)
        conn.deadline = deadline
        return conn, False

    def _checkin(self, conn: DeadlineConnection) -> None:
        if conn.sock is None:
            return
        conn.idle_since = time.monotonic()
        with self._lock:
            keep = not self._closed and self._idle is None
            if keep:
                self._idle = conn
        if not keep:
            conn.close()
