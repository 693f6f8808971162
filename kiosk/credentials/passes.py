"""Verifying community passes (`CKP1.`, the format in checkpoint/passes.py) into a typed Verdict."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from checkpoint.keys import KeyRing
from checkpoint.passes import PREFIX, PassPayload
from checkpoint.reasons import Reason
from checkpoint.signed import read_signed, unix_time
from kiosk.credentials.verdict import PassFacts, Verdict

log = logging.getLogger(__name__)

RevokedSource = Callable[[], frozenset[str]] | frozenset[str]


class PassVerifier:
    """Verify pass texts against the office keys, revocations and the clock; never raises on the text."""

    def __init__(self, keys: KeyRing, *, revoked: RevokedSource = frozenset(),
                 clock_skew_s: int = 60) -> None:
        self.keys = keys
        self._revoked = revoked
        self.clock_skew_s = clock_skew_s

    def revoked(self) -> frozenset[str]:
        """The revoked pass ids now."""
        return self._revoked if isinstance(self._revoked, frozenset) else self._revoked()

    def verify(self, text: str, *, now: datetime) -> Verdict:
        """A Verdict of kind "pass"; `pass_` is set whenever the signature verified."""
        now_s = unix_time(now)
        payload = read_signed(PassPayload, text, PREFIX, self.keys)
        if isinstance(payload, str):
            return _invalid(payload)
        facts = _facts(payload)
        try:
            revoked = payload.pid in self.revoked()
        except Exception:
            log.exception("revocation list unavailable")
            return _invalid("revocation list unavailable", facts)
        reasons: list[Reason] = []
        status = "valid"
        if now_s < payload.nbf - self.clock_skew_s:
            reasons.append(Reason.PASS_NOT_YET_VALID)
            status = "not_yet_valid"
        if now_s > payload.exp:
            reasons.append(Reason.PASS_EXPIRED)
            status = "expired"
        if revoked:
            reasons.append(Reason.PASS_REVOKED)
            status = "revoked"
        return Verdict("pass", valid=not reasons, status=status, reasons=tuple(reasons),
                       detail=f"pass {payload.pid} {status}", pass_=facts)


def _invalid(detail: str, facts: PassFacts | None = None) -> Verdict:
    return Verdict("pass", valid=False, status="invalid", reasons=(Reason.PASS_INVALID,), detail=detail,
                   pass_=facts)


def _facts(payload: PassPayload) -> PassFacts:
    return PassFacts(pid=payload.pid, cat=payload.cat, kid=payload.kid, hh=payload.hh, name=payload.name,
                     idh=payload.idh, nbf=payload.nbf, exp=payload.exp, hpr=payload.hpr)
