"""Passes (CKP1): the signed envelope, key rings, and every refusal with its contract reason code."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from checkpoint.keys import KeyRing, kid_for, public_pem
from checkpoint.passes import issue_pass, mask_name
from checkpoint.reasons import Reason
from checkpoint.signed import (
    EnvelopeError,
    SignatureError,
    UnknownKeyError,
    b64u_decode,
    b64u_encode,
    open_envelope,
    sign,
)
from kiosk.credentials.passes import PassVerifier

NOW = datetime(2026, 3, 19, 7, 0, tzinfo=UTC)
T = int(NOW.timestamp())
IDH = "ab" * 32
OFFICE = Ed25519PrivateKey.generate()
KID = kid_for(OFFICE.public_key())
RING = KeyRing.of(OFFICE.public_key())


def make(key: Ed25519PrivateKey = OFFICE, kid: str | None = None, **fields: Any) -> str:
    values: dict[str, Any] = {"pid": "P-00017", "cat": "green", "hh": "9-23-301", "name": "张**", "idh": IDH,
                              "nbf": T - 86_400, "exp": T + 86_400}
    values.update(fields)
    return issue_pass(key, kid, **values)


def raw_envelope(prefix: str, data: bytes, key: Ed25519PrivateKey = OFFICE) -> str:
    """An envelope around arbitrary payload bytes, with a genuine signature over them."""
    return f"{prefix}.{b64u_encode(data)}.{b64u_encode(key.sign(data))}"


def payload_of(text: str) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(b64u_decode(text.split(".")[1]))
    return result


def test_genuine_pass_is_valid_with_its_facts() -> None:
    verdict = PassVerifier(RING).verify(make(), now=NOW)
    assert verdict.valid and verdict.kind == "pass" and verdict.status == "valid" and verdict.reasons == ()
    assert verdict.pass_ is not None
    assert (verdict.pass_.pid, verdict.pass_.cat, verdict.pass_.hh, verdict.pass_.kid) == (
        "P-00017", "green", "9-23-301", KID)
    assert (verdict.pass_.name, verdict.pass_.idh, verdict.pass_.nbf) == ("张**", IDH, T - 86_400)


def test_envelope_format_is_prefix_payload_signature_with_canonical_json() -> None:
    text = make()
    prefix, payload, signature = text.split(".")
    assert prefix == "CKP1" and "=" not in text
    data = b64u_decode(payload)
    assert data == json.dumps(json.loads(data), sort_keys=True, separators=(",", ":"),
                              ensure_ascii=False).encode("utf-8")
    assert "张**".encode() in data
    OFFICE.public_key().verify(b64u_decode(signature), data)
    assert payload_of(text)["v"] == 1 and payload_of(text)["kid"] == KID


def test_forged_signature_is_pass_invalid() -> None:
    forger = Ed25519PrivateKey.generate()
    forged = make(forger, kid=KID)  # claims the office's kid
    verdict = PassVerifier(RING).verify(forged, now=NOW)
    assert not verdict.valid and verdict.reasons == (Reason.PASS_INVALID,) and verdict.status == "invalid"
    assert verdict.pass_ is None and "bad signature" in verdict.detail
    with pytest.raises(SignatureError):
        open_envelope(forged, "CKP1", RING)


def test_tampered_payload_with_valid_structure_is_pass_invalid() -> None:
    prefix, _, signature = make(cat="pink").split(".")
    body = payload_of(make(cat="pink")) | {"cat": "green"}
    tampered = f"{prefix}.{b64u_encode(json.dumps(body).encode())}.{signature}"
    verdict = PassVerifier(RING).verify(tampered, now=NOW)
    assert verdict.reasons == (Reason.PASS_INVALID,) and verdict.pass_ is None


def test_expired_pass() -> None:
    text = make(nbf=T - 100, exp=T - 1)
    verdict = PassVerifier(RING).verify(text, now=NOW)
    assert not verdict.valid and verdict.status == "expired" and verdict.reasons == (Reason.PASS_EXPIRED,)
    assert verdict.pass_ is not None and verdict.pass_.exp == T - 1
    assert PassVerifier(RING).verify(make(nbf=T - 100, exp=T), now=NOW).valid  # exp is the last valid second


def test_pass_not_yet_valid_beyond_the_clock_skew() -> None:
    verifier = PassVerifier(RING, clock_skew_s=60)
    early = verifier.verify(make(nbf=T + 61, exp=T + 1000), now=NOW)
    assert early.status == "not_yet_valid" and early.reasons == (Reason.PASS_NOT_YET_VALID,)
    assert early.pass_ is not None and not early.valid
    assert verifier.verify(make(nbf=T + 60, exp=T + 1000), now=NOW).valid


def test_revoked_pass_from_a_set_and_from_a_live_callable() -> None:
    verdict = PassVerifier(RING, revoked=frozenset({"P-00017"})).verify(make(), now=NOW)
    assert verdict.status == "revoked" and verdict.reasons == (Reason.PASS_REVOKED,) and not verdict.valid
    current: set[str] = set()
    verifier = PassVerifier(RING, revoked=lambda: frozenset(current))
    assert verifier.verify(make(), now=NOW).valid
    current.add("P-00017")
    assert verifier.verify(make(), now=NOW).reasons == (Reason.PASS_REVOKED,)
    assert PassVerifier(RING, revoked=frozenset({"P-00018"})).verify(make(), now=NOW).valid


def test_revoked_and_expired_lists_both_reasons() -> None:
    verdict = PassVerifier(RING, revoked=frozenset({"P-00017"})).verify(make(nbf=T - 9, exp=T - 1), now=NOW)
    assert set(verdict.reasons) == {Reason.PASS_EXPIRED, Reason.PASS_REVOKED} and verdict.status == "revoked"


def test_failing_revocation_source_does_not_raise() -> None:
    def broken() -> frozenset[str]:
        raise RuntimeError("boom")

    verdict = PassVerifier(RING, revoked=broken).verify(make(), now=NOW)
    assert not verdict.valid and verdict.reasons == (Reason.PASS_INVALID,)


def test_unknown_kid_is_pass_invalid() -> None:
    stranger = Ed25519PrivateKey.generate()
    verdict = PassVerifier(RING).verify(make(stranger), now=NOW)
    assert verdict.reasons == (Reason.PASS_INVALID,) and "unknown kid" in verdict.detail
    with pytest.raises(UnknownKeyError):
        open_envelope(make(stranger), "CKP1", RING)


def test_wrong_prefix_is_pass_invalid() -> None:
    text = make()
    for other in ("HCT1" + text[4:], "ckp1" + text[4:], "CKP2" + text[4:]):
        verdict = PassVerifier(RING).verify(other, now=NOW)
        assert verdict.reasons == (Reason.PASS_INVALID,) and "not a CKP1" in verdict.detail


def _signed(payload: dict[str, Any]) -> str:
    return raw_envelope("CKP1", json.dumps(payload).encode())


GOOD = payload_of(make())
GARBAGE = [
    "", "CKP1", "CKP1.", "CKP1..", "CKP1.a.b", "CKP1.!!!.abc", "CKP1.e30.e30.e30", "hello world",
    make() + "=", make() + "\n", " " + make(), "CKP1.+" + make()[6:], "CKP1." + "A" * 3000 + ".AA",
    raw_envelope("CKP1", b"[1, 2]"), raw_envelope("CKP1", b"\xff\xfe"), raw_envelope("CKP1", b"[" * 1400),
    raw_envelope("CKP1", f'{{"kid":"{KID}","kid":"{KID}"}}'.encode()),
    raw_envelope("CKP1", f'{{"kid":"{KID}","nbf":NaN}}'.encode()),
    _signed({"v": 1}), _signed(GOOD | {"v": 2}), _signed(GOOD | {"v": True}), _signed(GOOD | {"v": 1.0}),
    _signed(GOOD | {"extra": 1}), _signed({k: v for k, v in GOOD.items() if k != "hh"}),
    _signed(GOOD | {"nbf": True}), _signed(GOOD | {"nbf": "1"}), _signed(GOOD | {"exp": GOOD["nbf"]}),
    _signed(GOOD | {"cat": "purple"}), _signed(GOOD | {"pid": "../etc"}), _signed(GOOD | {"idh": "xyz"}),
    _signed(GOOD | {"name": "a\nb"}), _signed(GOOD | {"exp": 10**20}), _signed(GOOD | {"hh": ""}),
]


@pytest.mark.parametrize("text", GARBAGE)
def test_garbage_is_pass_invalid_never_an_exception(text: str) -> None:
    verdict = PassVerifier(RING).verify(text, now=NOW)
    assert not verdict.valid and verdict.reasons == (Reason.PASS_INVALID,) and verdict.detail


def test_the_unmodified_helpers_make_a_valid_pass() -> None:
    assert PassVerifier(RING).verify(_signed(GOOD), now=NOW).valid  # so GARBAGE fails for its one change


def test_non_canonical_base64_is_refused() -> None:
    prefix, payload, signature = make().split(".")
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    # 64 bytes leave 4 unused low bits in the last character; setting one decodes to the same bytes
    twin = alphabet[alphabet.index(signature[-1]) | 1]
    assert twin != signature[-1]
    with pytest.raises(EnvelopeError, match="canonical"):
        open_envelope(f"{prefix}.{payload}.{signature[:-1]}{twin}", "CKP1", RING)


def test_size_cap_is_checked_first() -> None:
    with pytest.raises(EnvelopeError, match="longer than"):
        open_envelope("CKP1." + "A" * 4000, "CKP1", RING)


def test_issue_pass_refuses_bad_fields() -> None:
    bad_fields: list[dict[str, Any]] = [
        {"cat": "purple"}, {"nbf": T, "exp": T}, {"name": "x" * 33}, {"pid": "P 1"}, {"idh": "AB" * 32}]
    for bad in bad_fields:
        with pytest.raises(ValueError):
            make(**bad)
    with pytest.raises(ValueError):
        sign("CKP1", {"no": "kid"}, OFFICE)


def test_issue_pass_accepts_datetimes() -> None:
    text = make(nbf=NOW, exp=NOW + timedelta(days=1))
    assert payload_of(text)["nbf"] == T and payload_of(text)["exp"] == T + 86_400


def test_mask_name() -> None:
    names = ("张三丰", "张三", "李", "", " Anna  Li ")
    assert [mask_name(n) for n in names] == ["张**", "张*", "李*", "", "A******"]
    assert mask_name("张**") == "张**"


def test_naive_now_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="aware"):
        PassVerifier(RING).verify(make(), now=datetime(2026, 3, 19))


def test_kid_for_is_stable_and_short() -> None:
    assert kid_for(OFFICE.public_key()) == KID and len(KID) == 16 and int(KID, 16) >= 0
    assert kid_for(Ed25519PrivateKey.generate().public_key()) != KID


def test_key_ring_from_dir_skips_bad_files(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / f"{KID}.pub").write_bytes(public_pem(OFFICE.public_key()))
    (tmp_path / "garbage.pub").write_text("not a key")
    (tmp_path / "bad name.pub").write_bytes(public_pem(OFFICE.public_key()))
    private = OFFICE.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                   serialization.NoEncryption())
    (tmp_path / "secret.pub").write_bytes(private)
    (tmp_path / "readme.txt").write_text("ignored")
    with caplog.at_level(logging.WARNING):
        ring = KeyRing.from_dir(tmp_path)
    assert list(ring) == [KID]
    assert "garbage.pub" in caplog.text and "bad name.pub" in caplog.text and "private key" in caplog.text
    assert PassVerifier(ring).verify(make(), now=NOW).valid
    with pytest.raises(FileNotFoundError):
        KeyRing.from_dir(tmp_path / "missing")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=400) | st.from_regex(r"CKP1\.[A-Za-z0-9_-]{0,200}\.[A-Za-z0-9_-]{0,100}"))
def test_verify_never_raises_on_arbitrary_text(text: str) -> None:
    verdict = PassVerifier(RING).verify(text, now=NOW)
    assert not verdict.valid and verdict.reasons == (Reason.PASS_INVALID,)


VALID = make()


@settings(max_examples=300, deadline=None)
@given(st.integers(0, len(VALID) - 1), st.sampled_from(["delete", "replace", "insert"]),
       st.characters(codec="ascii"))
def test_any_change_to_a_valid_pass_makes_it_invalid(position: int, how: str, char: str) -> None:
    if how == "delete":
        mutated = VALID[:position] + VALID[position + 1:]
    elif how == "replace":
        mutated = VALID[:position] + char + VALID[position + 1:]
    else:
        mutated = VALID[:position] + char + VALID[position:]
    verdict = PassVerifier(RING).verify(mutated, now=NOW)
    assert verdict.valid == (mutated == VALID)
    if not verdict.valid:
        assert verdict.reasons == (Reason.PASS_INVALID,)


# -- v2: the platform's holder reference -----------------------------------------------------------------

HPR = "platform-holder-0001"


def test_v2_pass_names_the_platform_holder() -> None:
    text = make(hpr=HPR)
    payload = payload_of(text)
    assert payload["v"] == 2 and payload["hpr"] == HPR
    verdict = PassVerifier(RING).verify(text, now=NOW)
    assert verdict.valid and verdict.pass_ is not None and verdict.pass_.hpr == HPR


def test_v1_pass_has_no_hpr_field_and_still_verifies() -> None:
    text = make()
    assert payload_of(text)["v"] == 1 and "hpr" not in payload_of(text)
    verdict = PassVerifier(RING).verify(text, now=NOW)
    assert verdict.valid and verdict.pass_ is not None and verdict.pass_.hpr is None


@pytest.mark.parametrize(("version", "extra"), [
    (1, {"hpr": HPR}),  # v1 has no hpr
    (1, {"hpr": None}),
    (2, {}),  # v2 needs hpr
    (2, {"hpr": None}),
    (2, {"hpr": "no spaces allowed"}),
    (3, {"hpr": HPR}),
])
def test_malformed_versions_are_pass_invalid(version: int, extra: dict[str, Any]) -> None:
    payload = {**payload_of(make()), "v": version, **extra}
    data = json.dumps(payload).encode()
    verdict = PassVerifier(RING).verify(raw_envelope("CKP1", data), now=NOW)
    assert not verdict.valid and verdict.reasons == (Reason.PASS_INVALID,)
