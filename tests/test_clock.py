"""Trusted time on a Pi without a battery-backed clock, and the simulator's virtual clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from kiosk import clock as clock_module
from kiosk.clock import CLOCK_FLOOR, SystemClock, VirtualClock

EPOCH = datetime(1970, 1, 1, 0, 0, 42, tzinfo=UTC)


def test_a_1970_clock_is_never_trusted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(clock_module, "kernel_says_synced", lambda: True)
    system = SystemClock(wall=lambda: EPOCH)
    assert not system.synced()
    assert system.now() == CLOCK_FLOOR


def test_unsynced_time_runs_on_from_the_last_trusted_time(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    anchor = tmp_path / "trusted-time"
    trusted = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)
    anchor.write_text(trusted.isoformat())
    monkeypatch.setattr(clock_module, "kernel_says_synced", lambda: False)
    system = SystemClock(anchor_file=anchor, wall=lambda: EPOCH)
    now = system.now()
    assert not system.synced()
    assert trusted <= now < trusted + timedelta(seconds=5)


def test_synced_time_is_used_and_remembered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    anchor = tmp_path / "trusted-time"
    wall = datetime(2026, 11, 23, 9, 30, tzinfo=UTC)
    monkeypatch.setattr(clock_module, "kernel_says_synced", lambda: True)
    system = SystemClock(anchor_file=anchor, wall=lambda: wall)
    assert system.synced() and system.now() == wall
    assert datetime.fromisoformat(anchor.read_text()) == wall
    monkeypatch.setattr(clock_module, "kernel_says_synced", lambda: False)
    assert wall <= system.now() < wall + timedelta(seconds=5)  # sync lost: runs on from the anchor


def test_kernel_sync_query_answers_or_says_it_cannot() -> None:
    assert clock_module.kernel_says_synced() in (True, False, None)


def test_virtual_clock_jumps_and_never_goes_back() -> None:
    start = datetime(2026, 11, 23, tzinfo=UTC)
    virtual = VirtualClock(start)
    virtual.sleep(3600)
    virtual.advance_to(10)
    assert virtual.monotonic() == 3600 and virtual.now() == start + timedelta(hours=1)
    with pytest.raises(ValueError, match="aware"):
        VirtualClock(datetime(2026, 11, 23))
