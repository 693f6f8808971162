"""The `token` health provider: verifies signed health tokens (`HCT1.`, format in checkpoint/tokens.py)."""

from __future__ import annotations

from datetime import datetime

from checkpoint.keys import KeyRing
from checkpoint.reasons import HealthStatus, Reason
from checkpoint.signed import read_signed, unix_time
from checkpoint.tokens import PREFIX, TokenPayload
from kiosk.credentials.verdict import HealthFacts, Verdict, travel_reasons

_COLOUR_REASON: dict[HealthStatus, tuple[Reason, ...]] = {
    "green": (),
    "yellow": (Reason.HEALTH_CODE_YELLOW,),
    "red": (Reason.HEALTH_CODE_RED,),
}


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
        facts = _facts(token)
        if token.iat > now_s + self.clock_skew_s:
            return _invalid(f"issued {token.iat - now_s:.0f} s in the future", facts)
        age = now_s - token.iat
        if age > self.max_age_s or now_s > token.exp:
            detail = (f"token issued {age:.0f} s ago (max {self.max_age_s} s)" if age > self.max_age_s
                      else f"token expired {now_s - token.exp:.0f} s ago")
            return Verdict("health_token", valid=False, status="expired",
                           reasons=(Reason.HEALTH_CODE_EXPIRED,), detail=detail, health=facts)
        travel = "" if token.trv is None else f", travel card {token.trv}{' *' if token.star else ''}"
        reasons = _COLOUR_REASON[token.st] + travel_reasons(token.trv, token.star)
        return Verdict("health_token", valid=True, status=token.st, reasons=reasons,
                       detail=f"token v{token.v} {token.st}{travel}, {age:.0f} s old", health=facts)


def _invalid(detail: str, facts: HealthFacts | None = None) -> Verdict:
    return Verdict("health_token", valid=False, status="invalid", reasons=(Reason.HEALTH_CODE_INVALID,),
                   detail=detail, health=facts or HealthFacts(scheme="token", status=None))


def _facts(token: TokenPayload) -> HealthFacts:
    return HealthFacts(scheme="token", status=token.st, idh=token.idh, issued_at=token.iat,
                       expires_at=token.exp, travel=token.trv, star=token.star, hpr=token.hpr)
