"""Community passes (`CKP1.`), a contract: the signed payload, issuing, and the display form of a name."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import StringConstraints, model_validator

from checkpoint.keys import kid_for
from checkpoint.reasons import Colour
from checkpoint.signed import (
    EnvelopeError,
    IdHash,
    PlatformRef,
    SafeId,
    SignedPayload,
    UnixTime,
    parse_payload,
    sign,
    unix_time,
)

PREFIX = "CKP1"
MaskedName = Annotated[str, StringConstraints(max_length=32, pattern=r"^[^\x00-\x1f\x7f-\x9f]*$")]


class PassPayload(SignedPayload):
    """The pass payload (docs/contracts.md); `hh` is null for a pass without a household.

    v2 adds `hpr`, the health platform's reference for the holder, which binds health codes to the pass;
    v1 has no `hpr` field at all.
    """

    VERSIONS = frozenset({1, 2})

    pid: SafeId
    cat: Colour
    hh: SafeId | None
    name: MaskedName
    idh: IdHash
    nbf: UnixTime
    exp: UnixTime
    hpr: PlatformRef | None = None

    @model_validator(mode="after")
    def _window(self) -> PassPayload:
        if self.v == 1 and "hpr" in self.model_fields_set:
            raise ValueError("v1 has no hpr")
        if self.v == 2 and self.hpr is None:
            raise ValueError("v2 needs hpr")
        if self.nbf >= self.exp:
            raise ValueError("nbf must be before exp")
        return self


def mask_name(name: str) -> str:
    """The display form of a name: its first character and an asterisk for each other one (张三丰 → 张**)."""
    name = " ".join(name.split())
    if not name:
        return ""
    return name[0] + "*" * max(1, min(len(name), 32) - 1)


def _unix(value: int | datetime) -> int:
    return value if isinstance(value, int) else int(unix_time(value))


def issue_pass(key: Ed25519PrivateKey, kid: str | None, *, pid: str, cat: str, hh: str | None, name: str,
               idh: str, nbf: int | datetime, exp: int | datetime, hpr: str | None = None) -> str:
    """Sign a pass; `kid` None means `kid_for(key)`; `name` must already be masked; with `hpr` it is v2.
    Raises ValueError."""
    payload: dict[str, Any] = {"v": 1 if hpr is None else 2, "kid": kid or kid_for(key.public_key()),
                               "pid": pid, "cat": cat, "hh": hh, "name": name, "idh": idh,
                               "nbf": _unix(nbf), "exp": _unix(exp)}
    if hpr is not None:
        payload["hpr"] = hpr
    try:
        checked = parse_payload(PassPayload, payload)
    except EnvelopeError as exc:
        raise ValueError(exc.detail) from exc
    return sign(PREFIX, checked.model_dump(exclude_unset=True), key)
