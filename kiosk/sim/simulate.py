"""`kiosk simulate`: the real gate flow on emulated hardware, playing a scenario in virtual time."""

from __future__ import annotations

import heapq
import json
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from checkpoint import idnumber
from checkpoint.keys import KeyRing
from checkpoint.residents import Registry, Resident
from kiosk import wiring
from kiosk.clock import VirtualClock
from kiosk.config import KioskConfig
from kiosk.credentials.health_token import HealthTokenVerifier
from kiosk.credentials.http import HttpHealthProvider
from kiosk.credentials.passes import PassVerifier
from kiosk.credentials.verify import SIMULATION_SITE_KEY, CredentialVerifier
from kiosk.hardware import Emulation, Hardware
from kiosk.mqtt.publisher import Publisher
from kiosk.outbox import Outbox
from kiosk.recorder import OutboxRecorder
from kiosk.scanner import Debouncer, Scanner
from kiosk.session.events import CodesSeen, Motion, Resolved, Result, StaffAck, StaffHold
from kiosk.session.lane import Lane
from kiosk.sim.health_platform import HealthPlatform
from kiosk.sim.issuer import Issuer, render
from kiosk.sim.scenario import Person, Scenario
from office.config import OfficeConfig
from office.ingest.service import Collector
from office.reports.daily import daily_report, day_bounds
from office.reports.render import render as render_report
from office.store.opening import open_store

FRAME_W, FRAME_H = 640, 480
FRAMES_PER_CODE = 3
MAX_STEPS = 2_000_000  # bounds the event loop whatever the scenario says
DRAIN_TIMEOUT_S = 20.0


@dataclass
class PersonOutcome:
    """What happened to one person of the scenario."""

    index: int
    person: Person
    result: Result | None = None
    resolved: Resolved | None = None
    seq: int | None = None
    problems: list[str] = field(default_factory=list)


def run_simulation(
    config: KioskConfig,
    scenario: Scenario,
    *,
    as_json: bool = False,
    realtime: bool = False,
    out: Callable[[str], None] = print,
    emulation: Emulation | None = None,
    state_dir: Path | None = None,
    on_arrival: Callable[[int], None] | None = None,
    collector: bool | None = None,
) -> int:
    """Play `scenario` through the real flow; 0 when every expectation held.

    The outbox lives in `state_dir` when given (so `seq` carries on across runs), else in a temporary
    directory; `on_arrival(n)` is called as person n (1-based) arrives. With `collector` (by default
    when the simulation starts its own broker) the real collector service ingests from that broker and
    the day's report is printed at the end.
    """
    config = config.model_copy(update={"policy": scenario.policy_over(config.policy)})
    started = time.monotonic()
    with ExitStack() as stack:
        if state_dir is not None:
            state_dir.mkdir(parents=True, exist_ok=True)
            state = state_dir
        else:
            state = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="kiosk-sim-")))
        if collector is None:
            collector = config.mqtt.local_broker
        config = config.model_copy(update={"storage": config.storage.model_copy(update={"state_dir": state})})
        config = wiring.start_local_broker(stack, config)
        clock = VirtualClock(scenario.start, realtime=realtime)
        office = _start_collector(stack, config, state, clock) if collector else None
        issuer = Issuer()
        hw = Hardware(config, emulation=emulation or Emulation(realtime_camera=False))
        assert hw.emulation is not None and hw.emulation.chip is not None
        chip = hw.emulation.chip
        platform = stack.enter_context(HealthPlatform(now=clock.now))
        registry = Registry(state / "registry.sqlite")
        verifier = stack.enter_context(CredentialVerifier(
            passes=PassVerifier(KeyRing.of(issuer.office.public_key()),
                                revoked=lambda: frozenset(issuer.revoked)),
            token=HealthTokenVerifier(KeyRing.of(issuer.health.public_key()),
                                      max_age_s=config.health.max_age_s),
            http=HttpHealthProvider(platform.url, timeout_s=2.0, cache_s=0, clock=clock.monotonic),
            registry=registry, site_key=SIMULATION_SITE_KEY, http_scan_codes=False,
        ))
        actuators = wiring.open_actuators(stack, hw, config)
        sensor = stack.enter_context(hw.thermometer())
        outbox = wiring.open_outbox(stack, config)
        ref = wiring.LaneRef()
        publisher = wiring.start_publisher(stack, config, outbox, ref)
        recorder = OutboxRecorder(outbox, publisher)
        outcomes = [PersonOutcome(i + 1, p) for i, p in enumerate(scenario.person)]
        owners: dict[int, PersonOutcome] = {}  # the lane's session number → the person it served

        def on_result(result: Result) -> None:
            owner = owners.get(result.session) if result.session is not None else None
            if owner is not None:
                owner.result, owner.seq = result, recorder.last_seq
            chip.object_c = chip.ambient_c  # the person walks on, or steps aside

        def on_resolution(resolved: Resolved) -> None:
            for o in outcomes:
                if o.result is not None and o.result.entry_id == resolved.entry_id:
                    o.resolved = resolved

        lane = wiring.build_lane(config, ref, actuators=actuators, read_thermometer=sensor.read,
                                 verifier=verifier, recorder=recorder, clock=clock, on_result=on_result,
                                 on_resolution=on_resolution)
        scanner = Scanner()
        debouncer = Debouncer(clock=clock.monotonic)
        timeline = _timeline(outcomes, issuer, registry, platform, clock, chip, lane, scanner, debouncer,
                             on_arrival)
        _play(timeline, lane, clock, owners)
        drained = _drain(outbox, publisher)
        status = _report(outcomes, as_json=as_json, out=out, drained=drained,
                         elapsed_s=time.monotonic() - started)
        if office is not None:
            note = (lambda text: print(text, file=sys.stderr)) if as_json else out
            resolved = sum(1 for o in outcomes if o.resolved is not None)
            status |= _office_report(office, recorder.last_seq or 0, resolved, config, clock, out=note)
    return status


