"""The forgery watch on verdicts from the real verifier: forged codes and guessed ID numbers count."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from checkpoint import idnumber
from checkpoint.residents import Registry, Resident
from kiosk.credentials.verdict import Verdict
from kiosk.credentials.verify import CredentialVerifier
from kiosk.session.forgery import ForgeryWatch

KEY = b"site key for the forgery tests"
NOW = datetime(2026, 11, 23, 1, 0, tzinfo=UTC)
REGISTERED = "11010519491231002X"
LIMIT, WINDOW_S = 3, 60.0


def with_check(first17: str) -> str:
    return first17 + idnumber.check_char(first17)


# Well-formed numbers of people nobody registered: what someone guessing at the gate types.
GUESSES = [with_check(f"3101041985071500{n}") for n in range(LIMIT + 1)]


@pytest.fixture
def verifier(tmp_path: Path) -> Iterator[CredentialVerifier]:
    registry = Registry(tmp_path / "registry.sqlite")
    number = idnumber.parse(REGISTERED)
    registry.upsert([Resident(number.person_ref(KEY), number.masked, "9-23-301")])
    with CredentialVerifier(registry=registry, site_key=KEY) as made:
        yield made


def verdict(verifier: CredentialVerifier, text: str) -> Verdict:
    return verifier.verify(text, now=NOW)


def test_guessed_id_numbers_raise_the_alert_at_the_limit(verifier: CredentialVerifier) -> None:
    watch = ForgeryWatch(limit=LIMIT, window_s=WINDOW_S)
    verdicts = [verdict(verifier, text) for text in GUESSES]
    assert {(v.kind, v.reasons) for v in verdicts} == {("id_number", ("no_pass",))}
    alerts = [watch.count(v, float(t)) for t, v in enumerate(verdicts)]
    assert alerts[:LIMIT - 1] == [None] * (LIMIT - 1) and not alerts[LIMIT:][0]
    alert = alerts[LIMIT - 1]
    assert alert is not None and "id_number no_pass" in alert
    assert watch.under_attack
    assert all(text not in alert for text in GUESSES)


def test_guesses_and_bad_check_digits_count_together(verifier: CredentialVerifier) -> None:
    watch = ForgeryWatch(limit=LIMIT, window_s=WINDOW_S)
    bad_check = REGISTERED[:17] + ("0" if REGISTERED[17] != "0" else "1")
    assert verdict(verifier, bad_check).reasons == ("pass_invalid",)
    shown = [bad_check, GUESSES[0], GUESSES[1]]
    assert [watch.count(verdict(verifier, text), float(t)) is not None for t, text in enumerate(shown)] == [
        False, False, True]


def test_a_registered_number_and_unknown_codes_do_not_count(verifier: CredentialVerifier) -> None:
    watch = ForgeryWatch(limit=2, window_s=WINDOW_S)
    registered = verdict(verifier, REGISTERED)
    assert registered.valid and registered.reasons == ()
    menus = [verdict(verifier, f"https://example.com/menu?table={i}") for i in range(3)]
    assert {v.reasons for v in menus} == {("unknown_code",)}
    for t, seen in enumerate([registered, *menus, registered]):
        assert watch.count(seen, float(t)) is None
    assert not watch.under_attack


def test_guesses_outside_the_window_do_not_add_up(verifier: CredentialVerifier) -> None:
    watch = ForgeryWatch(limit=LIMIT, window_s=WINDOW_S)
    times = [0.0, WINDOW_S + 1, 2 * WINDOW_S + 2, 3 * WINDOW_S + 3]
    assert [watch.count(verdict(verifier, text), t) for text, t in zip(GUESSES, times, strict=True)] == [
        None] * len(times)
    assert not watch.under_attack
