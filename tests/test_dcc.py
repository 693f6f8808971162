"""The dcc provider: every EU conformance vector, self-made certificates, and hostile input."""

from __future__ import annotations

import base64
import csv
import json
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import base45  # type: ignore[import-untyped]
import cbor2
import cv2
import numpy as np
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import ExtensionOID, NameOID
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from checkpoint.reasons import Reason
from kiosk.config import PolicyConfig
from kiosk.credentials.dcc import DccSteps, DccVerifier, load_certificate, load_trust_dir
from kiosk.credentials.dcc_trust import allowed_types, key_id
from kiosk.credentials.verdict import PassFacts, Verdict
from kiosk.policy import Facts, decide
from kiosk.scanner import scan

VECTORS = Path(__file__).resolve().parents[1].parent / "shared" / "testdata" / "dcc"

# EXPECTEDRESULTS keys we check → DccSteps fields ("picture" is the scanner's job); other keys are ignored.
STEP_OF_KEY = {
    "EXPECTEDUNPREFIX": "unprefix",
    "EXPECTEDB45DECODE": "base45",
    "EXPECTEDCOMPRESSION": "compression",
    "EXPECTEDDECODE": "decode",
    "EXPECTEDVERIFY": "verify",
    "EXPECTEDEXPIRATIONCHECK": "expiration",
    "EXPECTEDKEYUSAGE": "key_usage",
    "EXPECTEDVALIDJSON": "valid_json",
    "EXPECTEDPICTUREDECODE": "picture",
}
# known_issues.csv names upstream's harness functions (dgc-testdata tests/test_ehealth_certs.py); an empty
# test_name means every check. test_cose_schema checks EXPECTEDSCHEMAVALIDATION, which we do not run.
STEPS_OF_UPSTREAM_TEST = {
    "test_un_prefix": {"unprefix"},
    "test_b45decode": {"base45"},
    "test_compression": {"compression"},
    "test_cose_json": {"decode"},
    "test_cose_cbor": {"decode"},
    "test_cbor_json": {"valid_json"},
    "test_verification_check": {"verify"},
    "test_expiration_check": {"expiration"},
    "test_expected_key_usage": {"key_usage"},
    "test_picture_decode": {"picture"},
    "test_cose_schema": set(),
    "": set(STEP_OF_KEY.values()),
}
CLOCK = re.compile(
    r"(?P<date>\d{4}-\d{2}-\d{2})[T ](?P<time>\d{2}:\d{2}:\d{2})(?:[.,](?P<frac>\d+))?"
    r"(?P<tz>Z|z|[+-]\d{2}(?::?\d{2})?)?"
)
NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
PERSONAL = {"fn": "Musterfrau-Gößinger", "gn": "Gabriele", "dob": "1998-02-26"}


def parse_clock(text: str) -> datetime:
    """An ISO-8601 instant: no zone means UTC, `+0200` needs no colon, fractions may run to 9 digits."""
    match = CLOCK.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"not an ISO-8601 instant: {text!r}")
    frac = (match["frac"] or "0")[:6].ljust(6, "0")
    tz = match["tz"] or "Z"
    if tz in ("Z", "z"):
        tz = "+00:00"
    elif ":" not in tz:
        tz = f"{tz[:3]}:{tz[3:] or '00'}"
    return datetime.fromisoformat(f"{match['date']}T{match['time']}.{frac}{tz}")


# --- the conformance vectors ---


@dataclass(frozen=True)
class Check:
    """One EXPECTEDRESULTS entry of one vector file."""

    path: Path
    key: str
    step: str
    expected: bool


def _vector_name(path: Path) -> str:
    """country/file, without the 2DCode/raw folders whose case varies."""
    parts = [p for p in path.relative_to(VECTORS).parts if p.lower() not in ("2dcode", "raw")]
    return "/".join(parts)


@cache
def _known_issues() -> dict[tuple[str, str], set[str]]:
    """(country, test set or "") → the steps to skip, from known_issues.csv."""
    issues: dict[tuple[str, str], set[str]] = {}
    file = VECTORS / "known_issues.csv"
    if not file.is_file():
        return issues
    with file.open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            steps = STEPS_OF_UPSTREAM_TEST.get((row.get("test_name") or "").strip(), set())
            key = ((row.get("country") or "").strip().upper(), (row.get("test_set") or "").strip())
            issues.setdefault(key, set()).update(steps)
    return issues


