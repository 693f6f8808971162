"""Command vetting: what the kiosk refuses before any handler runs, and why."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from kiosk.mqtt.commands import MAX_COMMAND, CommandRefused, vet_command

NOW = datetime(2026, 3, 19, 7, 2, 11, tzinfo=UTC)


def payload(by: str = "office", age: timedelta = timedelta(0)) -> bytes:
    return json.dumps({"by": by, "ts": (NOW - age).strftime("%Y-%m-%dT%H:%M:%S.000Z")}).encode()


def test_a_fresh_command_is_obeyed() -> None:
    command = vet_command("open", payload(age=timedelta(seconds=59)), retained=False, now=NOW, max_age_s=60)
    assert command.by == "office" and command.ts == NOW - timedelta(seconds=59)


@pytest.mark.parametrize(
    ("data", "retained", "why"),
    [
        (payload(), True, "retained"),
        (b"{not json", False, "malformed"),
        (json.dumps({"by": "x", "ts": "yesterday"}).encode(), False, "malformed"),
        (json.dumps({"by": "x", "ts": "2026-03-19T07:02:11.000Z", "open": 1}).encode(), False, "malformed"),
        (payload(by="x" * MAX_COMMAND), False, f"{len(payload(by='x' * MAX_COMMAND))} bytes"),
        (payload(age=timedelta(seconds=61)), False, "61 s old"),
        (payload(age=timedelta(seconds=-61)), False, "-61 s old"),  # from the future: a wrong clock
    ],
)
def test_refused(data: bytes, retained: bool, why: str) -> None:
    with pytest.raises(CommandRefused, match=why):
        vet_command("open", data, retained=retained, now=NOW, max_age_s=60)


def test_an_unsynced_clock_skips_the_age_check() -> None:
    command = vet_command("open", payload(age=timedelta(days=3)), retained=False, now=NOW, max_age_s=None)
    assert command.ts == NOW - timedelta(days=3)


def test_a_long_command_name_is_cut_in_the_message() -> None:
    with pytest.raises(CommandRefused) as refused:
        vet_command("x" * 500, b"", retained=False, now=NOW, max_age_s=60)
    assert "x" * 64 in str(refused.value) and "x" * 65 not in str(refused.value)
