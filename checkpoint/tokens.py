"""Signed health tokens (`HCT1.`), a contract: the payload and issuing. Short-lived, so screenshots expire.

v1: `{v, kid, st, idh, iat, exp}`. v2 (两码合一) drops `idh`, adds the travel card (`trv`, `star`) and names
the holder by `hpr`, the platform's own person reference; `hpr` null is a token bound to nobody.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import model_validator

from checkpoint.keys import kid_for
from checkpoint.reasons import HealthStatus, TravelStatus
from checkpoint.signed import (
    EnvelopeError,
    IdHash,
    PlatformRef,
    SignedPayload,
    UnixTime,
    parse_payload,
    sign,
    unix_time,
)

PREFIX = "HCT1"
_V1_ONLY = frozenset({"idh"})
_V2_ONLY = frozenset({"trv", "star", "hpr"})


class TokenPayload(SignedPayload):
    """The health token payload, v1 or v2; each version has exactly its own fields, all present."""

    VERSIONS = frozenset({1, 2})

    st: HealthStatus
    idh: IdHash | None = None
    trv: TravelStatus | None = None
    star: bool | None = None
    hpr: PlatformRef | None = None
    iat: UnixTime
    exp: UnixTime

    @model_validator(mode="after")
    def _fields_of_version(self) -> TokenPayload:
        present = self.model_fields_set
        own, other = (_V1_ONLY, _V2_ONLY) if self.v == 1 else (_V2_ONLY, _V1_ONLY)
        if missing := sorted(own - present):
            raise ValueError(f"v{self.v} needs {', '.join(missing)}")
        if extra := sorted(other & present):
            raise ValueError(f"v{self.v} has no {', '.join(extra)}")
        if self.v == 2 and (self.trv is None or self.star is None):
            raise ValueError("v2 needs trv and star")
        if self.iat >= self.exp:
            raise ValueError("iat must be before exp")
        return self


def issue_token(key: Ed25519PrivateKey, kid: str | None, *, st: str, idh: str | None, iat: int | datetime,
                exp: int | datetime, trv: str | None = None, star: bool = False,
                hpr: str | None = None) -> str:
    """Sign a health token; `kid` None means `kid_for(key)`. With `trv` it is v2 (then `idh` must be None,
    the holder is `hpr`); without, v1 (`star` and `hpr` must be unset). Raises ValueError."""
    payload: dict[str, Any] = {
        "kid": kid or kid_for(key.public_key()), "st": st,
        "iat": iat if isinstance(iat, int) else int(unix_time(iat)),
        "exp": exp if isinstance(exp, int) else int(unix_time(exp)),
    }
    if trv is not None:
        if idh is not None:
            raise ValueError("a v2 token (with trv) names its holder by hpr, not idh")
        payload |= {"v": 2, "trv": trv, "star": star, "hpr": hpr}
    else:
        if star or hpr is not None:
            raise ValueError("star and hpr need a travel status (trv): they exist only in v2 tokens")
        payload |= {"v": 1, "idh": idh}
    try:
        checked = parse_payload(TokenPayload, payload)
    except EnvelopeError as exc:
        raise ValueError(exc.detail) from exc
    return sign(PREFIX, checked.model_dump(exclude_unset=True), key)