def _known_issue(path: Path, step: str) -> bool:
    country = path.relative_to(VECTORS).parts[0].upper()
    issues = _known_issues()
    return step in issues.get((country, ""), set()) | issues.get((country, path.stem), set())


@cache
def _load(path: Path) -> dict[str, Any]:
    data = json.loads(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def _checks() -> Iterator[Any]:
    if not VECTORS.is_dir():
        yield pytest.param(None, marks=pytest.mark.skip(reason=f"no vectors at {VECTORS}"), id="no-vectors")
        return
    for path in sorted(VECTORS.rglob("*.json"), key=lambda p: str(p).lower()):
        expected = _load(path).get("EXPECTEDRESULTS")
        if not isinstance(expected, dict):
            continue
        for key, value in expected.items():
            if key in STEP_OF_KEY and isinstance(value, bool):
                step = STEP_OF_KEY[key]
                yield pytest.param(Check(path, key, step, value), id=f"{_vector_name(path)}:{step}")


def _context(vector: dict[str, Any]) -> dict[str, Any]:
    ctx = vector.get("TESTCTX")
    return ctx if isinstance(ctx, dict) else {}


@cache
def _steps_of(path: Path) -> DccSteps:
    vector = _load(path)
    ctx = _context(vector)
    trust = [load_certificate(ctx["CERTIFICATE"])] if ctx.get("CERTIFICATE") else []
    clock = parse_clock(ctx["VALIDATIONCLOCK"]) if ctx.get("VALIDATIONCLOCK") else NOW
    return DccVerifier(trust).steps(vector["PREFIX"], now=clock)


def _comparable(value: Any) -> Any:
    """JSON with timestamps as instants, so that equal times in different notations compare equal."""
    if isinstance(value, dict):
        return {k: _comparable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_comparable(v) for v in value]
    if isinstance(value, str) and CLOCK.fullmatch(value):
        return parse_clock(value)
    return value


def _picture_decodes(vector: dict[str, Any]) -> bool:
    png = np.frombuffer(base64.b64decode(vector["2DCODE"]), np.uint8)
    decoded = cv2.imdecode(png, cv2.IMREAD_GRAYSCALE)
    if decoded is None:
        return False
    frame = np.asarray(decoded, dtype=np.uint8)
    prefix = vector["PREFIX"]
    return any(code.text == prefix or code.data == prefix.encode() for code in scan(frame))


@pytest.mark.parametrize("check", list(_checks()))
def test_vector(check: Check) -> None:
    """One stated expectation of one upstream vector holds."""
    if _known_issue(check.path, check.step):
        pytest.skip("listed in known_issues.csv")
    vector = _load(check.path)
    ctx = _context(vector)
    if not isinstance(vector.get("PREFIX"), str):
        pytest.skip("vector has no PREFIX")
    if check.step == "picture":
        if not isinstance(vector.get("2DCODE"), str):
            pytest.skip("vector has no 2DCODE")
        assert _picture_decodes(vector) == check.expected
        return
    if check.step in ("verify", "expiration", "key_usage") and not ctx.get("CERTIFICATE"):
        pytest.skip("vector has no TESTCTX.CERTIFICATE")
    if check.step == "expiration" and not ctx.get("VALIDATIONCLOCK"):
        pytest.skip("vector has no TESTCTX.VALIDATIONCLOCK")
    steps = _steps_of(check.path)
    outcome = getattr(steps, check.step) is True
    if outcome and check.step in ("decode", "valid_json") and isinstance(vector.get("JSON"), dict):
        outcome = _comparable(steps.hcert) == _comparable(vector["JSON"])
    assert outcome == check.expected, steps.detail


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2021-05-03T18:00:00", datetime(2021, 5, 3, 18, tzinfo=UTC)),
        ("2021-05-03T20:00:00+0200", datetime(2021, 5, 3, 18, tzinfo=UTC)),
        ("2021-05-03T20:00:00+02:00", datetime(2021, 5, 3, 18, tzinfo=UTC)),
        ("2021-05-03T18:00:00.123456789Z", datetime(2021, 5, 3, 18, 0, 0, 123456, tzinfo=UTC)),
        ("2021-05-03T18:00:00.5-01:00", datetime(2021, 5, 3, 19, 0, 0, 500000, tzinfo=UTC)),
    ],
)
def test_parse_clock(text: str, expected: datetime) -> None:
    """VALIDATIONCLOCK in every form the vectors use."""
    assert parse_clock(text) == expected


