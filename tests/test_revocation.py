"""Signed revocation lists (CKR1): serial replay protection, site binding and persistence."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from checkpoint.keys import KeyRing
from checkpoint.passes import issue_pass
from checkpoint.reasons import Reason
from checkpoint.revocation import issue_revocation
from kiosk.credentials.passes import PassVerifier
from kiosk.credentials.revocation import RevocationList

NOW = datetime(2026, 3, 19, 7, 0, tzinfo=UTC)
T = int(NOW.timestamp())
OFFICE = Ed25519PrivateKey.generate()
RING = KeyRing.of(OFFICE.public_key())


def listing(serial: int, *pids: str, site: str = "s1", key: Ed25519PrivateKey = OFFICE) -> str:
    return issue_revocation(key, None, site=site, serial=serial, iat=T, revoked=pids)


def test_accepted_list_revokes_passes_live() -> None:
    revocations = RevocationList(RING, site="s1")
    verifier = PassVerifier(RING, revoked=revocations.revoked)
    text = issue_pass(OFFICE, None, pid="P-00017", cat="green", hh=None, name="", idh="ab" * 32,
                      nbf=T - 9, exp=T + 9)
    assert verifier.verify(text, now=NOW).valid and revocations.serial is None
    outcome = revocations.offer(listing(1, "P-00017", "P-00020"))
    assert outcome.accepted and revocations.serial == 1
    assert revocations.revoked() == frozenset({"P-00017", "P-00020"})
    assert verifier.verify(text, now=NOW).reasons == (Reason.PASS_REVOKED,)
    assert revocations.offer(listing(2)).accepted and revocations.revoked() == frozenset()
    assert verifier.verify(text, now=NOW).valid


def test_replayed_older_serial_is_refused() -> None:
    revocations = RevocationList(RING, site="s1")
    old = listing(5)
    assert revocations.offer(old).accepted
    assert revocations.offer(listing(6, "P-1")).accepted
    outcome = revocations.offer(old)
    assert not outcome.accepted and "replay" in outcome.detail
    assert revocations.serial == 6 and revocations.revoked() == frozenset({"P-1"})


def test_same_serial_again_is_harmless_but_a_different_list_with_it_is_refused() -> None:
    revocations = RevocationList(RING, site="s1")
    current = listing(3, "P-1")
    assert revocations.offer(current).accepted
    again = revocations.offer(current.encode() + b"\n")  # the retained message, redelivered
    assert not again.accepted and "already held" in again.detail
    conflict = revocations.offer(listing(3, "P-2"))
    assert not conflict.accepted and revocations.revoked() == frozenset({"P-1"})


@pytest.mark.parametrize("text", [
    listing(9, "P-1", site="s2"),
    listing(9, "P-1", key=Ed25519PrivateKey.generate()),
    b"\xff\xfe garbage",
    b"",
    "CKR1.e30.AA",
    issue_pass(OFFICE, None, pid="P-1", cat="red", hh=None, name="", idh="ab" * 32, nbf=1, exp=2),
])
def test_bad_lists_are_refused_without_raising(text: str | bytes) -> None:
    revocations = RevocationList(RING, site="s1")
    assert revocations.offer(listing(1, "P-9")).accepted
    outcome = revocations.offer(text)
    assert not outcome.accepted and outcome.detail
    assert revocations.serial == 1 and revocations.revoked() == frozenset({"P-9"})


def test_issue_revocation_sorts_and_deduplicates_and_validates() -> None:
    revocations = RevocationList(RING, site="s1")
    assert revocations.offer(issue_revocation(OFFICE, None, site="s1", serial=1, iat=NOW,
                                              revoked=["P-2", "P-1", "P-2"])).accepted
    assert revocations.revoked() == frozenset({"P-1", "P-2"})
    for bad in ({"site": "s 1"}, {"serial": -1}, {"revoked": ["../x"]}):
        args = {"site": "s1", "serial": 1, "revoked": ["P-1"]} | bad
        with pytest.raises(ValueError):
            issue_revocation(OFFICE, None, iat=T, **args)  # type: ignore[arg-type]


def test_accepted_list_persists_across_restart(tmp_path: Path) -> None:
    path = tmp_path / "state" / "revocations.txt"
    first = RevocationList(RING, site="s1", path=path)
    older = listing(10, "P-1")
    assert first.offer(older).accepted and first.offer(listing(11, "P-1", "P-2")).accepted
    assert path.read_text().strip() == first.text
    assert [p.name for p in path.parent.iterdir()] == ["revocations.txt"]  # no temporary file left
    restarted = RevocationList(RING, site="s1", path=path)
    assert restarted.serial == 11 and restarted.revoked() == frozenset({"P-1", "P-2"})
    assert not restarted.offer(older).accepted and restarted.serial == 11


def test_tampered_or_foreign_saved_list_is_ignored_at_start(tmp_path: Path,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "revocations.txt"
    text = listing(4, "P-1")
    prefix, _, signature = text.split(".")
    path.write_text(f"{prefix}.{listing(4, 'P-2').split('.')[1]}.{signature}\n")
    with caplog.at_level(logging.ERROR):
        tampered = RevocationList(RING, site="s1", path=path)
    assert tampered.serial is None and tampered.revoked() == frozenset() and "ignored" in caplog.text
    path.write_text(text)
    assert RevocationList(RING, site="s2", path=path).serial is None
    stranger = KeyRing.of(Ed25519PrivateKey.generate().public_key())
    assert RevocationList(stranger, site="s1", path=path).serial is None
    assert RevocationList(RING, site="s1", path=path).serial == 4


def test_save_failure_still_applies_the_list(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    revocations = RevocationList(RING, site="s1", path=blocker / "revocations.txt")
    outcome = revocations.offer(listing(1, "P-1"))
    assert outcome.accepted and "not saved" in outcome.detail and revocations.revoked() == frozenset({"P-1"})
