"""Issue 15 end to end: the travel card and a borrowed health code through the simulated gate, its voice,
its forgery alert at the office, the stored entry's travel status, and the built-in scenario's outcome."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from checkpoint.reasons import Reason
from kiosk.cli import main as cli
from kiosk.config import load_embedded
from kiosk.hardware import Emulation
from kiosk.prompts import DEFAULT_PROMPTS
from kiosk.sim.scenario import load_scenario, parse_scenario
from kiosk.sim.simulate import run_simulation
from office.store.opening import open_store

SCENARIO = Path(__file__).parent / "scenarios" / "travel_checks.toml"


def test_travel_and_borrowed_codes_through_the_gate(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    emulation = Emulation(realtime_camera=False)
    assert run_simulation(load_embedded(), load_scenario(SCENARIO), emulation=emulation,
                          state_dir=tmp_path) == 0
    out = capsys.readouterr().out
    assert "0 mismatches" in out
    assert "行程卡 travel cards checked 4 · 行程卡异常 travel_risk 2" in out  # the v1 code carries none
    said = emulation.sink.said()
    assert {"travel_risk", "health_code_not_holder", "no_travel_code"} <= set(said)
    assert DEFAULT_PROMPTS["travel_risk"] == "行程卡异常，请配合工作人员"
    with open_store("sqlite", path=tmp_path / "office.sqlite") as store:
        # entries carry the virtual time; alerts are stamped by the outbox's wall clock
        start, end = datetime(2026, 11, 22, tzinfo=UTC), datetime(2026, 11, 24, tzinfo=UTC)
        now = datetime.now(UTC)
        alert_window = (min(start, now - timedelta(days=1)), max(end, now + timedelta(days=1)))
        deadline = time.monotonic() + 10
        forgeries: list[str] = []
        while time.monotonic() < deadline and len(forgeries) < 2:
            forgeries = [a.alert.detail for a in store.alerts_between(*alert_window)
                         if a.alert.kind == "forgery"]
            time.sleep(0.05)
        assert len(forgeries) == 2 and all("health_code_not_holder" in d for d in forgeries)
        entries = store.entries_between(start, end)
    travel = [(e.health.travel, e.health.star) for e in entries if e.health is not None]
    assert travel == [("green", True), ("green", False), (None, None), ("yellow", False), ("green", False)]


def test_scenario_star_needs_travel() -> None:
    with pytest.raises(Exception, match="star needs travel"):
        parse_scenario("start = 2026-11-23T09:00:00+08:00\n[[person]]\nat_s = 0\n"
                       "health = { star = true }\n")


def test_builtin_scenario_shows_the_travel_card_and_a_borrowed_code(
        capsys: pytest.CaptureFixture[str]) -> None:
    scenario = load_scenario(None)
    assert "travel" in scenario.policy["require"]
    expected = {p.label: (p.expect, p.expect_reasons) for p in scenario.person}
    assert ("attention", [Reason.TRAVEL_RISK]) in expected.values()
    assert ("deny", [Reason.HEALTH_CODE_NOT_HOLDER]) in expected.values()
    assert any(p.health is not None and p.health.star for p in scenario.person)
    assert any(p.health is not None and p.health.borrowed for p in scenario.person)
    assert cli.main(["simulate"]) == 0
    out = capsys.readouterr().out
    assert "0 mismatches" in out
    for line in ("travel_risk", "health_code_not_holder", "no_travel_code"):
        assert f"{line}  " in out or f"{line} " in out