# --- self-made certificates ---

DSC_OID = "1.3.6.1.4.1.1847.2021.1."
Key = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


@cache
def _ec_key(n: int = 0) -> ec.EllipticCurvePrivateKey:
    """P-256 key number `n`, made once per test run."""
    return ec.generate_private_key(ec.SECP256R1())


@cache
def _rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def make_cert(
    key: Key,
    *,
    eku: tuple[str, ...] | None = None,
    start: datetime = datetime(2020, 1, 1, tzinfo=UTC),
    end: datetime = datetime(2030, 1, 1, tzinfo=UTC),
    bad_basic_constraints: bool = False,
) -> x509.Certificate:
    """A self-signed DSC."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test DSC")])
    builder = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(start).not_valid_after(end)
    )
    if eku is not None:
        usage = x509.ExtendedKeyUsage([x509.ObjectIdentifier(oid) for oid in eku])
        builder = builder.add_extension(usage, critical=False)
    if bad_basic_constraints:  # cA FALSE spelt out: DER forbids encoding a default, `cryptography` refuses it
        raw = x509.UnrecognizedExtension(ExtensionOID.BASIC_CONSTRAINTS, bytes.fromhex("3003010100"))
        builder = builder.add_extension(raw, critical=True)
    return builder.sign(key, hashes.SHA256())


def make_hcert(kind: str = "v") -> dict[str, Any]:
    entry = {"v": {"tg": "840539006", "dn": 2, "sd": 2, "dt": "2021-05-01", "co": "AT"},
             "t": {"tg": "840539006", "tt": "LP6464-4", "sc": "2021-05-01T10:00:00Z", "co": "AT"},
             "r": {"tg": "840539006", "fr": "2021-04-01", "df": "2021-05-01", "du": "2021-10-01"}}[kind]
    return {"ver": "1.3.0", "nam": {"fn": PERSONAL["fn"], "gn": PERSONAL["gn"]}, "dob": PERSONAL["dob"],
            kind: [entry]}


def make_dcc(
    key: Key,
    cert: x509.Certificate,
    *,
    hcert: dict[str, Any] | None = None,
    iat: float = NOW.timestamp() - 86400,
    exp: float = NOW.timestamp() + 86400,
    alg: int | None = None,
    kid: bytes | None = None,
    kid_where: str = "protected",
    tags: tuple[int, ...] = (18,),
    claims: dict[Any, Any] | None = None,
) -> str:
    """An HC1 payload signed by `key`, announcing `cert`'s kid unless told otherwise."""
    alg = alg if alg is not None else (-7 if isinstance(key, ec.EllipticCurvePrivateKey) else -37)
    kid = key_id(cert) if kid is None else kid
    phdr: dict[int, Any] = {1: alg}
    uhdr: dict[int, Any] = {}
    headers = {"protected": phdr, "unprotected": uhdr}
    if kid_where in headers:
        headers[kid_where][4] = kid
    protected = cbor2.dumps(phdr)
    body = claims if claims is not None else {1: "AT", 4: exp, 6: iat, -260: {1: hcert or make_hcert()}}
    payload = cbor2.dumps(body)
    to_sign = cbor2.dumps(["Signature1", protected, b"", payload])
    if isinstance(key, ec.EllipticCurvePrivateKey):
        r, s = decode_dss_signature(key.sign(to_sign, ec.ECDSA(hashes.SHA256())))
        signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    else:
        pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
        signature = key.sign(to_sign, pss, hashes.SHA256())
    message: Any = [protected, uhdr, payload, signature]
    for tag in reversed(tags):
        message = cbor2.CBORTag(tag, message)
    return wrap(cbor2.dumps(message))


