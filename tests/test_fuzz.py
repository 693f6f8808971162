"""Bad input never crashes verification: a bounded fuzz run and hypothesis properties."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench import fuzz
from checkpoint.reasons import Reason
from checkpoint.signed import b64u_decode, b64u_encode
from kiosk.credentials.verdict import Verdict


@pytest.fixture(scope="module")
def seeds() -> fuzz.Seeds:
    return fuzz.make_seeds()


def test_seeds_are_valid_and_forgeries_are_refused(seeds: fuzz.Seeds) -> None:
    kinds = set()
    for payload in seeds.payloads:
        verdict = seeds.verifier.verify(payload, now=seeds.now)
        assert verdict.valid, verdict
        kinds.add(verdict.kind)
    assert {"pass", "health_token", "id_number"} <= kinds
    signed = [p for p in seeds.payloads if p[:5] in ("CKP1.", "HCT1.")]
    versions = {json.loads(b64u_decode(p.split(".")[1]))["v"] for p in signed}
    assert versions == {1, 2}
    if fuzz.DCC_DIR.is_dir():
        assert "dcc" in kinds
    for payload in seeds.forged:
        verdict = seeds.verifier.verify(payload, now=seeds.now)
        assert not verdict.valid
        assert set(verdict.reasons) & {Reason.PASS_INVALID, Reason.HEALTH_CODE_INVALID}


def test_short_fuzz_run_has_no_exceptions() -> None:
    tally, errors = fuzz.run(5_000, seed=7)
    assert errors == []
    assert sum(tally.values()) == 5_000
    categories = {key.split(":")[0] for key in tally}
    assert categories == {"mutated", "wrong_signature", "valid", "random"}


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=600), st.binary(max_size=600)))
def test_any_payload_gives_a_typed_verdict(seeds: fuzz.Seeds, payload: str | bytes) -> None:
    verdict = seeds.verifier._verify(payload, seeds.now)
    assert isinstance(verdict, Verdict)
    assert all(isinstance(r, Reason) for r in verdict.reasons)
    assert verdict.valid or verdict.reasons


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_mutated_valid_payloads_give_typed_verdicts(seeds: fuzz.Seeds, data: st.DataObject) -> None:
    payload = data.draw(st.sampled_from(seeds.payloads))
    cut = data.draw(st.integers(0, len(payload)))
    insert = data.draw(st.text(max_size=20))
    verdict = seeds.verifier._verify(payload[:cut] + insert + payload[cut + 1 :], seeds.now)
    assert isinstance(verdict, Verdict)


V2_FIELDS = st.fixed_dictionaries({}, optional={
    "v": st.sampled_from([1, 2, 3, "2", True]),
    "trv": st.sampled_from(["green", "yellow", "red", "blue", None, 1]),
    "star": st.sampled_from([True, False, None, 0, "true"]),
    "hpr": st.one_of(st.none(), st.text(max_size=140),
                     st.from_regex(r"[A-Za-z0-9_-]{8,128}", fullmatch=True)),
    "idh": st.one_of(st.none(), st.just("ab" * 32)),
})


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_v2_fields_under_the_original_signature_give_typed_verdicts(seeds: fuzz.Seeds,
                                                                    data: st.DataObject) -> None:
    """Any v1/v2 field mix re-encoded under a genuine signature is refused, typed, never an exception."""
    payload = data.draw(st.sampled_from([p for p in seeds.payloads if p[:5] in ("CKP1.", "HCT1.")]))
    prefix, body, signature = payload.split(".")
    fields = {**json.loads(b64u_decode(body)), **data.draw(V2_FIELDS)}
    raw = json.dumps(fields).encode()
    tampered = ".".join((prefix, b64u_encode(raw), signature))
    verdict = seeds.verifier._verify(tampered, seeds.now)
    assert isinstance(verdict, Verdict)
    assert verdict.valid == (tampered == payload)
