"""EU Digital COVID Certificate health codes: HC1 → base45 → zlib → COSE_Sign1 → CWT, checked step by step."""

from __future__ import annotations

import io
import logging
import math
import re
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final

import base45  # type: ignore[import-untyped]
import cbor2
from cryptography import x509

from checkpoint.reasons import Reason
from kiosk.credentials.dcc_trust import (
    allowed_types,
    check_signature,
    key_id,
    load_certificate,
    load_trust_dir,
)
from kiosk.credentials.verdict import HealthFacts, Verdict

__all__ = ["DccSteps", "DccVerifier", "load_certificate", "load_trust_dir", "to_verdict"]

log = logging.getLogger(__name__)

PREFIX: Final = "HC1:"
MAX_QR_CHARS: Final = 4296  # the most alphanumeric characters one QR code holds
MAX_COSE_BYTES: Final = 64 * 1024
MAX_CBOR_DEPTH: Final = 16
MAX_CBOR_NODES: Final = 10_000
CLOCK_SKEW: Final = timedelta(minutes=5)  # tolerated for `iat` only: issuers' clocks run a little ahead
CWT_TAG: Final = 61
COSE_SIGN1_TAG: Final = 18
HEADER_ALG: Final = 1
HEADER_KID: Final = 4
CLAIM_ISS: Final = 1
CLAIM_EXP: Final = 4
CLAIM_IAT: Final = 6
CLAIM_HCERT: Final = -260
TYPE_NAMES: Final = {"v": "vaccination", "t": "test", "r": "recovery"}


class _Malformed(ValueError):
    """The payload is not what the step expects; the message names the problem, never the data."""


@dataclass(frozen=True)
class DccSteps:
    """The outcome of each conformance step (None when not reached) and what was learnt on the way."""

    unprefix: bool | None = None
    base45: bool | None = None
    compression: bool | None = None
    decode: bool | None = None
    verify: bool | None = None
    expiration: bool | None = None
    key_usage: bool | None = None
    valid_json: bool | None = None
    detail: str = ""
    cert_type: str | None = None
    hcert: dict[str, Any] | None = None
    issuer: str | None = None
    issued_at: int | None = None
    expires_at: int | None = None
    expired: bool = False


@dataclass(frozen=True)
class _Cose:
    protected: bytes
    phdr: dict[Any, Any]
    uhdr: dict[Any, Any]
    payload: bytes
    signature: bytes
    claims: dict[Any, Any]
    hcert: dict[Any, Any]


def _cbor(data: bytes, what: str) -> Any:
    """One CBOR item filling all of `data`."""
    fp = io.BytesIO(data)
    try:
        value = cbor2.CBORDecoder(fp, max_depth=MAX_CBOR_DEPTH, allow_duplicate_keys=False).decode()
    except Exception as exc:  # a decoder of hostile input: any failure means malformed
        raise _Malformed(f"{what} is not valid CBOR ({type(exc).__name__})") from None
    if fp.tell() != len(data):
        raise _Malformed(f"{what} has trailing bytes after its CBOR")
    return value


def _plain(value: Any, what: str, budget: list[int], depth: int = 0) -> Any:
    """`value` as plain dicts, lists and scalars with dates as text; other tags and semantic types refused."""
    budget[0] -= 1
    if budget[0] < 0 or depth > MAX_CBOR_DEPTH:
        raise _Malformed(f"{what} is too large or too deep")
    if isinstance(value, dict | cbor2.frozendict):
        out: dict[Any, Any] = {}
        for key, item in value.items():
            if isinstance(key, bool) or not isinstance(key, str | int):
                raise _Malformed(f"{what} has a map key of type {type(key).__name__}")
            out[key] = _plain(item, what, budget, depth + 1)
        return out
    if isinstance(value, list | tuple):
        return [_plain(item, what, budget, depth + 1) for item in value]
    if value is None or isinstance(value, str | bytes | int | float):
        return value
    if isinstance(value, datetime):  # CBOR tags 0 and 1, which some issuers use for DGC timestamps
        return _rfc3339(value)
    if isinstance(value, date):  # CBOR tags 100 and 1004
        return value.isoformat()
    raise _Malformed(f"{what} holds an unsupported CBOR value ({type(value).__name__})")


