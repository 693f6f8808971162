"""The compact signed envelope shared by passes, health tokens and revocation lists.

Format (a contract): ``<PREFIX>.<b64u(payload)>.<b64u(signature)>`` where the payload is a UTF-8 JSON object
that names its signing key in ``kid`` and the signature is Ed25519 over the exact payload bytes.

Decisions:
- base64url is strict: only ``[A-Za-z0-9_-]``, no ``=`` padding, no whitespace and the canonical encoding
  only (non-zero trailing bits are refused), so one payload has exactly one text.
- The whole text is capped (``MAX_QR_LEN`` for what arrives in a QR code) before any decoding.
- To find ``kid`` the payload JSON is parsed first (bounded by the cap; duplicate keys, NaN and Infinity
  are refused), then the signature is checked over the exact bytes; nothing else in the payload is looked
  at before the signature verifies.
- ``sign`` writes canonical JSON: sorted keys, compact separators, UTF-8 (not ``\\u`` escapes, which would
  make QR codes of Chinese names larger). Verification does not require canonical JSON.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
from datetime import datetime
from typing import Annotated, Any, ClassVar, TypeVar

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from checkpoint.keys import KID_PATTERN, KeyRing

MAX_QR_LEN = 2048
MAX_UNIX = 253_402_300_799  # 9999-12-31T23:59:59Z, the last second datetime can hold
SIGNATURE_LEN = 64
_PREFIX = re.compile(r"[A-Z][A-Z0-9]{1,7}")
_B64U = re.compile(r"[A-Za-z0-9_-]+")
_KID = re.compile(KID_PATTERN)

log = logging.getLogger(__name__)


class EnvelopeError(ValueError):
    """A text that is not a well-formed, genuinely signed envelope; `detail` says why (for logs)."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class UnknownKeyError(EnvelopeError):
    """A well-formed envelope signed with a `kid` the key ring does not hold."""


class SignatureError(EnvelopeError):
    """A well-formed envelope whose signature does not verify: a forgery or a tampered payload."""


def b64u_encode(data: bytes) -> str:
    """base64url without padding."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64u_decode(text: str) -> bytes:
    """Strict base64url without padding; raises ValueError on anything but the canonical encoding."""
    if not _B64U.fullmatch(text) or len(text) % 4 == 1:
        raise ValueError("not base64url")
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except binascii.Error as exc:
        raise ValueError("not base64url") from exc
    if b64u_encode(data) != text:
        raise ValueError("not canonical base64url")
    return data


def canonical_json(payload: dict[str, Any]) -> bytes:
    """Sorted keys, compact separators, UTF-8; NaN and Infinity refused."""
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")


def sign(prefix: str, payload: dict[str, Any], key: Ed25519PrivateKey) -> str:
    """Sign `payload` (which must carry its `kid`) into an envelope text."""
    if not _PREFIX.fullmatch(prefix):
        raise ValueError(f"bad envelope prefix {prefix!r}")
    if not isinstance(payload.get("kid"), str) or not _KID.fullmatch(payload["kid"]):
        raise ValueError("payload needs a 'kid' of 1-32 letters, digits, '_' or '-'")
    data = canonical_json(payload)
    return f"{prefix}.{b64u_encode(data)}.{b64u_encode(key.sign(data))}"


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in pairs:
        if name in out:
            raise ValueError(f"duplicate key {name!r}")
        out[name] = value
    return out


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _parse(data: bytes) -> dict[str, Any]:
    try:
        obj = json.loads(data.decode("utf-8"), object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except (ValueError, RecursionError) as exc:
        raise EnvelopeError("payload is not JSON") from exc
    if not isinstance(obj, dict):
        raise EnvelopeError("payload is not a JSON object")
    return obj


def open_envelope(text: str, prefix: str, keys: KeyRing, *, max_len: int = MAX_QR_LEN) -> dict[str, Any]:
    """Check an envelope's form and signature and return its payload object; raises EnvelopeError."""
    if not isinstance(text, str):
        raise EnvelopeError("not text")
    if len(text) > max_len:
        raise EnvelopeError(f"longer than {max_len} characters")
    parts = text.split(".")
    if parts[0] != prefix:
        raise EnvelopeError(f"not a {prefix} envelope")
    if len(parts) != 3:
        raise EnvelopeError(f"{len(parts)} dot-separated parts, expected 3")
    try:
        data = b64u_decode(parts[1])
        signature = b64u_decode(parts[2])
    except ValueError as exc:
        raise EnvelopeError(str(exc)) from exc
    payload = _parse(data)
    kid = payload.get("kid")
    if not isinstance(kid, str) or not _KID.fullmatch(kid):
        raise EnvelopeError("payload has no valid 'kid'")
    public = keys.get(kid)
    if public is None:
        raise UnknownKeyError(f"unknown kid {kid!r}")
    if len(signature) != SIGNATURE_LEN:
        raise SignatureError("bad signature length")
    try:
        public.verify(signature, data)
    except InvalidSignature as exc:
        raise SignatureError(f"bad signature (kid {kid!r})") from exc
    return payload


Kid = Annotated[str, StringConstraints(pattern=f"^{KID_PATTERN}$")]
UnixTime = Annotated[int, Field(ge=0, le=MAX_UNIX)]
IdHash = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
SafeId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$")]
PLATFORM_REF_PATTERN = r"^[A-Za-z0-9_-]{8,128}$"
# The health platform's own person reference (its keyed hash of the ID number), opaque to us.
PlatformRef = Annotated[str, StringConstraints(pattern=PLATFORM_REF_PATTERN)]


class SignedPayload(BaseModel):
    """Base of the v1 payloads: strict types, every field required, unknown fields refused.

    Unknown fields are refused rather than ignored because a field a kiosk does not understand may narrow
    what a credential allows; a format that adds fields bumps `v` (and kiosks learn it before offices
    issue it).
    """

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)
    VERSIONS: ClassVar[frozenset[int]] = frozenset({1})

    v: int
    kid: Kid


P = TypeVar("P", bound=SignedPayload)


def parse_payload(model: type[P], payload: dict[str, Any]) -> P:
    """Validate a verified payload against its model (any of its `VERSIONS`); raises EnvelopeError."""
    version = payload.get("v")
    if type(version) is not int or version not in model.VERSIONS:
        raise EnvelopeError(f"unsupported version v={version!r}"[:80])
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        error = exc.errors(include_url=False, include_input=False)[0]
        where = ".".join(str(part) for part in error["loc"]) or "payload"
        raise EnvelopeError(f"{where}: {error['msg']}") from exc


def read_signed(model: type[P], text: str, prefix: str, keys: KeyRing) -> P | str:
    """The verified, validated payload, or the reason it is not one; never raises on the text."""
    try:
        return parse_payload(model, open_envelope(text, prefix, keys))
    except EnvelopeError as exc:
        return exc.detail
    except Exception as exc:  # the kiosk must keep running whatever a QR code holds
        log.exception("%s verification failed unexpectedly", prefix)
        return f"internal error: {type(exc).__name__}"


def unix_time(now: datetime) -> float:
    """Unix seconds of an aware datetime; a naive one is a programming error."""
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be a timezone-aware datetime")
    return now.timestamp()
