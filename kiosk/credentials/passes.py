"""Community passes (`CKP1.`): the signed payload, issuing, and verification into a typed Verdict."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import StringConstraints, model_validator

from kiosk.credentials.keys import KeyRing, kid_for
from kiosk.credentials.signed import (
    EnvelopeError,
    IdHash,
    SafeId,
    SignedPayload,
    UnixTime,
    parse_payload,
    read_signed,
    sign,
    unix_time,
)
from kiosk.credentials.verdict import Colour, PassFacts, Reason, Verdict

log = logging.getLogger(__name__)

PREFIX = "CKP1"
COLOURS: tuple[Colour, ...] = ("green", "blue", "red", "pink")
MaskedName = Annotated[str, StringConstraints(max_length=32, pattern=r"^[^\x00-\x1f\x7f-\x9f]*$")]


class PassPayload(SignedPayload):
    """The v1 pass payload (docs/contracts.md); `hh` is null for a pass without a household."""

    pid: SafeId
    cat: Colour
    hh: SafeId | None
    name: MaskedName
    idh: IdHash
    nbf: UnixTime
    exp: UnixTime

    @model_validator(mode="after")
    def _window(self) -> PassPayload:
        if self.nbf >= self.exp:
            raise ValueError("nbf must be before exp")
        return self

    def facts(self) -> PassFacts:
        """The verdict facts of this pass."""
        return PassFacts(pid=self.pid, cat=self.cat, kid=self.kid, hh=self.hh, name=self.name, idh=self.idh,
                         nbf=self.nbf, exp=self.exp)


def mask_name(name: str) -> str:
    """The display form of a name: its first character and an asterisk for each other one (张三丰 → 张**)."""
    name = " ".join(name.split())
    if not name:
        return ""
    return name[0] + "*" * max(1, min(len(name), 32) - 1)


def _unix(value: int | datetime) -> int:
    return value if isinstance(value, int) else int(unix_time(value))


def issue_pass(key: Ed25519PrivateKey, kid: str | None, *, pid: str, cat: str, hh: str | None, name: str,
               idh: str, nbf: int | datetime, exp: int | datetime) -> str:
    """Sign a pass; `kid` None means `kid_for(key)`; `name` must already be masked. Raises ValueError."""
    payload: dict[str, Any] = {"v": 1, "kid": kid or kid_for(key.public_key()), "pid": pid, "cat": cat,
                               "hh": hh, "name": name, "idh": idh, "nbf": _unix(nbf), "exp": _unix(exp)}
    try:
        checked = parse_payload(PassPayload, payload)
    except EnvelopeError as exc:
        raise ValueError(exc.detail) from exc
    return sign(PREFIX, checked.model_dump(), key)


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
        facts = payload.facts()
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