def _rfc3339(moment: datetime) -> str:
    if moment.tzinfo is None or moment.utcoffset() == timedelta(0):
        return moment.replace(tzinfo=None).isoformat() + "Z"
    return moment.isoformat()


def _map(value: Any, what: str) -> dict[Any, Any]:
    if not isinstance(value, dict):
        raise _Malformed(f"{what} is not a map")
    return value


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _inflate(data: bytes) -> bytes:
    """The zlib stream in `data`, refusing output beyond MAX_COSE_BYTES."""
    inflater = zlib.decompressobj()
    try:
        out = inflater.decompress(data, MAX_COSE_BYTES + 1)
    except zlib.error:
        raise _Malformed("not a zlib stream") from None
    if len(out) > MAX_COSE_BYTES:
        raise _Malformed(f"inflates beyond {MAX_COSE_BYTES} bytes")
    if not inflater.eof:
        raise _Malformed("zlib stream is truncated")
    if inflater.unused_data:
        raise _Malformed("trailing bytes after the zlib stream")
    return out


def _parse_cose(raw: bytes) -> _Cose:
    """The COSE_Sign1 message (tagged 18, tagged 61 around 18, or untagged) and its CWT claims."""
    message = _cbor(raw, "COSE message")
    if isinstance(message, cbor2.CBORTag) and message.tag == CWT_TAG:
        message = message.value
    if isinstance(message, cbor2.CBORTag) and message.tag == COSE_SIGN1_TAG:
        message = message.value
    if isinstance(message, cbor2.CBORTag):
        raise _Malformed("COSE message has an unexpected CBOR tag")
    if not isinstance(message, list | tuple) or len(message) != 4:
        raise _Malformed("COSE message is not a COSE_Sign1 array of 4")
    protected, unprotected, payload, signature = message
    if not all(isinstance(part, bytes) for part in (protected, payload, signature)):
        raise _Malformed("COSE_Sign1 protected header, payload or signature is not a byte string")
    budget = [MAX_CBOR_NODES]
    phdr: dict[Any, Any] = {}
    if protected:
        phdr = _map(_plain(_cbor(protected, "protected header"), "protected header", budget), "header")
    uhdr = _map(_plain(unprotected, "unprotected header", budget), "unprotected header")
    claims = _map(_plain(_cbor(payload, "CWT payload"), "CWT payload", budget), "CWT claims")
    hcert = _map(_map(claims.get(CLAIM_HCERT), "hcert claim (-260)").get(1), "hcert claim entry 1")
    if CLAIM_ISS in claims and not isinstance(claims[CLAIM_ISS], str):
        raise _Malformed("iss claim is not a string")
    for claim, name in ((CLAIM_EXP, "exp"), (CLAIM_IAT, "iat")):
        if claim in claims and not _is_number(claims[claim]):
            raise _Malformed(f"{name} claim is not a number")
    return _Cose(protected, phdr, uhdr, payload, signature, claims, hcert)