def wrap(raw: bytes) -> str:
    """Arbitrary bytes as a well-formed HC1 envelope (zlib, base45, prefix)."""
    return "HC1:" + b45(zlib.compress(raw))


def b45(data: bytes) -> str:
    text: str = base45.b45encode(data).decode()
    return text


def _assert_no_personal_data(verdict: Verdict) -> None:
    assert not any(value in verdict.detail for value in PERSONAL.values())
    assert not any(value in json.dumps(verdict.to_json(), ensure_ascii=False) for value in PERSONAL.values())


def test_es256_round_trip_is_green() -> None:
    """A DCC signed with a fresh P-256 key verifies against its self-signed DSC."""
    key = _ec_key()
    cert = make_cert(key)
    verdict = DccVerifier([cert]).verify(make_dcc(key, cert), now=NOW)
    assert verdict.kind == "dcc" and verdict.valid and verdict.status == "green" and verdict.reasons == ()
    assert verdict.health is not None and verdict.health.scheme == "dcc" and verdict.health.status == "green"
    assert verdict.health.issued_at == int(NOW.timestamp()) - 86400
    assert verdict.health.expires_at == int(NOW.timestamp()) + 86400
    _assert_no_personal_data(verdict)


def test_ps256_round_trip_is_green() -> None:
    """A DCC signed with RSA-PSS (SHA-256, MGF1-SHA-256, 32-byte salt) verifies."""
    key = _rsa_key()
    cert = make_cert(key)
    verdict = DccVerifier([cert]).verify(make_dcc(key, cert, hcert=make_hcert("t")), now=NOW)
    assert verdict.valid and verdict.status == "green", verdict.detail


@pytest.mark.parametrize("tags", [(), (18,), (61, 18)], ids=["untagged", "tagged", "double-tagged"])
def test_cose_tagging(tags: tuple[int, ...]) -> None:
    """COSE_Sign1 untagged, tagged 18, or 61 around 18 all verify."""
    key = _ec_key()
    cert = make_cert(key)
    assert DccVerifier([cert]).verify(make_dcc(key, cert, tags=tags), now=NOW).valid


def test_wrong_key_is_invalid() -> None:
    """A signature by another key under the trusted DSC's kid is rejected."""
    cert = make_cert(_ec_key())
    verdict = DccVerifier([cert]).verify(make_dcc(_ec_key(1), cert), now=NOW)
    assert not verdict.valid and verdict.status == "invalid"
    assert verdict.reasons == (Reason.HEALTH_CODE_INVALID,) and "verify" in verdict.detail
    _assert_no_personal_data(verdict)


def test_unknown_kid_is_invalid_and_not_tried_against_others() -> None:
    """A kid no trusted DSC has is rejected even though the signature would verify."""
    key = _ec_key()
    cert = make_cert(key)
    steps = DccVerifier([cert]).steps(make_dcc(key, cert, kid=b"12345678"), now=NOW)
    assert steps.verify is False and "no trusted signing certificate" in steps.detail


@pytest.mark.parametrize(
    ("where", "kid_ok", "valid"),
    [("unprotected", True, True), ("absent", True, True), ("unprotected", False, False)],
)
def test_kid_placement(where: str, kid_ok: bool, valid: bool) -> None:
    """The kid may sit in the unprotected header or be missing (then every DSC is tried)."""
    key = _ec_key()
    cert = make_cert(key)
    payload = make_dcc(key, cert, kid=None if kid_ok else b"wrongkid", kid_where=where)
    steps = DccVerifier([make_cert(_ec_key(1)), cert]).steps(payload, now=NOW)
    assert steps.verify is valid, steps.detail
    if where == "absent":
        assert "trying every DSC" in steps.detail


def test_alg_must_match_key_type() -> None:
    """An ES256 header over an RSA DSC is rejected."""
    key = _rsa_key()
    cert = make_cert(key)
    steps = DccVerifier([cert]).steps(make_dcc(key, cert, alg=-7), now=NOW)
    assert steps.verify is False and "ES256 needs a P-256 key" in steps.detail


