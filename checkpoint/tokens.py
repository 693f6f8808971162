"""Signed health tokens (`HCT1.`), a contract: the payload and issuing. Short-lived, so screenshots expire."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import model_validator

from checkpoint.keys import kid_for
from checkpoint.reasons import HealthStatus
from checkpoint.signed import EnvelopeError, IdHash, SignedPayload, UnixTime, parse_payload, sign, unix_time

PREFIX = "HCT1"
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