def _instant(value: Any) -> datetime | None:
    """A CWT NumericDate as an aware datetime; None when it is absent or out of range."""
    if not _is_number(value):
        return None
    try:
        return datetime.fromtimestamp(value, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None


def _seconds(value: Any) -> int | None:
    return math.floor(value) if _instant(value) is not None else None


def _utc(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _check_times(
    claims: dict[Any, Any], cert: x509.Certificate | None, now: datetime
) -> tuple[bool, bool, str]:
    """(within validity, expired, why not) for `exp`, `iat` and the DSC's validity window at `now`."""
    exp, iat = _instant(claims.get(CLAIM_EXP)), _instant(claims.get(CLAIM_IAT))
    if exp is None or iat is None:
        return False, False, "exp or iat claim is missing or out of range"
    if exp < now:
        return False, True, f"expired at {_utc(exp)}"
    if iat > now + CLOCK_SKEW:
        return False, False, f"issued in the future ({_utc(iat)})"
    if iat > exp:
        return False, False, "issued after it expires"
    if cert is not None:
        if now < cert.not_valid_before_utc or iat < cert.not_valid_before_utc:
            return False, False, f"signing certificate not valid before {_utc(cert.not_valid_before_utc)}"
        if now > cert.not_valid_after_utc:
            return False, False, f"signing certificate expired at {_utc(cert.not_valid_after_utc)}"
    return True, False, ""


def _cert_type(hcert: dict[Any, Any]) -> str | None:
    types = [t for t in TYPE_NAMES if t in hcert]
    return types[0] if len(types) == 1 else None


def _json_ok(value: Any) -> bool:
    if isinstance(value, dict):
        return all(isinstance(k, str) and _json_ok(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_json_ok(v) for v in value)
    if isinstance(value, float):
        return math.isfinite(value)
    return value is None or isinstance(value, str | int)


def _json_problem(hcert: dict[Any, Any]) -> str | None:
    """Why the DGC is not a well-formed JSON certificate, or None."""
    if not _json_ok(hcert):
        return "DGC holds values or keys that JSON cannot"
    if not isinstance(hcert.get("ver"), str):
        return "DGC has no schema version"
    if not isinstance(hcert.get("nam"), dict) or not isinstance(hcert.get("dob"), str):
        return "DGC has no name or date of birth"
    cert_type = _cert_type(hcert)
    if cert_type is None:
        return "DGC must hold exactly one of v, t, r"
    entries = hcert[cert_type]
    if not isinstance(entries, list) or len(entries) != 1 or not isinstance(entries[0], dict):
        return f"DGC {cert_type} must be a list of exactly one object"
    return None


def _safe_issuer(claims: dict[Any, Any]) -> str | None:
    iss = claims.get(CLAIM_ISS)
    return iss if isinstance(iss, str) and re.fullmatch(r"[A-Za-z0-9-]{1,8}", iss) else None


def to_verdict(steps: DccSteps) -> Verdict:
    """The Verdict for a run of steps: green only when every step passed."""
    others = (steps.unprefix, steps.base45, steps.compression, steps.decode, steps.verify, steps.key_usage,
              steps.valid_json)
    passed = all(step is True for step in others)
    reasons: tuple[Reason, ...] = ()
    if passed and steps.expiration is True:
        status = "green"
    elif passed and steps.expired:
        status, reasons = "expired", (Reason.HEALTH_CODE_EXPIRED,)
    else:
        status, reasons = "invalid", (Reason.HEALTH_CODE_INVALID,)
    health = HealthFacts("dcc", "green" if status == "green" else None, issued_at=steps.issued_at,
                         expires_at=steps.expires_at)
    return Verdict("dcc", valid=status == "green", status=status, reasons=reasons, detail=steps.detail,
                   health=health)


class DccVerifier:
    """Checks HC1 payloads against a trust list of DSC certificates."""

    def __init__(self, trust: Iterable[x509.Certificate]) -> None:
        self._trust = list(trust)
        self._by_kid: dict[bytes, list[x509.Certificate]] = {}
        for cert in self._trust:
            self._by_kid.setdefault(key_id(cert), []).append(cert)

    def verify(self, payload: str, *, now: datetime) -> Verdict:
        """The Verdict for one scanned payload at `now`; never raises."""
        return to_verdict(self.steps(payload, now=now))

    def steps(self, payload: str, *, now: datetime) -> DccSteps:
        """Every conformance step for one scanned payload at `now`; never raises."""
        try:
            return self._steps(payload, now if now.tzinfo else now.replace(tzinfo=UTC))
        except Exception as exc:  # the last guard: hostile input must give a verdict, not a crash
            log.warning("dcc: unexpected %s while checking a payload", type(exc).__name__, exc_info=True)
            return DccSteps(detail=f"internal error ({type(exc).__name__})")

    def _steps(self, payload: str, now: datetime) -> DccSteps:
        if not isinstance(payload, str) or not payload.startswith(PREFIX):
            return DccSteps(unprefix=False, detail="unprefix: no HC1: prefix")
        body = payload[len(PREFIX) :]
        if len(body) > MAX_QR_CHARS:
            return DccSteps(unprefix=True, base45=False, detail="base45: longer than a QR code can hold")
        try:
            compressed = base45.b45decode(body)
        except (ValueError, TypeError):
            return DccSteps(unprefix=True, base45=False, detail="base45: not valid base45")
        try:
            raw = _inflate(compressed)
        except _Malformed as exc:
            return DccSteps(unprefix=True, base45=True, compression=False, detail=f"compression: {exc}")
        try:
            cose = _parse_cose(raw)
        except _Malformed as exc:
            return DccSteps(
                unprefix=True, base45=True, compression=True, decode=False, detail=f"decode: {exc}"
            )
        return self._check(cose, now)

    def _candidates(self, cose: _Cose) -> tuple[list[x509.Certificate], str, bool]:
        """The DSCs that may have signed, how they were chosen, and whether by kid (protected kid first)."""
        kid = cose.phdr[HEADER_KID] if HEADER_KID in cose.phdr else cose.uhdr.get(HEADER_KID)
        if kid is None:
            return self._trust, "no kid, matched by trying every DSC", False
        if not isinstance(kid, bytes):
            return [], "kid is not a byte string", False
        return self._by_kid.get(kid, []), f"matched by kid {kid[:16].hex()}", True

    def _find_signer(self, cose: _Cose) -> tuple[x509.Certificate | None, x509.Certificate | None, str]:
        """(the DSC whose signature verifies, the DSC to judge the code by, how it matched or why not)."""
        candidates, matched, by_kid = self._candidates(cose)
        if not candidates:
            return None, None, f"no trusted signing certificate ({matched})"
        alg = cose.phdr[HEADER_ALG] if HEADER_ALG in cose.phdr else cose.uhdr.get(HEADER_ALG)
        to_sign = cbor2.dumps(["Signature1", cose.protected, b"", cose.payload])
        problems: list[str] = []
        for cert in candidates:
            problem = check_signature(cert, alg, to_sign, cose.signature)
            if problem is None:
                return cert, cert, matched
            problems.append(problem)
        return None, candidates[0] if by_kid else None, f"{problems[0]} ({matched})"

    def _check(self, cose: _Cose, now: datetime) -> DccSteps:
        failures: list[str] = []
        signer, dsc, matched = self._find_signer(cose)
        if signer is None:
            failures.append(f"verify: {matched}")
        in_time, expired, why = _check_times(cose.claims, dsc, now)
        if not in_time:
            failures.append(f"expiration: {why}")
        cert_type = _cert_type(cose.hcert)
        key_usage: bool | None = None
        if dsc is not None:
            allowed, how = allowed_types(dsc)
            key_usage = cert_type is not None and cert_type in allowed
            if cert_type is None:
                failures.append("key usage: DGC has no single certificate type")
            elif not key_usage:
                failures.append(f"key usage: DSC may not sign {TYPE_NAMES[cert_type]} certificates ({how})")
        json_problem = _json_problem(cose.hcert)
        if json_problem:
            failures.append(f"valid json: {json_problem}")
        issuer = _safe_issuer(cose.claims)
        if failures:
            detail = "; ".join(failures)
        else:
            detail = (f"valid {TYPE_NAMES.get(cert_type or '', 'unknown')} certificate"
                      f"{f' from {issuer}' if issuer else ''}, signature verified ({matched})")
        return DccSteps(
            unprefix=True, base45=True, compression=True, decode=True, verify=signer is not None,
            expiration=in_time, key_usage=key_usage, valid_json=json_problem is None, detail=detail,
            cert_type=cert_type, hcert=cose.hcert if _json_ok(cose.hcert) else None, issuer=issuer,
            issued_at=_seconds(cose.claims.get(CLAIM_IAT)), expires_at=_seconds(cose.claims.get(CLAIM_EXP)),
            expired=expired,
        )