def test_expired_is_health_code_expired() -> None:
    """exp before now gives health_code_expired."""
    key = _ec_key()
    cert = make_cert(key)
    verdict = DccVerifier([cert]).verify(make_dcc(key, cert, exp=NOW.timestamp() - 1), now=NOW)
    assert not verdict.valid and verdict.status == "expired"
    assert verdict.reasons == (Reason.HEALTH_CODE_EXPIRED,)
    assert verdict.health is not None and verdict.health.status is None


@pytest.mark.parametrize(
    ("cert_kwargs", "dcc_kwargs", "why"),
    [
        ({}, {"iat": NOW.timestamp() + 3600}, "issued in the future"),
        ({"end": NOW - timedelta(days=1)}, {}, "signing certificate expired"),
        ({"start": NOW + timedelta(days=1)}, {}, "not valid before"),
        ({}, {"claims": {1: "AT", 4: NOW.timestamp() + 60, -260: {1: make_hcert()}}}, "missing"),
    ],
)
def test_time_problems_are_invalid(cert_kwargs: dict[str, Any], dcc_kwargs: dict[str, Any], why: str) -> None:
    """Future iat, a DSC outside its validity, or a missing iat make the code invalid."""
    key = _ec_key()
    cert = make_cert(key, **cert_kwargs)
    verdict = DccVerifier([cert]).verify(make_dcc(key, cert, **dcc_kwargs), now=NOW)
    assert verdict.status == "invalid" and verdict.reasons == (Reason.HEALTH_CODE_INVALID,)
    assert why in verdict.detail


@pytest.mark.parametrize(
    ("eku", "kind", "allowed"),
    [
        ((DSC_OID + "1",), "v", False),
        ((DSC_OID + "1",), "t", True),
        ((DSC_OID + "2", DSC_OID + "3"), "r", True),
        (("1.3.6.1.4.1.0.1847.2021.1.3",), "t", False),
        (("1.3.6.1.5.5.7.3.1",), "t", True),
        (None, "r", True),
    ],
)
def test_key_usage(eku: tuple[str, ...] | None, kind: str, allowed: bool) -> None:
    """A DSC with DCC EKUs signs only those types; without any it signs all."""
    key = _ec_key()
    cert = make_cert(key, eku=eku)
    steps = DccVerifier([cert]).steps(make_dcc(key, cert, hcert=make_hcert(kind)), now=NOW)
    assert steps.verify is True and steps.key_usage is allowed and steps.cert_type == kind


def test_key_usage_read_despite_bad_basic_constraints() -> None:
    """The EKU of a DSC whose extensions `cryptography` refuses is read from the raw DER."""
    key = _ec_key()
    cert = make_cert(key, eku=(DSC_OID + "1",), bad_basic_constraints=True)
    with pytest.raises(ValueError):
        _ = cert.extensions
    assert allowed_types(cert) == (frozenset({"t"}), "EKU read from raw DER")
    steps = DccVerifier([cert]).steps(make_dcc(key, cert, hcert=make_hcert("v")), now=NOW)
    assert steps.verify is True and steps.key_usage is False


@pytest.mark.parametrize(
    "hcert",
    [
        {"ver": "1.3.0", "nam": {}, "dob": "1990-01-01"},
        {**make_hcert("v"), "t": make_hcert("t")["t"]},
        {**make_hcert("v"), "v": []},
        {**make_hcert("v"), "bin": b"\x00"},
        {**make_hcert("v"), "ver": 1},
    ],
    ids=["no-type", "two-types", "empty-list", "bytes", "ver-not-text"],
)
def test_malformed_dgc_is_invalid(hcert: dict[str, Any]) -> None:
    """A DGC without exactly one certificate, or with non-JSON values, is invalid."""
    key = _ec_key()
    cert = make_cert(key)
    verdict = DccVerifier([cert]).verify(make_dcc(key, cert, hcert=hcert), now=NOW)
    assert verdict.status == "invalid" and verdict.reasons == (Reason.HEALTH_CODE_INVALID,)


@cache
def _dsc() -> x509.Certificate:
    return make_cert(_ec_key())


@cache
def _valid_payload() -> str:
    return make_dcc(_ec_key(), _dsc())


@cache
def _verifier() -> DccVerifier:
    return DccVerifier([_dsc()])