def _start_collector(stack: ExitStack, config: KioskConfig, state: Path, clock: VirtualClock) -> Path:
    """The collector service on the simulation's broker, storing into `state`; returns its store path."""
    store_path = state / "office.sqlite"
    office = OfficeConfig.model_validate({
        "broker": {"host": config.mqtt.host, "port": config.mqtt.port, "client_id": "sim-collector"},
        "store": {"kind": "sqlite", "path": str(store_path)},
        "report": {"timezone": config.site.timezone, "out_dir": str(state / "reports"), "publish": False,
                   "formats": ["json"]},
    })
    service = Collector(office, now=clock.now)
    thread = threading.Thread(target=service.run, name="collector")
    thread.start()

    def stop() -> None:
        service.stop.set()
        thread.join(30)

    stack.callback(stop)
    deadline = time.monotonic() + DRAIN_TIMEOUT_S  # entries published before it subscribes would bounce
    while not (service.ingest is not None and service.ingest.subscribed) and time.monotonic() < deadline:
        time.sleep(0.02)
    return store_path


def _office_report(store_path: Path, entries: int, resolutions: int, config: KioskConfig, clock: VirtualClock,
                   *, out: Callable[[str], None]) -> int:
    """Wait (bounded) for the collector to hold every entry and resolution, then print the day's report."""
    deadline = time.monotonic() + DRAIN_TIMEOUT_S
    day = clock.now().astimezone(ZoneInfo(config.site.timezone)).date()
    start, end = day_bounds(day, ZoneInfo(config.site.timezone))
    with open_store("sqlite", path=store_path) as store:
        while time.monotonic() < deadline and (
                store.count_entries() < entries or len(store.resolutions_between(start, end)) < resolutions):
            time.sleep(0.1)
        stored = store.count_entries()
        report = daily_report(store, day, site=config.site.id, tz=config.site.timezone)
    out("")
    out(f"collector: {stored} of {entries} entries stored")
    out(render_report(report, "text").decode())
    return 0 if stored == entries else 1


Action = Callable[[], None]
Scheduled = tuple[float, int, "PersonOutcome | None", Action]


def _timeline(outcomes: list[PersonOutcome], issuer: Issuer, registry: Registry, platform: HealthPlatform,
              clock: VirtualClock, chip: Any, lane: Lane, scanner: Scanner, debouncer: Debouncer,
              on_arrival: Callable[[int], None] | None) -> list[Scheduled]:
    """Every scheduled action of the scenario, as (virtual time, order, person, action)."""
    events: list[Scheduled] = []

    def at(t: float, action: Action, person: PersonOutcome | None = None) -> None:
        events.append((t, len(events), person, action))

    for outcome in outcomes:
        person, t0 = outcome.person, outcome.person.at_s
        if person.id_number is not None:
            ref = idnumber.parse(person.id_number).person_ref(SIMULATION_SITE_KEY)
            if person.registered:
                registry.upsert([Resident(ref, idnumber.mask(person.id_number), person.household)])
            platform.set_status(ref, "green", travel="green", hpr=issuer.hpr(outcome.index))

        def arrive(o: PersonOutcome = outcome) -> None:
            if on_arrival is not None:
                on_arrival(o.index)
            chip.ambient_c = o.person.ambient_c
            chip.object_c = o.person.ambient_c
            lane.submit(Motion())

        def forehead(o: PersonOutcome = outcome) -> None:
            chip.object_c = o.person.skin_c

        at(t0, arrive, outcome)
        at(t0 + 0.3, forehead)
        texts = issuer.codes(outcome.index, person, clock.now() + timedelta(seconds=t0))
        groups = [texts] if person.together else [[text] for text in texts]
        for g, group in enumerate(groups):
            frame = render(group)
            for f in range(FRAMES_PER_CODE):
                def show(frame: Any = frame) -> None:
                    t_start = time.perf_counter()
                    codes = debouncer.feed(scanner(frame))
                    decode_ms = (time.perf_counter() - t_start) * 1000
                    if codes:
                        lane.submit(CodesSeen(tuple(codes), decode_ms))
                at(t0 + 1.0 + 1.5 * g + f / 15, show, outcome)
        if person.staff is not None:
            def staff(kind: str = person.staff) -> None:
                if lane.attentions:  # staff come to the latest open attention
                    lane.submit(StaffHold() if kind == "hold" else StaffAck())
            at(t0 + 1.0 + 1.5 * len(groups) + 8.0, staff)
    heapq.heapify(events)
    return events


