"""Signed commands to a kiosk (`CKC1.`), a contract: the payload and issuing.

A command is published (QoS 1, never retained) on `checkpoint/v1/{site}/{kiosk}/cmd/{cmd}` and signed with
an office operator's Ed25519 key, which the kiosk trusts by `kid`. The payload names the site, the kiosk
and the command, so it opens nothing anywhere else; `op` is the operator (who sent it is the signer, and
`op` is only what the signer vouches for); `entry` names the attention an `open` resolves; `nonce` and the
short window `iat`..`exp` make a replay detectable.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import StringConstraints, model_validator

from checkpoint.keys import kid_for
from checkpoint.signed import EnvelopeError, SignedPayload, UnixTime, parse_payload, sign, unix_time

PREFIX = "CKC1"
MAX_VALIDITY_S = 300
DEFAULT_VALIDITY_S = 60
CommandName = Literal["open", "reload", "ping"]
COMMANDS: tuple[CommandName, ...] = ("open", "reload", "ping")
_Name = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
Nonce = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{16,64}$")]
_Uuid7 = Annotated[str, StringConstraints(
    pattern=r"^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")]


class CommandPayload(SignedPayload):
    """The v1 command payload."""

    site: _Name
    kiosk: _Name
    cmd: CommandName
    op: _Name
    nonce: Nonce
    iat: UnixTime
    exp: UnixTime
    entry: _Uuid7 | None

    @model_validator(mode="after")
    def _window(self) -> CommandPayload:
        if not 0 < self.exp - self.iat <= MAX_VALIDITY_S:
            raise ValueError(f"exp must be after iat, by at most {MAX_VALIDITY_S} s")
        if self.entry is not None and self.cmd != "open":
            raise ValueError("only an open names an entry")
        return self


def issue_command(key: Ed25519PrivateKey, kid: str | None, *, site: str, kiosk: str, cmd: str, op: str,
                  now: datetime, entry: str | None = None, validity_s: int = DEFAULT_VALIDITY_S,
                  nonce: str | None = None) -> str:
    """Sign a command valid from `now` for `validity_s` (`kid` None: `kid_for(key)`); ValueError if bad."""
    iat = int(unix_time(now))
    payload: dict[str, Any] = {
        "v": 1, "kid": kid or kid_for(key.public_key()), "site": site, "kiosk": kiosk, "cmd": cmd, "op": op,
        "nonce": nonce or secrets.token_urlsafe(18), "iat": iat,
        "exp": int(unix_time(now + timedelta(seconds=validity_s))), "entry": entry,
    }
    try:
        checked = parse_payload(CommandPayload, payload)
    except EnvelopeError as exc:
        raise ValueError(exc.detail) from exc
    return sign(PREFIX, checked.model_dump(), key)