def cose(protected: bytes, payload: bytes | None) -> str:
    """An HC1 envelope around an untagged COSE_Sign1 with an empty signature."""
    return wrap(cbor2.dumps([protected, {}, payload, b""]))


@pytest.mark.parametrize(
    ("payload", "step"),
    [
        ("", "unprefix"),
        ("HC2:NCFOXN", "unprefix"),
        ("NCFOXN%TS3DH", "unprefix"),
        ("HC1:", "compression"),
        ("HC1:" + "A" * 100_000, "base45"),
        ("HC1:abc", "base45"),
        ("HC1:ÄÖÜ\x00\ud800", "base45"),
        ("HC1:" + b45(b"not zlib"), "compression"),
        ("HC1:" + b45(zlib.compress(b"\0" * 1_000_000)), "compression"),
        ("HC1:" + b45(zlib.compress(b"x")[:-3]), "compression"),
        (wrap(b"\x81" * 5000), "decode"),
        (wrap(b"\xff\xfe"), "decode"),
        (wrap(cbor2.dumps(cbor2.CBORTag(18, [b"", {}, b"", b""])) + b"junk"), "decode"),
        (wrap(cbor2.dumps(cbor2.CBORTag(99, [b"", {}, b"", b""]))), "decode"),
        (wrap(cbor2.dumps([b"", {}, b""])), "decode"),
        (cose(b"", None), "decode"),
        (cose(b"", cbor2.dumps([1, 2])), "decode"),
        (cose(b"", cbor2.dumps({-260: [1]})), "decode"),
        (cose(b"", cbor2.dumps({-260: {1: "x"}})), "decode"),
        (cose(b"", cbor2.dumps({4: "soon", -260: {1: {}}})), "decode"),
        (cose(b"", cbor2.dumps({1: 7, -260: {1: {}}})), "decode"),
        (cose(b"\xa1", cbor2.dumps({-260: {1: {}}})), "decode"),
        (cose(b"", bytes.fromhex("d81c81d81d00")), "decode"),
        (cose(b"", bytes.fromhex("c5821b7fffffffffffffff01")), "decode"),
        (cose(b"", cbor2.dumps({True: 1, -260: {1: {}}})), "decode"),
        (cose(b"", cbor2.dumps({4: 10**400, 6: float("nan"), -260: {1: {}}})), "verify"),
        (cose(cbor2.dumps({1: "x", 4: [1]}), cbor2.dumps({-260: {1: {}}})), "verify"),
    ],
)
def test_garbage_gives_a_typed_verdict(payload: str, step: str) -> None:
    """Broken input of every layer fails at that layer with a typed verdict, never an exception."""
    steps = _verifier().steps(payload, now=NOW)
    assert getattr(steps, step) is False, steps.detail
    verdict = _verifier().verify(payload, now=NOW)
    assert verdict.kind == "dcc" and not verdict.valid and verdict.reasons == (Reason.HEALTH_CODE_INVALID,)
    assert verdict.detail.startswith(step.replace("_", " ")) or step in verdict.detail


def test_every_truncation_gives_a_typed_verdict() -> None:
    """Every prefix of a valid payload gives an invalid verdict."""
    payload = _valid_payload()
    for end in range(0, len(payload), 3):
        verdict = _verifier().verify(payload[:end], now=NOW)
        assert verdict.status == "invalid" and verdict.reasons == (Reason.HEALTH_CODE_INVALID,)


def test_non_string_payload_and_naive_clock() -> None:
    """A wrong argument type or a naive clock still gives a verdict."""
    assert _verifier().verify(b"HC1:xyz", now=NOW).status == "invalid"  # type: ignore[arg-type]
    assert _verifier().verify(_valid_payload(), now=NOW.replace(tzinfo=None)).valid