def _play(events: list[Scheduled], lane: Lane, clock: VirtualClock, owners: dict[int, PersonOutcome]) -> None:
    """Run actions and the lane's timers in time order, skipping idle gaps.

    A session that a person's own action started (arriving, showing codes) is that person's: its result
    is theirs, whoever arrives later.
    """
    for _ in range(MAX_STEPS):
        deadline = lane.next_deadline()
        next_event = events[0][0] if events else None
        if next_event is None and lane.state == "idle" and not lane.attentions:
            return
        candidates = [t for t in (next_event, deadline) if t is not None]
        clock.advance_to(min(candidates))
        if events and events[0][0] <= clock.monotonic():
            _, _, person, action = heapq.heappop(events)
            sessions = lane.sessions
            action()
            lane.drain()
            if person is not None and lane.sessions > sessions:
                owners[lane.sessions] = person
        else:
            lane.step(None)
    raise RuntimeError(f"simulation did not settle within {MAX_STEPS} steps")


def _drain(outbox: Outbox, publisher: Publisher) -> bool:
    """Wait (bounded, real time) until the broker has acknowledged every entry, alert and resolution."""
    deadline = time.monotonic() + DRAIN_TIMEOUT_S
    publisher.wake()
    while time.monotonic() < deadline:
        state = outbox.backlog()
        if state.backlog == state.alerts == state.resolutions == 0:
            return True
        time.sleep(0.05)
    return False


_ENDINGS = {"staff": "opened by staff", "remote": "opened remotely", "ack": "staff acknowledged",
            "timeout": "timed out, nobody came"}


def _report(outcomes: list[PersonOutcome], *, as_json: bool, out: Callable[[str], None], drained: bool,
            elapsed_s: float) -> int:
    mismatches = 0
    for o in outcomes:
        result, person = o.result, o.person
        decision = result.decision if result else "abandoned"
        reasons = [str(r) for r in result.reasons] if result else []
        if person.expect is not None and person.expect != decision:
            o.problems.append(f"expected {person.expect}, got {decision}")
        if person.expect_reasons is not None and [str(r) for r in person.expect_reasons] != reasons:
            o.problems.append(f"expected reasons {[str(r) for r in person.expect_reasons]}, got {reasons}")
        mismatches += bool(o.problems)
        body_c = result.body_c if result else None
        opened_by = o.resolved.by if o.resolved is not None and o.resolved.opened else None
        if as_json:
            out(json.dumps({"person": o.index, "decision": decision, "reasons": reasons, "body_c": body_c,
                            "entry_id": result.entry_id if result else None, "seq": o.seq,
                            "override": opened_by or (result.override if result else None),
                            "resolution": o.resolved.by if o.resolved else None, "problems": o.problems},
                           ensure_ascii=False))
            continue
        temp = f"{body_c:5.1f} °C" if body_c is not None else "   --   "
        override = f" ({_ENDINGS[o.resolved.by]})" if o.resolved is not None else ""
        mark = "ok" if not o.problems else "MISMATCH: " + "; ".join(o.problems)
        out(f"#{o.index:<2} {decision:<10} {temp}  {','.join(reasons) or '-':<34} "
            f"{person.label}{override}  [{mark}]")
    served = sum(1 for o in outcomes if o.result)
    summary = (f"{len(outcomes)} people, {served} entries, {len(outcomes) - served} abandoned, "
               f"{mismatches} mismatches; "
               f"broker {'acknowledged every entry' if drained else 'did NOT acknowledge every entry'}; "
               f"{elapsed_s:.1f} s")
    (lambda s: print(s, file=sys.stderr) if as_json else out(s))(summary)
    return 1 if mismatches or not drained else 0
