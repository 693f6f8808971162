"""Signed commands (CKC1): what the kiosk refuses before any handler runs, and why; replays, unsynced."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from checkpoint.commands import issue_command
from checkpoint.keys import KeyRing, kid_for
from kiosk.mqtt.commands import MAX_COMMAND, CommandCheck, CommandRefused, vet_command
from kiosk.mqtt.nonces import NonceStore

NOW = datetime(2026, 12, 4, 7, 2, 11, tzinfo=UTC)
OPERATOR = Ed25519PrivateKey.generate()
ENTRY = "01890a5d-ac96-774b-bcce-b302099a8057"


class Clock:
    def __init__(self, now: datetime, *, synced: bool = True) -> None:
        self.at, self.is_synced = now, synced

    def now(self) -> datetime:
        return self.at

    def synced(self) -> bool:
        return self.is_synced


@pytest.fixture
def nonces(tmp_path: Path) -> Iterator[NonceStore]:
    with NonceStore(tmp_path / "commands.sqlite") as store:
        yield store


def check_for(nonces: NonceStore, clock: Clock, kiosk: str = "gate-north") -> CommandCheck:
    return CommandCheck(keys=KeyRing.of(OPERATOR.public_key()), site="s1", kiosk=kiosk, nonces=nonces,
                        now=clock.now, synced=clock.synced)


def command(cmd: str = "open", *, kiosk: str = "gate-north", at: datetime = NOW,
            key: Ed25519PrivateKey = OPERATOR, kid: str | None = None, entry: str | None = ENTRY,
            validity_s: int = 60) -> bytes:
    return issue_command(key, kid, site="s1", kiosk=kiosk, cmd=cmd, op="wang", now=at, entry=entry,
                         validity_s=validity_s).encode()


def test_a_signed_command_for_this_kiosk_is_obeyed_once(nonces: NonceStore) -> None:
    check = check_for(nonces, Clock(NOW + timedelta(seconds=5)))
    data = command()
    obeyed = vet_command("open", data, retained=False, check=check)
    assert (obeyed.op, obeyed.entry, obeyed.cmd) == ("wang", ENTRY, "open")
    with pytest.raises(CommandRefused, match="a replay"):
        vet_command("open", data, retained=False, check=check)


@pytest.mark.parametrize(
    ("name", "data", "retained", "why"),
    [
        ("open", command(), True, "retained"),
        ("open", b"{not a command", False, "malformed|expected|prefix|CKC1"),
        ("open", b"x" * (MAX_COMMAND + 1), False, f"{MAX_COMMAND + 1} bytes"),
        ("open", command(kiosk="gate-south"), False, "for s1/gate-south"),
        ("reload", command("open"), False, "signed as 'open'"),
        ("open", command(key=Ed25519PrivateKey.generate()), False, "unknown kid"),
        ("open", command(key=Ed25519PrivateKey.generate(), kid=kid_for(OPERATOR.public_key())), False,
         "signature"),
        ("open", command(at=NOW - timedelta(seconds=120)), False, "expired 60 s ago"),
        ("open", command(at=NOW + timedelta(seconds=300)), False, "ahead"),
        ("open", b"\xff\xfe", False, "not ASCII"),
    ],
)
def test_refused(nonces: NonceStore, name: str, data: bytes, retained: bool, why: str) -> None:
    with pytest.raises(CommandRefused, match=why):
        vet_command(name, data, retained=retained, check=check_for(nonces, Clock(NOW)))


def test_a_replay_is_refused_across_a_restart_with_an_unsynced_clock_that_went_back(tmp_path: Path) -> None:
    """Issue 12, finding 5: without a synced clock, a captured open was obeyed again."""
    data = command(validity_s=300)
    with NonceStore(tmp_path / "commands.sqlite") as nonces:
        vet_command("open", data, retained=False, check=check_for(nonces, Clock(NOW)))
    # A reboot without network: the clock comes back behind (the last saved trusted time).
    behind = Clock(NOW - timedelta(minutes=10), synced=False)
    with NonceStore(tmp_path / "commands.sqlite") as nonces:
        with pytest.raises(CommandRefused, match="a replay"):
            vet_command("open", data, retained=False, check=check_for(nonces, behind))
        # Much later, the nonce is forgotten, but the command has expired by a floor that never went back.
        later = Clock(NOW + timedelta(hours=1))
        vet_command("ping", command("ping", at=NOW + timedelta(hours=1), entry=None), retained=False,
                    check=check_for(nonces, later))
        with pytest.raises(CommandRefused, match="expired"):
            vet_command("open", data, retained=False, check=check_for(nonces, Clock(NOW, synced=False)))


def test_an_unsynced_clock_does_not_refuse_a_fresh_command_from_a_correct_office(nonces: NonceStore) -> None:
    behind = Clock(NOW - timedelta(minutes=30), synced=False)  # the kiosk thinks it is earlier
    assert vet_command("open", command(), retained=False, check=check_for(nonces, behind)).op == "wang"


def test_the_floor_never_goes_back(nonces: NonceStore) -> None:
    assert nonces.advance(1000.0) == 1000.0
    assert nonces.advance(900.0) == 1000.0
    assert nonces.claim("n" * 20, 1100) and not nonces.claim("n" * 20, 1100)
    assert nonces.advance(1200.0) == 1200.0
    assert nonces.claim("n" * 20, 1300), "an expired nonce is forgotten once the floor passed its exp"


def test_only_open_names_an_entry() -> None:
    with pytest.raises(ValueError, match="only an open names an entry"):
        command("reload", entry=ENTRY)
