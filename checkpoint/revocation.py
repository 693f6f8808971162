"""Signed revocation lists (`CKR1.`), a contract: the payload and issuing.

The list is the retained message on `checkpoint/v1/{site}/revocations`; a kiosk keeps the newest one it
accepts (kiosk/credentials/revocation.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Annotated, Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import Field, StringConstraints

from checkpoint.keys import kid_for
from checkpoint.signed import EnvelopeError, SafeId, SignedPayload, UnixTime, parse_payload, sign, unix_time

PREFIX = "CKR1"
MAX_LIST_LEN = 1 << 20
MAX_REVOKED = 50_000
SiteName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,64}$")]


class RevocationPayload(SignedPayload):
    """The v1 revocation list payload: every revoked `pid` of one site, numbered by `serial`."""

    site: SiteName
    serial: Annotated[int, Field(ge=0, le=2**63 - 1)]
    iat: UnixTime
    revoked: Annotated[list[SafeId], Field(max_length=MAX_REVOKED)]


def issue_revocation(key: Ed25519PrivateKey, kid: str | None, *, site: str, serial: int, iat: int | datetime,
                     revoked: Iterable[str]) -> str:
    """Sign a revocation list (pids sorted, each once); `kid` None means `kid_for(key)`. Raises ValueError."""
    payload: dict[str, Any] = {
        "v": 1, "kid": kid or kid_for(key.public_key()), "site": site, "serial": serial,
        "iat": iat if isinstance(iat, int) else int(unix_time(iat)), "revoked": sorted(set(revoked)),
    }
    try:
        checked = parse_payload(RevocationPayload, payload)
    except EnvelopeError as exc:
        raise ValueError(exc.detail) from exc
    return sign(PREFIX, checked.model_dump(), key)
