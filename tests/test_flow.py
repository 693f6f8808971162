"""The gate flow in virtual time, on emulated devices, with a real outbox."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from checkpoint.keys import KeyRing
from drivers.leds import FaultClass, fault_pattern
from kiosk.actuators import Actuators
from kiosk.clock import VirtualClock
from kiosk.config import KioskConfig, load_embedded
from kiosk.credentials.health_token import HealthTokenVerifier
from kiosk.credentials.passes import PassVerifier
from kiosk.credentials.verify import CredentialVerifier
from kiosk.hardware import Emulation, Hardware
from kiosk.outbox import Outbox
from kiosk.recorder import OutboxRecorder
from kiosk.scanner import Code
from kiosk.session.events import CodesSeen, Motion, RemoteOpen, Result, StaffAck, StaffHold
from kiosk.session.lane import Lane
from kiosk.sim.issuer import Issuer
from kiosk.sim.scenario import HealthSpec, PassSpec, Person

START = datetime(2026, 11, 23, 1, 0, tzinfo=UTC)  # 09:00 in Shanghai


@dataclass
class Rig:
    gate: Lane
    clock: VirtualClock
    hw: Hardware
    outbox: Outbox
    issuer: Issuer
    results: list[Result]

    @property
    def chip(self) -> Any:
        assert self.hw.emulation is not None
        return self.hw.emulation.chip

    def relay_levels(self) -> list[bool]:
        assert self.hw.emulation is not None
        pin = self.hw.emulation.pin_factory.pin(self.hw.config.gate.relay_pin)
        return [bool(s.state) for s in pin.states]

    def relay_energised(self) -> bool:
        """The board is active-low in the embedded config: energised means the pin went low once claimed."""
        return any(not level for level in self.relay_levels()[1:])  # [0] is the unclaimed mock pin

    def show(self, *texts: str) -> None:
        codes = tuple(Code(t.encode(), t, "zxing") for t in texts)
        self.gate.submit(CodesSeen(codes, 1.0))
        self.gate.drain()

    def run_for(self, seconds: float) -> None:
        end = self.clock.monotonic() + seconds
        while True:
            deadline = self.gate.next_deadline()
            if deadline is None or deadline > end:
                break
            self.clock.advance_to(deadline)
            self.gate.step(None)
        self.clock.advance_to(end)
        self.gate.step(None)

    def visit(self, person: Person, index: int = 1) -> None:
        self.chip.object_c = person.skin_c
        self.gate.submit(Motion())
        self.gate.drain()
        self.show(*self.issuer.codes(index, person, self.clock.now()))

    def entries(self) -> list[dict[str, Any]]:
        db = sqlite3.connect(self.outbox.path)
        try:
            rows = db.execute("SELECT payload FROM outbox WHERE kind = 'entry' ORDER BY seq").fetchall()
        finally:
            db.close()
        return [json.loads(r[0]) for r in rows]

    def alerts(self) -> list[dict[str, Any]]:
        return self._rows("alert")

    def resolutions(self) -> list[dict[str, Any]]:
        return self._rows("resolution")

    def _rows(self, kind: str) -> list[dict[str, Any]]:
        db = sqlite3.connect(self.outbox.path)
        try:
            rows = db.execute("SELECT payload FROM outbox WHERE kind = ? ORDER BY num", (kind,)).fetchall()
        finally:
            db.close()
        return [json.loads(r[0]) for r in rows]


@contextmanager
def make_rig(tmp_path: Path, config: KioskConfig | None = None, *, synced: bool = True) -> Iterator[Rig]:
    config = config or load_embedded()
    clock = VirtualClock(START)
    if not synced:
        clock.synced = lambda: False  # type: ignore[method-assign]
    issuer = Issuer()
    hw = Hardware(config, emulation=Emulation(realtime_camera=False))
    outbox = Outbox(tmp_path / "outbox.sqlite", site=config.site.id, kiosk=config.site.kiosk)
    verifier = CredentialVerifier(
        passes=PassVerifier(KeyRing.of(issuer.office.public_key())),
        token=HealthTokenVerifier(KeyRing.of(issuer.health.public_key())),
    )
    results: list[Result] = []
    with hw.relay() as relay, hw.leds() as leds, hw.thermometer() as sensor:
        gate = Lane(config, actuators=Actuators(relay=relay, leds=leds, voice=None, relay_pulse_s=0.2),
                    read_thermometer=sensor.read, verifier=verifier, recorder=OutboxRecorder(outbox, None),
                    clock=clock, on_result=results.append)
        yield Rig(gate, clock, hw, outbox, issuer, results)
    outbox.close()


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    with make_rig(tmp_path) as made:
        yield made


RESIDENT = Person(at_s=0, pass_=PassSpec(cat="green", hh="9-23-301"), health=HealthSpec(status="green"),
                  skin_c=34.4, ambient_c=21.31)


def test_resident_is_allowed_and_the_entry_is_committed_before_the_relay_moves(rig: Rig) -> None:
    committed_with_relay: list[bool] = []
    record = rig.gate.recorder.record

    def spy(fields: dict[str, Any], *, attention: bool = False) -> str:
        committed_with_relay.append(rig.relay_energised())
        return record(fields, attention=attention)

    rig.gate.recorder.record = spy  # type: ignore[method-assign]
    rig.visit(RESIDENT)
    assert [r.decision for r in rig.results] == ["allow"]
    assert committed_with_relay == [False]
    assert rig.relay_energised()
    entry = rig.entries()[0]
    assert entry["decision"] == "allow" and entry["seq"] == 1 and entry["pass"]["hh"] == "9-23-301"
    assert 36.0 < entry["temperature"]["body_c"] < 37.3 and entry["temperature"]["samples"] >= 3
    assert entry["health"] == {"scheme": "token", "status": "green"}
    assert entry["clock_unsynced"] is False


def test_abandoned_session_is_counted_and_records_nothing(rig: Rig) -> None:
    rig.gate.submit(Motion())
    rig.gate.drain()
    states = [rig.gate.state]
    rig.run_for(rig.gate.config.policy.session_timeout_s + 1)
    states.append(rig.gate.state)
    assert states == ["collecting", "idle"] and rig.gate.abandoned == 1
    assert rig.entries() == [] and not rig.relay_energised()


def test_thermometer_fault_means_attention_never_allow(rig: Rig) -> None:
    rig.chip.inject_nack(10_000)
    rig.visit(RESIDENT)
    assert rig.gate.state == "hold" and [r.decision for r in rig.results] == ["attention"]
    assert rig.hw.emulation is not None
    leds = rig.gate.act.leds
    assert leds.pattern == "attention"
    entry = rig.entries()[0]
    assert entry["decision"] == "attention" and entry["reasons"] == ["sensor_fault"]
    rig.run_for(rig.gate.config.gate.attention_timeout_s + rig.gate.config.gate.deny_hold_s + 1)
    assert [(r["entry_id"], r["by"], r["opened"]) for r in rig.resolutions()] == [
        (entry["id"], "timeout", False)]
    assert not rig.relay_energised(), "a thermometer fault must keep the gate shut"
    assert leds.pattern == fault_pattern(FaultClass.THERMOMETER)
    assert any(a["kind"] == "fault" for a in rig.alerts())
    rig.chip.inject_nack(0)
    rig.chip.power_cycle()
    rig.run_for(15)
    assert FaultClass.THERMOMETER not in rig.gate.faults
    assert leds.pattern == "idle"


def test_fever_is_recorded_at_once_and_a_staff_hold_resolves_it(rig: Rig) -> None:
    fever = RESIDENT.model_copy(update={"skin_c": 37.0})
    rig.visit(fever)
    assert rig.gate.state == "hold" and not rig.relay_energised()
    entry = rig.entries()[0]  # committed with the decision, before anyone resolves it
    assert (entry["decision"], entry["reasons"], entry["override"]) == ("attention", ["fever"], None)
    assert [(a["kind"], a["entry_id"]) for a in rig.alerts()] == [("fever", entry["id"])]
    assert "household 9-23-301" in rig.alerts()[0]["detail"]
    assert rig.gate.attentions.ids() == [entry["id"]] == rig.outbox.open_attentions()
    rig.gate.submit(StaffHold())
    rig.gate.drain()
    resolutions = [(r["entry_id"], r["by"], r["opened"]) for r in rig.resolutions()]
    assert resolutions == [(entry["id"], "staff", True)]
    assert len(rig.entries()) == 1, "the resolution is a second record, not a second entry"
    assert rig.relay_energised()
    assert not rig.gate.attentions and rig.outbox.open_attentions() == []


def test_staff_acknowledge_keeps_the_gate_shut(rig: Rig) -> None:
    rig.visit(RESIDENT.model_copy(update={"pass_": PassSpec(cat="red", hh="2-4-601")}))
    assert rig.gate.state == "hold"
    rig.gate.submit(StaffAck())
    rig.gate.drain()
    assert rig.entries()[0]["override"] is None and not rig.relay_energised()
    assert [(r["by"], r["opened"]) for r in rig.resolutions()] == [("ack", False)]


def test_staff_hold_in_idle_is_a_recorded_manual_open(rig: Rig) -> None:
    rig.gate.submit(StaffHold())
    rig.gate.drain()
    entry = rig.entries()[0]
    assert (entry["decision"], entry["override"], entry["person"]) == ("allow", "staff", None)
    assert rig.relay_energised()


def test_repeated_forgeries_raise_an_alert_and_slow_answers(rig: Rig) -> None:
    forged = RESIDENT.model_copy(update={"pass_": PassSpec(cat="green", hh="1-1-1", forged=True)})
    limit = rig.gate.config.gate.forgery_limit
    durations = []
    for i in range(limit + 1):
        rig.run_for(5)
        before = rig.clock.monotonic()
        rig.visit(forged, index=i)
        durations.append(rig.clock.monotonic() - before)
    assert [r.reasons for r in rig.results][-1] == ("pass_invalid",)
    assert [a["kind"] for a in rig.alerts()].count("forgery") == 1
    assert durations[-1] >= durations[0] + rig.gate.config.gate.forgery_delay_s - 0.01


def test_greeting_is_rate_limited(tmp_path: Path) -> None:
    config = load_embedded()
    config = config.model_copy(update={"voice": config.voice.model_copy(update={"greet_interval_s": 60.0})})
    with make_rig(tmp_path, config) as rig:
        _greetings(rig, config)


def _greetings(rig: Rig, config: KioskConfig) -> None:
    said: list[str] = []
    rig.gate.act.say = said.append  # type: ignore[method-assign,assignment]
    for _ in range(3):
        rig.gate.submit(Motion())
        rig.gate.drain()
        rig.run_for(config.policy.session_timeout_s + 1)
    assert said.count("greet") == 1
    rig.run_for(config.voice.greet_interval_s)
    rig.gate.submit(Motion())
    rig.gate.drain()
    assert said.count("greet") == 2


def test_entries_before_clock_sync_are_marked(tmp_path: Path) -> None:
    with make_rig(tmp_path, synced=False) as rig:
        rig.visit(RESIDENT)
        assert rig.entries()[0]["clock_unsynced"] is True


def test_unknown_code_alone_does_not_start_a_decision(rig: Rig) -> None:
    rig.show("https://example.com/menu")
    assert rig.results == [] and rig.gate.session is not None
    rig.chip.object_c = RESIDENT.skin_c
    rig.show(*rig.issuer.codes(1, RESIDENT, rig.clock.now()))
    assert rig.results and rig.results[0].decision == "allow"


def test_household_quota_counts_todays_passages(tmp_path: Path) -> None:
    config = load_embedded()
    policy = config.policy.model_copy(
        update={"household": config.policy.household.model_copy(update={"max_exits_per_day": 1})}
    )
    with make_rig(tmp_path, config.model_copy(update={"policy": policy})) as rig:
        rig.visit(RESIDENT, index=1)
        rig.run_for(10)
        rig.visit(RESIDENT, index=2)
        assert [r.decision for r in rig.results] == ["allow", "deny"]
        assert rig.results[1].reasons == ("quota_exceeded",)
        rig.run_for(24 * 3600)  # the next day
        rig.visit(RESIDENT, index=3)
        assert rig.results[2].decision == "allow"


def test_entry_timestamps_are_utc_milliseconds(rig: Rig) -> None:
    rig.run_for(0.25)
    rig.visit(RESIDENT)
    ts = rig.entries()[0]["ts"]
    assert ts.endswith("Z") and len(ts) == len("2026-11-23T01:00:00.000Z")
    assert datetime.fromisoformat(ts) - START < timedelta(seconds=5)


def test_unknown_codes_are_not_counted_as_forgeries(rig: Rig) -> None:
    for i in range(rig.gate.config.gate.forgery_limit + 2):
        rig.show(f"https://example.com/menu?table={i}")
    assert [a["kind"] for a in rig.alerts()] == []


FEVER = RESIDENT.model_copy(update={"skin_c": 37.0})


def _said(rig: Rig) -> list[str]:
    said: list[str] = []
    rig.gate.act.say = said.append  # type: ignore[method-assign,assignment]
    return said


def test_the_lane_serves_the_next_person_while_an_attention_waits(rig: Rig) -> None:
    rig.visit(FEVER, index=1)
    rig.run_for(rig.gate.config.gate.attention_hold_s + 0.1)
    assert rig.gate.state == "idle" and rig.gate.act.leds.pattern == "attention", "amber while one waits"
    rig.visit(RESIDENT, index=2)
    rig.run_for(5)
    assert [r.decision for r in rig.results] == ["attention", "allow"]
    assert [r.session for r in rig.results] == [1, 2]
    assert rig.gate.act.leds.pattern == "attention"
    rig.visit(FEVER, index=3)
    first, _, second = (e["id"] for e in rig.entries())
    rig.gate.submit(StaffHold())  # staff come to the latest
    rig.gate.drain()
    assert [(r["entry_id"], r["by"]) for r in rig.resolutions()] == [(second, "staff")]
    assert rig.gate.attentions.ids() == [first]


def test_a_remote_open_names_its_entry(rig: Rig) -> None:
    rig.visit(FEVER, index=1)
    entry_id = rig.entries()[0]["id"]
    rig.gate.submit(RemoteOpen("op-wang", entry_id="01890a5d-ac96-774b-bcce-b302099a8057"))
    rig.gate.drain()
    assert rig.resolutions() == [] and not rig.relay_energised(), "an entry that is not open opens nothing"
    rig.gate.submit(RemoteOpen("op-wang", entry_id=entry_id))
    rig.gate.drain()
    assert [(r["entry_id"], r["by"], r["opened"], r["operator"]) for r in rig.resolutions()] == [
        (entry_id, "remote", True, "op-wang")]
    assert rig.relay_energised()


def test_an_open_attention_survives_a_restart(tmp_path: Path) -> None:
    with make_rig(tmp_path) as rig:
        rig.visit(FEVER)
        entry_id = rig.entries()[0]["id"]
    with make_rig(tmp_path) as restarted:
        assert restarted.gate.attentions.ids() == [entry_id]
        assert restarted.gate.act.leds.pattern == "attention"
        restarted.gate.submit(StaffAck())
        restarted.gate.drain()
        assert [(r["entry_id"], r["by"]) for r in restarted.resolutions()] == [(entry_id, "ack")]
        assert len(restarted.entries()) == 1


def test_open_attentions_are_bounded_and_the_next_person_is_asked_to_wait(tmp_path: Path) -> None:
    config = load_embedded()
    config = config.model_copy(update={"gate": config.gate.model_copy(update={"max_open_attentions": 2})})
    with make_rig(tmp_path, config) as rig:
        for index in (1, 2):
            rig.visit(FEVER, index=index)
            rig.run_for(config.gate.attention_hold_s + 0.1)
        said = _said(rig)
        rig.visit(RESIDENT, index=3)
        assert len(rig.results) == 2 and rig.gate.session is None and said == ["wait"]
        rig.run_for(10)
        rig.visit(RESIDENT, index=5)  # the next person hears it too, not silence
        assert len(rig.results) == 2 and said == ["wait", "wait"]
        rig.gate.submit(StaffAck())
        rig.gate.drain()
        rig.visit(RESIDENT, index=4)
        assert [r.decision for r in rig.results] == ["attention", "attention", "allow"]


def test_codes_shown_while_busy_never_enter_the_next_session(rig: Rig) -> None:
    rig.visit(RESIDENT, index=1)
    assert rig.gate.state == "cooldown"
    said = _said(rig)
    rig.show(*rig.issuer.codes(2, RESIDENT, rig.clock.now()))  # the next person, too early
    assert said == ["wait"]
    rig.run_for(rig.gate.config.gate.relay_pulse_s + 0.1)
    assert (rig.gate.state, rig.gate.session) == ("idle", None)
    rig.gate.submit(Motion())
    rig.gate.drain()
    assert rig.gate.session is not None and rig.gate.session.verdicts == []