BASE45_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.text(max_size=400), st.text(BASE45_ALPHABET, max_size=400).map(lambda s: "HC1:" + s)))
def test_arbitrary_text_never_raises(text: str) -> None:
    """verify returns an invalid Verdict for any text."""
    verdict = _verifier().verify(text, now=NOW)
    assert isinstance(verdict, Verdict) and verdict.kind == "dcc" and not verdict.valid


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_mutated_payload_never_raises(data: st.DataObject) -> None:
    """verify returns a Verdict for any small mutation of a valid payload, green only if it is unchanged."""
    original = _valid_payload()
    payload = original
    for _ in range(data.draw(st.integers(1, 3))):
        at = data.draw(st.integers(0, len(payload)))
        op = data.draw(st.sampled_from(["replace", "insert", "delete"]))
        char = data.draw(st.sampled_from(BASE45_ALPHABET + "a\x00é"))
        tail = payload[at + 1 :] if op != "insert" else payload[at:]
        payload = payload[:at] + ("" if op == "delete" else char) + tail
    verdict = _verifier().verify(payload, now=NOW)
    assert isinstance(verdict, Verdict) and verdict.kind == "dcc"
    assert not verdict.valid or payload == original


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_cose_bytes_never_raise(raw: bytes) -> None:
    """verify returns an invalid Verdict for any bytes behind a well-formed envelope."""
    assert _verifier().verify(wrap(raw), now=NOW).status == "invalid"


# --- trust list loading ---


def test_load_certificate_forms() -> None:
    """base64 DER text, PEM text or bytes, and DER bytes all load; garbage raises ValueError."""
    cert = make_cert(_ec_key())
    der = cert.public_bytes(serialization.Encoding.DER)
    pem = cert.public_bytes(serialization.Encoding.PEM)
    forms: list[bytes | str] = [der, pem, pem.decode(), base64.b64encode(der).decode(), base64.b64encode(der)]
    for form in forms:
        assert load_certificate(form) == cert
    garbage: list[bytes | str] = ["", "not base64!", b"\x30\x03\x02\x01\x01", "aGVsbG8=", "-----BEGIN x"]
    for form in garbage:
        with pytest.raises(ValueError):
            load_certificate(form)


def test_load_trust_dir(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Every certificate file loads; a bad one is logged and skipped; other suffixes are ignored."""
    certs = [make_cert(_ec_key()), make_cert(_rsa_key()), make_cert(_ec_key(1))]
    (tmp_path / "a.pem").write_bytes(certs[0].public_bytes(serialization.Encoding.PEM))
    (tmp_path / "b.DER").write_bytes(certs[1].public_bytes(serialization.Encoding.DER))
    (tmp_path / "c.b64").write_bytes(base64.b64encode(certs[2].public_bytes(serialization.Encoding.DER)))
    (tmp_path / "d.crt").write_text("garbage")
    (tmp_path / "e.txt").write_text("ignored")
    bundle = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs[:2])
    (tmp_path / "f.pem").write_bytes(bundle)
    loaded = load_trust_dir(tmp_path)
    assert loaded == [certs[0], certs[1], certs[2], certs[0], certs[1]]
    assert "d.crt" in caplog.text


def test_a_dcc_has_no_travel_card() -> None:
    """Issue 15: the DCC path carries no travel card; with "travel" required a DCC alone is no_travel_code."""
    key = _ec_key()
    cert = make_cert(key)
    verdict = DccVerifier([cert]).verify(make_dcc(key, cert), now=NOW)
    assert verdict.valid and verdict.health is not None
    assert (verdict.health.travel, verdict.health.star, verdict.health.hpr) == (None, None, None)
    a_pass = Verdict("pass", valid=True, status="valid", pass_=PassFacts(
        pid="P-1", cat="green", kid="k", hh=None, name="张*", idh="a" * 64, nbf=0, exp=2**40,
        hpr="platform-holder-0001"))
    facts = Facts(credentials=(a_pass, verdict), body_c=36.5)
    travel = PolicyConfig(require=["health", "pass", "travel"])
    outcome = decide(facts, travel, NOW, timezone="Asia/Shanghai")
    assert (outcome.decision, outcome.reasons) == ("deny", (Reason.NO_TRAVEL_CODE,))
    assert decide(facts, PolicyConfig(), NOW, timezone="Asia/Shanghai").decision == "allow"
    bound = PolicyConfig(require_bound_health=True)  # a DCC names no platform holder
    outcome = decide(facts, bound, NOW, timezone="Asia/Shanghai")
    assert (outcome.decision, outcome.reasons) == ("deny", (Reason.HEALTH_CODE_NOT_HOLDER,))
