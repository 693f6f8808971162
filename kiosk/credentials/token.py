"""Signed health tokens (`HCT1.`), the `token` health provider: short-lived, so screenshots expire."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import model_validator

from kiosk.credentials.keys import KeyRing, kid_for
from kiosk.credentials.signed import (
    EnvelopeError,
    IdHash,
    SignedPayload,
    UnixTime,
    parse_payload,
    read_signed,
    sign,
    unix_time,
)
from kiosk.credentials.verdict import HealthFacts, HealthStatus, Reason, Verdict

PREFIX = "HCT1"
STATUSES: tuple[HealthStatus, ...] = ("green", "yellow", "red")
_COLOUR_REASON: dict[HealthStatus, tuple[Reason, ...]] = {
    "green": (),
    "yellow": (Reason.HEALTH_CODE_YELLOW,),
    "red": (Reason.HEALTH_CODE_RED,),
}


class TokenPayload(SignedPayload):
    """The v1 health token payload; `idh` may be null for a token not bound to a person."""

    st: HealthStatus
    idh: IdHash | None
    iat: UnixTime
    exp: UnixTime

    @model_validator(mode="after")
    def _window(self) -> TokenPayload:
        if self.iat >= self.exp:
            raise ValueError("iat must be before exp")
        return self

    def facts(self) -> HealthFacts:
        """The verdict facts of this token."""
        return HealthFacts(scheme="token", status=self.st, idh=self.idh, issued_at=self.iat,
                           expires_at=self.exp)


def issue_token(key: Ed25519PrivateKey, kid: str | None, *, st: str, idh: str | None, iat: int | datetime,
                exp: int | datetime) -> str:
    """Sign a health token; `kid` None means `kid_for(key)`. Raises ValueError."""
    payload: dict[str, Any] = {
        "v": 1, "kid": kid or kid_for(key.public_key()), "st": st, "idh": idh,
        "iat": iat if isinstance(iat, int) else int(unix_time(iat)),
        "exp": exp if isinstance(exp, int) else int(unix_time(exp)),
    }
    try:
        checked = parse_payload(TokenPayload, payload)
    except EnvelopeError as exc:
        raise ValueError(exc.detail) from exc
    return sign(PREFIX, checked.model_dump(), key)


class HealthTokenVerifier:
    """Verify health tokens against the health authority's keys and the clock; never raises on the text."""

    def __init__(self, keys: KeyRing, *, max_age_s: int = 180, clock_skew_s: int = 30) -> None:
        self.keys = keys
        self.max_age_s = max_age_s
        self.clock_skew_s = clock_skew_s

    def verify(self, text: str, *, now: datetime) -> Verdict:
        """A Verdict of kind "health_token"; `health` holds the token's facts once its signature verified."""
        now_s = unix_time(now)
        token = read_signed(TokenPayload, text, PREFIX, self.keys)
        if isinstance(token, str):
            return _invalid(token)
        facts = token.facts()
        if token.iat > now_s + self.clock_skew_s:
            return _invalid(f"issued {token.iat - now_s:.0f} s in the future", facts)
        age = now_s - token.iat
        if age > self.max_age_s or now_s > token.exp:
            detail = (f"token issued {age:.0f} s ago (max {self.max_age_s} s)" if age > self.max_age_s
                      else f"token expired {now_s - token.exp:.0f} s ago")
            return Verdict("health_token", valid=False, status="expired",
                           reasons=(Reason.HEALTH_CODE_EXPIRED,), detail=detail, health=facts)
        return Verdict("health_token", valid=True, status=token.st, reasons=_COLOUR_REASON[token.st],
                       detail=f"token {token.st}, {age:.0f} s old", health=facts)


def _invalid(detail: str, facts: HealthFacts | None = None) -> Verdict:
    return Verdict("health_token", valid=False, status="invalid", reasons=(Reason.HEALTH_CODE_INVALID,),
                   detail=detail, health=facts or HealthFacts(scheme="token", status=None))
