"""`kiosk simulate`: the built-in scenario end to end, the scenario contract and its errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from checkpoint.tomlconfig import ConfigError
from kiosk.cli import main as cli
from kiosk.config import load_embedded
from kiosk.hardware import Emulation
from kiosk.sim.scenario import load_scenario, parse_scenario
from kiosk.sim.simulate import run_simulation


def test_builtin_scenario_meets_every_expectation(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["simulate", "--json"]) == 0
    captured = capsys.readouterr()
    people = [json.loads(line) for line in captured.out.splitlines()]
    scenario = load_scenario(None)
    assert [p["person"] for p in people] == list(range(1, len(scenario.person) + 1))
    for person, spec in zip(people, scenario.person, strict=True):
        assert person["decision"] == spec.expect, (spec.label, person)
        assert person["problems"] == []
    seqs = [p["seq"] for p in people]
    assert seqs == list(range(1, len(people) + 1))
    assert len({p["entry_id"] for p in people}) == len(people)
    assert "broker acknowledged every entry" in captured.err
    decisions = {p["decision"] for p in people}
    assert decisions == {"allow", "deny", "attention"}


def test_a_wrong_expectation_is_reported_and_fails(capsys: pytest.CaptureFixture[str]) -> None:
    scenario = parse_scenario("""
start = 2026-11-23T09:00:00+08:00
[[person]]
at_s = 0
pass = { cat = "green", hh = "1-1-1" }
health = { status = "red" }
expect = "allow"
""")
    emulation = Emulation(realtime_camera=False)
    assert run_simulation(load_embedded(), scenario, emulation=emulation) == 1
    out = capsys.readouterr().out
    assert "MISMATCH: expected allow, got deny" in out
    assert "health_code_red" in out
    said = emulation.sink.said()
    assert said[0] == "greet" and said[-1] == "health_code_red"


def test_policy_overrides_and_codes_together(capsys: pytest.CaptureFixture[str]) -> None:
    scenario = parse_scenario("""
start = 2026-11-23T09:00:00+08:00
[policy]
require = ["health"]
[[person]]
at_s = 0
health = { status = "yellow" }
expect = "attention"
expect_reasons = ["health_code_yellow"]
[[person]]
at_s = 120
health = { status = "green" }
pass = { cat = "blue", hh = "1-1-1", revoked = true }
together = true
expect = "allow"
""")
    assert run_simulation(load_embedded(), scenario) == 0


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("start = 2026-11-23T09:00:00+08:00\n[[person]]\nat_s = -1\nhealth = {}\n", "person.0.at_s (line 3)"),
        ("start = 2026-11-23T09:00:00+08:00\n[[person]]\nat_s = 0\nhealht = {}\n", "unknown key 'healht'"),
        ("start = 2026-11-23T09:00:00\n[[person]]\nat_s = 0\nhealth = {}\n", "UTC offset"),
        ("start = 2026-11-23T09:00:00+08:00\n[policy]\nfever_threshold_c = 50\n[[person]]\nat_s = 0\n"
         "health = {}\n", "policy.fever_threshold_c"),
        ("start = 2026-11-23T09:00:00+08:00\n[[person]]\nat_s = 0\n", "at least one of"),
    ],
)
def test_scenario_errors_name_the_key(text: str, needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_scenario(text)
    assert needle in "\n".join(info.value.problems)


def test_cli_reports_a_bad_scenario_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "s.toml"
    bad.write_text("start = 1\n")
    assert cli.main(["simulate", "--scenario", str(bad)]) == 2
    assert str(bad) in capsys.readouterr().err


def test_simulation_with_the_collector_prints_the_days_report(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["simulate"]) == 0
    out = capsys.readouterr().out
    people = len(load_scenario(None).person)
    assert f"collector: {people} of {people} entries stored" in out
    assert "日报告 Daily report · 2026-11-23" in out
    assert f"出入 entries {people} " in out
    # The attention staff opened by hand is one person (one entry) and one override (its resolution).
    assert "人工开门 manual overrides: 工作人员 staff 1 · 远程 remote 0" in out


SCENARIOS = Path(__file__).parent / "scenarios"


@pytest.mark.parametrize("name", ["yellow_then_queue", "morning_rush"])
def test_a_queue_behind_an_open_attention_is_served_person_by_person(
        name: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 12, finding 1: with no staff coming, the people behind an attention still get their own
    decisions (before: the next ones were 'abandoned', and the attention's verdict landed on a later one)."""
    scenario = load_scenario(SCENARIOS / f"{name}.toml")
    assert cli.main(["simulate", "--json", "--scenario", str(SCENARIOS / f"{name}.toml")]) == 0
    captured = capsys.readouterr()
    people = [json.loads(line) for line in captured.out.splitlines()]
    assert [p["decision"] for p in people] == [spec.expect for spec in scenario.person]
    assert [p["reasons"] for p in people] == [[str(r) for r in spec.expect_reasons or []]
                                              for spec in scenario.person]
    attention = [p for p in people if p["decision"] == "attention"]
    assert len(attention) == 1 and attention[0]["resolution"] == "timeout"
    assert attention[0]["override"] is None
    assert [p["seq"] for p in people] == list(range(1, len(people) + 1))
    assert f"{len(people)} people, {len(people)} entries, 0 abandoned, 0 mismatches" in captured.err


def test_the_summary_counts_the_people_nobody_served(capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 12, finding 3: the summary said '0 abandoned' above lines that said 'abandoned'. The second
    person shows the codes while the gate still stands open for the first: they are dropped, never carried
    into a later session, and the person is asked to wait."""
    scenario = parse_scenario("""
start = 2026-11-23T09:00:00+08:00
[[person]]
at_s = 0
pass = { cat = "green", hh = "1-1-1" }
health = { status = "green" }
together = true
skin_c = 34.4
ambient_c = 22.0
[[person]]
at_s = 1.2
pass = { cat = "green", hh = "1-1-2" }
health = { status = "green" }
together = true
skin_c = 34.4
ambient_c = 22.0
""")
    emulation = Emulation(realtime_camera=False)
    assert run_simulation(load_embedded(), scenario, emulation=emulation) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[1] == "allow" and lines[1].split()[1] == "abandoned"
    assert "2 people, 1 entries, 1 abandoned, 0 mismatches" in lines[2]
    assert emulation.sink.said().count("wait") == 1


def test_the_demo_prints_no_traceback(capfd: pytest.CaptureFixture[str]) -> None:
    """Issue 12, finding 4: the publisher asked for the lane's state before the lane existed."""
    assert cli.main(["simulate"]) == 0
    captured = capfd.readouterr()
    assert "Traceback" not in captured.out + captured.err
    assert "status provider failed" not in captured.out + captured.err
