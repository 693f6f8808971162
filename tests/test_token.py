"""Health tokens (HCT1): colours, screenshots (stale iat), forgeries and garbage."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from checkpoint.keys import KeyRing, kid_for
from checkpoint.passes import issue_pass
from checkpoint.reasons import Reason
from checkpoint.signed import b64u_decode, b64u_encode
from checkpoint.tokens import issue_token
from kiosk.credentials.health_token import HealthTokenVerifier

NOW = datetime(2026, 3, 19, 7, 0, tzinfo=UTC)
T = int(NOW.timestamp())
IDH = "cd" * 32
AUTHORITY = Ed25519PrivateKey.generate()
RING = KeyRing.of(AUTHORITY.public_key())
VERIFIER = HealthTokenVerifier(RING)


def token(st: str = "green", *, key: Ed25519PrivateKey = AUTHORITY, kid: str | None = None, age: int = 5,
          ttl: int = 180, idh: str | None = IDH) -> str:
    return issue_token(key, kid, st=st, idh=idh, iat=T - age, exp=T - age + ttl)


def test_fresh_green_token_is_valid_without_reasons() -> None:
    verdict = VERIFIER.verify(token(), now=NOW)
    assert verdict.valid and verdict.kind == "health_token" and verdict.status == "green"
    assert verdict.reasons == ()
    assert verdict.health is not None
    assert (verdict.health.scheme, verdict.health.status, verdict.health.idh) == ("token", "green", IDH)
    assert (verdict.health.issued_at, verdict.health.expires_at) == (T - 5, T + 175)


def test_token_format() -> None:
    text = token()
    prefix, payload, _ = text.split(".")
    body = json.loads(b64u_decode(payload))
    assert prefix == "HCT1" and set(body) == {"v", "kid", "st", "idh", "iat", "exp"}
    assert body["kid"] == kid_for(AUTHORITY.public_key()) and body["v"] == 1


def test_genuine_red_is_valid_with_health_code_red() -> None:
    verdict = VERIFIER.verify(token("red"), now=NOW)
    assert verdict.valid and verdict.status == "red" and verdict.reasons == (Reason.HEALTH_CODE_RED,)


def test_genuine_yellow_is_valid_with_health_code_yellow() -> None:
    verdict = VERIFIER.verify(token("yellow"), now=NOW)
    assert verdict.valid and verdict.status == "yellow" and verdict.reasons == (Reason.HEALTH_CODE_YELLOW,)


def test_stale_token_screenshot_is_expired() -> None:
    stale = VERIFIER.verify(token(age=181, ttl=3600), now=NOW)
    assert not stale.valid and stale.status == "expired" and stale.reasons == (Reason.HEALTH_CODE_EXPIRED,)
    assert stale.health is not None and stale.health.status == "green"
    assert VERIFIER.verify(token(age=180, ttl=3600), now=NOW).valid
    assert HealthTokenVerifier(RING, max_age_s=60).verify(token(age=61), now=NOW).reasons == (
        Reason.HEALTH_CODE_EXPIRED,)


def test_token_past_its_exp_is_expired() -> None:
    verdict = VERIFIER.verify(token(age=61, ttl=60), now=NOW)
    assert verdict.status == "expired" and verdict.reasons == (Reason.HEALTH_CODE_EXPIRED,)


def test_stale_red_is_expired_not_red() -> None:
    assert VERIFIER.verify(token("red", age=500, ttl=3600), now=NOW).reasons == (Reason.HEALTH_CODE_EXPIRED,)


def test_token_from_the_future_beyond_skew_is_invalid() -> None:
    future = VERIFIER.verify(token(age=-31), now=NOW)
    assert not future.valid and future.status == "invalid" and future.reasons == (Reason.HEALTH_CODE_INVALID,)
    assert VERIFIER.verify(token(age=-30), now=NOW).valid


def test_forged_token_is_invalid_and_carries_no_status() -> None:
    forged = token("green", key=Ed25519PrivateKey.generate(), kid=kid_for(AUTHORITY.public_key()))
    verdict = VERIFIER.verify(forged, now=NOW)
    assert verdict.reasons == (Reason.HEALTH_CODE_INVALID,) and verdict.status == "invalid"
    assert verdict.health is not None and verdict.health.status is None and "bad signature" in verdict.detail


def test_tampered_status_is_invalid() -> None:
    prefix, payload, signature = token("red").split(".")
    body = json.loads(b64u_decode(payload)) | {"st": "green"}
    tampered = f"{prefix}.{b64u_encode(json.dumps(body).encode())}.{signature}"
    assert VERIFIER.verify(tampered, now=NOW).reasons == (Reason.HEALTH_CODE_INVALID,)


def test_unknown_kid_and_wrong_prefix_are_invalid() -> None:
    stranger = token(key=Ed25519PrivateKey.generate())
    assert "unknown kid" in VERIFIER.verify(stranger, now=NOW).detail
    a_pass = issue_pass(AUTHORITY, None, pid="P-1", cat="green", hh=None, name="", idh=IDH,
                        nbf=T - 9, exp=T + 9)
    verdict = VERIFIER.verify(a_pass, now=NOW)
    assert verdict.reasons == (Reason.HEALTH_CODE_INVALID,) and "not a HCT1" in verdict.detail


def test_token_without_person_binding() -> None:
    verdict = VERIFIER.verify(token(idh=None), now=NOW)
    assert verdict.valid and verdict.health is not None and verdict.health.idh is None


@pytest.mark.parametrize("fields", [{"st": "blue"}, {"iat": T, "exp": T}, {"idh": "x"}])
def test_issue_token_refuses_bad_fields(fields: dict[str, Any]) -> None:
    values: dict[str, Any] = {"st": "green", "idh": IDH, "iat": T, "exp": T + 60} | fields
    with pytest.raises(ValueError):
        issue_token(AUTHORITY, None, **values)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300) | st.from_regex(r"HCT1\.[A-Za-z0-9_-]{0,200}\.[A-Za-z0-9_-]{0,100}"))
def test_verify_never_raises_on_arbitrary_text(text: str) -> None:
    verdict = VERIFIER.verify(text, now=NOW)
    assert not verdict.valid and verdict.reasons == (Reason.HEALTH_CODE_INVALID,)


VALID = token()


@settings(max_examples=200, deadline=None)
@given(st.integers(0, len(VALID) - 1), st.characters(codec="ascii"))
def test_any_changed_character_makes_a_token_invalid(position: int, char: str) -> None:
    mutated = VALID[:position] + char + VALID[position + 1:]
    assert VERIFIER.verify(mutated, now=NOW).valid == (mutated == VALID)


# -- v2: the travel card (两码合一) and the platform's holder reference ------------------------------------

HPR = "platform-holder-0001"


def token_v2(st: str = "green", trv: str = "green", *, star: bool = False, hpr: str | None = HPR,
             age: int = 5) -> str:
    return issue_token(AUTHORITY, None, st=st, idh=None, iat=T - age, exp=T - age + 180, trv=trv, star=star,
                       hpr=hpr)


def raw_token(payload: dict[str, Any]) -> str:
    data = json.dumps({"kid": kid_for(AUTHORITY.public_key()), "iat": T - 5, "exp": T + 175, "st": "green",
                       **payload}).encode()
    return f"HCT1.{b64u_encode(data)}.{b64u_encode(AUTHORITY.sign(data))}"


def test_v2_token_carries_the_travel_card_and_holder() -> None:
    text = token_v2(star=True)
    payload = json.loads(b64u_decode(text.split(".")[1]))
    assert payload == {"v": 2, "kid": kid_for(AUTHORITY.public_key()), "st": "green", "trv": "green",
                       "star": True, "hpr": HPR, "iat": T - 5, "exp": T + 175}
    verdict = VERIFIER.verify(text, now=NOW)
    assert verdict.valid and verdict.health is not None
    assert (verdict.health.travel, verdict.health.star, verdict.health.hpr, verdict.health.idh) == (
        "green", True, HPR, None)
    assert verdict.reasons == (Reason.TRAVEL_RISK,)  # the star; the policy's travel_star decides


@pytest.mark.parametrize(("st", "trv", "star", "reasons"), [
    ("green", "green", False, ()),
    ("green", "yellow", False, (Reason.TRAVEL_RISK,)),
    ("yellow", "red", False, (Reason.HEALTH_CODE_YELLOW, Reason.TRAVEL_RISK)),
    ("red", "green", True, (Reason.HEALTH_CODE_RED, Reason.TRAVEL_RISK)),
])
def test_v2_reasons(st: str, trv: str, star: bool, reasons: tuple[Reason, ...]) -> None:
    verdict = VERIFIER.verify(token_v2(st, trv, star=star), now=NOW)
    assert verdict.valid and verdict.reasons == reasons


def test_v2_unbound_and_stale() -> None:
    unbound = VERIFIER.verify(token_v2(hpr=None), now=NOW)
    assert unbound.valid and unbound.health is not None and unbound.health.hpr is None
    stale = VERIFIER.verify(token_v2(age=900), now=NOW)
    assert stale.reasons == (Reason.HEALTH_CODE_EXPIRED,)


def test_v1_token_still_verifies_without_a_travel_card() -> None:
    verdict = VERIFIER.verify(token(), now=NOW)
    assert verdict.valid and verdict.health is not None
    assert (verdict.health.travel, verdict.health.star, verdict.health.hpr) == (None, None, None)
    assert json.loads(b64u_decode(token().split(".")[1]))["v"] == 1


@pytest.mark.parametrize("payload", [
    {"v": 1, "idh": None, "trv": "green"},  # a v1 token may not carry v2 fields
    {"v": 1, "idh": None, "hpr": None},
    {"v": 2, "trv": "green", "star": False},  # hpr missing
    {"v": 2, "trv": "green", "hpr": HPR},  # star missing
    {"v": 2, "trv": None, "star": False, "hpr": HPR},
    {"v": 2, "trv": "blue", "star": False, "hpr": HPR},
    {"v": 2, "trv": "green", "star": 1, "hpr": HPR},  # strict: not a bool
    {"v": 2, "trv": "green", "star": False, "hpr": "short"},
    {"v": 2, "trv": "green", "star": False, "hpr": HPR, "idh": IDH},  # v2 has no idh
    {"v": 3, "trv": "green", "star": False, "hpr": HPR},
])
def test_genuinely_signed_but_malformed_versions_are_invalid(payload: dict[str, Any]) -> None:
    verdict = VERIFIER.verify(raw_token(payload), now=NOW)
    assert not verdict.valid and verdict.reasons == (Reason.HEALTH_CODE_INVALID,)


def test_issue_token_v2_refusals() -> None:
    with pytest.raises(ValueError, match="hpr, not idh"):
        issue_token(AUTHORITY, None, st="green", idh=IDH, iat=T, exp=T + 60, trv="green")
    with pytest.raises(ValueError, match="need a travel status"):
        issue_token(AUTHORITY, None, st="green", idh=None, iat=T, exp=T + 60, star=True)
    with pytest.raises(ValueError):
        issue_token(AUTHORITY, None, st="green", idh=None, iat=T, exp=T + 60, trv="purple")


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(["green", "yellow", "red"]), st.sampled_from(["green", "yellow", "red"]),
       st.booleans(), st.none() | st.from_regex(r"[A-Za-z0-9_-]{8,128}", fullmatch=True))
def test_any_v2_token_round_trips(status: str, trv: str, star: bool, hpr: str | None) -> None:
    verdict = VERIFIER.verify(token_v2(status, trv, star=star, hpr=hpr), now=NOW)
    assert verdict.valid and verdict.health is not None
    assert (verdict.health.status, verdict.health.travel, verdict.health.star, verdict.health.hpr) == (
        status, trv, star, hpr)
