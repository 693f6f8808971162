"""The lane: one person's session after another, as a state machine.

States: `idle` (waiting; motion or a code starts a session) → `collecting` (codes are verified as they
come, the thermometer is polled for someone present, and the policy decides once the required codes and
a reading are in) → `cooldown` (the gate stands open for `relay_pulse_s`, or a denial shows for
`deny_hold_s`) → `idle`. An `attention` decision waits in `attention` until staff resolve it or
`attention_timeout_s` passes, then goes to `cooldown` too.

One lane thread calls `step()`; other threads only `submit()` events. Time comes from an injected clock,
so the simulator runs sessions in virtual time.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal
from zoneinfo import ZoneInfo

from checkpoint.reasons import Reason
from drivers.leds import FaultClass
from kiosk.actuators import Actuators
from kiosk.clock import Clock
from kiosk.config import KioskConfig
from kiosk.credentials.verdict import Verdict
from kiosk.credentials.verify import CredentialVerifier
from kiosk.policy import HEALTH_KINDS, PASS_KINDS, Facts, Outcome, decide
from kiosk.session.entry_fields import Stamp, manual_entry, session_entry
from kiosk.session.events import (
    CodesSeen,
    DeviceState,
    Event,
    Motion,
    Override,
    Recorder,
    Reload,
    RemoteOpen,
    Result,
    StaffAck,
    StaffHold,
)
from kiosk.session.forgery import ForgeryWatch
from kiosk.session.temperature import (
    Measurement,
    SensorFault,
    take_reading,
)

log = logging.getLogger(__name__)

State = Literal["idle", "collecting", "attention", "cooldown"]
PRESENCE_POLL_S = 0.25
HEALTH_POLL_S = 5.0


@dataclass
class Session:
    """One person's visit."""

    started: float
    verdicts: list[Verdict] = field(default_factory=list)
    seen: set[bytes] = field(default_factory=set)
    decode_ms: float = 0.0
    measurement: Measurement | None = None
    sensor_fault: str | None = None
    measured_at: float | None = None
    next_presence_poll: float = 0.0
    asked_to_measure: bool = False


class Lane:
    """Runs sessions against the devices, the credential verifier, the policy and the outbox."""

    def __init__(
        self,
        config: KioskConfig,
        *,
        actuators: Actuators,
        read_thermometer: Callable[[], Any] | None,
        verifier: CredentialVerifier,
        recorder: Recorder,
        clock: Clock,
        on_result: Callable[[Result], None] | None = None,
    ) -> None:
        self.config = config
        self.act = actuators
        self._read = read_thermometer
        self.verifier = verifier
        self.recorder = recorder
        self.clock = clock
        self.on_result = on_result
        self.state: State = "idle"
        self.session: Session | None = None
        self.faults: dict[FaultClass, str] = {}
        self.abandoned = 0
        self.sessions = 0
        self._events: queue.SimpleQueue[Event] = queue.SimpleQueue()
        self._deadline: float | None = None
        self._pending: tuple[Outcome, dict[str, Any]] | None = None
        self._last_greet = float("-inf")
        self._forgery = ForgeryWatch(limit=config.gate.forgery_limit, window_s=config.gate.forgery_window_s)
        self._next_health_poll = 0.0
        self.heartbeat = time.monotonic()
        self.act.show_idle(self.faults)

    def submit(self, event: Event) -> None:
        """Queue an event from any thread."""
        self._events.put(event)

    def run(self, stop: threading.Event) -> None:
        """The gate thread: handle events and timers until `stop` is set."""
        while not stop.is_set():
            self.heartbeat = time.monotonic()
            deadline = self.next_deadline()
            wait = 0.5 if deadline is None else min(max(deadline - self.clock.monotonic(), 0.0), 0.5)
            try:
                event: Event | None = self._events.get(timeout=wait)
            except queue.Empty:
                event = None
            self.step(event)

    def drain(self) -> None:
        """Handle every queued event now (the simulator's single-threaded loop)."""
        while True:
            try:
                event = self._events.get_nowait()
            except queue.Empty:
                return
            self.step(event)

    def next_deadline(self) -> float | None:
        """The monotonic time of the next timer, if any."""
        times = [t for t in (self._deadline, self._presence_due()) if t is not None]
        if self.state == "idle" and self._read is not None:
            times.append(self._next_health_poll)
        return min(times) if times else None

    def step(self, event: Event | None = None) -> None:
        """Handle one event (or none) and then any timer that is due; never raises."""
        try:
            if event is not None:
                self._handle(event)
            self._timers()
        except Exception:
            log.exception("gate step failed; shutting the gate and returning to idle")
            self._reset_to_idle()

    # -- events -------------------------------------------------------------------------------------

    def _handle(self, event: Event) -> None:
        match event:
            case DeviceState(kind=kind, ok=ok, detail=detail):
                self._device(kind, ok, detail)
            case Motion():
                if self.state == "idle":
                    self._start_session()
            case CodesSeen():
                self._codes(event)
            case StaffHold():
                self._manual_open("staff")
            case RemoteOpen(by=by):
                log.info("remote open by %s", by)
                self._manual_open("remote")
            case StaffAck():
                if self.state == "attention" and self._pending is not None:
                    self._finish_attention(override=None)
            case Reload(config=config, verifier=verifier):
                old, self.verifier, self.config = self.verifier, verifier, config
                self._forgery.limit = config.gate.forgery_limit
                self._forgery.window_s = config.gate.forgery_window_s
                old.close()

    def _device(self, kind: FaultClass, ok: bool, detail: str) -> None:
        if ok and kind in self.faults:
            del self.faults[kind]
            log.info("%s recovered", kind)
        elif not ok and kind not in self.faults:
            self.faults[kind] = detail
            log.error("%s fault: %s", kind, detail)
            self.recorder.alert("fault", f"{kind}: {detail}")
        if self.state == "idle":
            self.act.show_idle(self.faults)

    def _start_session(self) -> None:
        now = self.clock.monotonic()
        self.session = Session(started=now, next_presence_poll=now)
        self.state = "collecting"
        self._deadline = now + self.config.policy.session_timeout_s
        self.sessions += 1
        if now - self._last_greet >= self.config.voice.greet_interval_s:
            self._last_greet = now
            self.act.say("greet")

    def _codes(self, event: CodesSeen) -> None:
        if self.state in ("attention", "cooldown"):
            return
        if self.state == "idle":
            self._start_session()
        session = self.session
        assert session is not None
        session.decode_ms += event.decode_ms
        for code in event.codes:
            if code.data in session.seen:
                continue
            session.seen.add(code.data)
            verdict = self.verifier.verify(code.data, now=self.clock.now())
            session.verdicts.append(verdict)
            alert = self._forgery.count(verdict, self.clock.monotonic())
            if alert is not None:
                self.recorder.alert("forgery", alert)
        if self._codes_complete(session):
            self._measure_and_decide()

    def _codes_complete(self, session: Session) -> bool:
        require = self.config.policy.require
        kinds = {v.kind for v in session.verdicts}
        has_health = bool(kinds & HEALTH_KINDS) or any(
            v.kind == "id_number" and v.health is not None for v in session.verdicts
        )
        return ("pass" not in require or bool(kinds & PASS_KINDS)) and (
            "health" not in require or has_health
        )

    # -- timers -------------------------------------------------------------------------------------

    def _presence_due(self) -> float | None:
        session = self.session
        if self.state != "collecting" or session is None or self._read is None:
            return None
        if session.measurement is not None or session.sensor_fault is not None:
            return None
        return session.next_presence_poll

    def _timers(self) -> None:
        now = self.clock.monotonic()
        due = self._presence_due()
        if due is not None and now >= due and self.session is not None:
            self.session.next_presence_poll = now + PRESENCE_POLL_S
            if self._someone_at_thermometer():
                self._take_measurement()
                if self._codes_complete(self.session):
                    self._decide()
                    return
        if self.state == "idle" and self._read is not None and now >= self._next_health_poll:
            self._next_health_poll = now + HEALTH_POLL_S
            self._someone_at_thermometer()  # a read that works clears a thermometer fault
        if self._deadline is None or now < self._deadline:
            return
        self._deadline = None
        if self.state == "collecting":
            self._session_timeout()
        elif self.state == "attention":
            self._finish_attention(override=None)
        elif self.state == "cooldown":
            self._reset_to_idle()

    def _session_timeout(self) -> None:
        session = self.session
        assert session is not None
        if not session.verdicts or (session.measurement is None and session.sensor_fault is None):
            self.abandoned += 1
            log.info("session abandoned (%d codes, no decision)", len(session.verdicts))
            self._reset_to_idle()
            return
        self._decide()

    # -- measuring and deciding ---------------------------------------------------------------------

    def _someone_at_thermometer(self) -> bool:
        assert self._read is not None
        try:
            reading = self._read()
        except Exception as exc:
            self._device(FaultClass.THERMOMETER, False, str(exc))
            if self.session is not None and self.state == "collecting":
                self.session.sensor_fault = str(exc)
            return False
        self._device(FaultClass.THERMOMETER, True, "")
        return bool(reading.object_c - reading.ambient_c > self.config.thermometer.presence_delta_c)

    def _measure_and_decide(self) -> None:
        session = self.session
        assert session is not None
        if session.measurement is None and session.sensor_fault is None:
            if not session.asked_to_measure:
                session.asked_to_measure = True
                self.act.say("measure")
            self._take_measurement()
        if session.measurement is None and session.sensor_fault is None:
            return  # nobody at the thermometer yet: keep polling until the session times out
        self._decide()

    def _take_measurement(self) -> None:
        session = self.session
        assert session is not None
        if self._read is None:
            session.sensor_fault = "no thermometer configured"
            return
        first = take_reading(self._read, self.config.thermometer,
                             fever_threshold_c=self.config.policy.fever_threshold_c, sleep=self.clock.sleep,
                             clock=self.clock.monotonic, say=self.act.say)
        if isinstance(first, Measurement):
            session.measurement = first
            session.measured_at = self.clock.monotonic()
            self._device(FaultClass.THERMOMETER, True, "")
        elif isinstance(first, SensorFault):
            session.sensor_fault = first.message
            self._device(FaultClass.THERMOMETER, False, first.message)

    def _decide(self) -> None:
        session = self.session
        assert session is not None
        started = time.perf_counter()
        now = self.clock.now()
        tz = ZoneInfo(self.config.site.timezone)
        facts = Facts(
            credentials=tuple(session.verdicts),
            body_c=session.measurement.body_c if session.measurement else None,
            sensor_fault=session.sensor_fault is not None,
        )
        outcome = decide(facts, self.config.policy, now, timezone=self.config.site.timezone)
        if outcome.household is not None and self.config.policy.household.max_exits_per_day:
            midnight = now.astimezone(tz).replace(hour=0, minute=0, second=0, microsecond=0)
            used = self.recorder.household_allowed_since(outcome.household, midnight)
            facts = Facts(facts.credentials, facts.body_c, facts.sensor_fault, household_exits_today=used)
            outcome = decide(facts, self.config.policy, now, timezone=self.config.site.timezone)
        fields = session_entry(
            outcome, session.measurement, decode_ms=session.decode_ms,
            decide_ms=(time.perf_counter() - started) * 1000,
            session_ms=(self.clock.monotonic() - session.started) * 1000, stamp=self._stamp(),
        )
        if outcome.decision == "attention":
            self._pending = (outcome, fields)
            self.state = "attention"
            self._deadline = self.clock.monotonic() + self.config.gate.attention_timeout_s
            self.act.attention(outcome.reasons)
            if Reason.FEVER in outcome.reasons:
                self.recorder.alert("fever", f"body {facts.body_c:.1f} °C")
            return
        self._commit_and_act(outcome, fields, override=None)

    def _commit_and_act(self, outcome: Outcome, fields: dict[str, Any], *, override: Override) -> None:
        fields = {**fields, "override": override}
        if override is not None:
            fields["decision"] = outcome.decision
        entry_id = self.recorder.record(fields)  # durable before the relay moves
        opened = outcome.decision == "allow" or override is not None
        if opened:
            self.act.open_gate(override=override)
        else:
            self.act.deny(outcome.reasons)
        if outcome.decision == "deny":
            self._slow_down_if_attacked()
        body = fields["temperature"]["body_c"] if fields.get("temperature") else None
        result = Result(outcome.decision, outcome.reasons, override, entry_id, body)
        if self.on_result is not None:
            self.on_result(result)
        self.state = "cooldown"
        self.session = None
        self._pending = None
        self._deadline = self.clock.monotonic() + (
            self.config.gate.relay_pulse_s if opened else self.config.gate.deny_hold_s
        )

    def _slow_down_if_attacked(self) -> None:
        if self._forgery.under_attack:
            self.clock.sleep(self.config.gate.forgery_delay_s)  # slows brute force at this kiosk

    def _finish_attention(self, *, override: Override) -> None:
        assert self._pending is not None
        outcome, fields = self._pending
        self._commit_and_act(outcome, fields, override=override)

    def _manual_open(self, override: Literal["staff", "remote"]) -> None:
        if self.state == "attention" and self._pending is not None:
            self._finish_attention(override=override)
            return
        if self.state == "collecting":
            self.session = None
        fields = manual_entry(override, self._stamp())
        outcome = Outcome("allow", (), None, None, None, None)
        self._commit_and_act(outcome, fields, override=override)

    def _stamp(self) -> Stamp:
        return Stamp(self.clock.now(), self.config.site.direction, not self.clock.synced())

    def _reset_to_idle(self) -> None:
        self.state = "idle"
        self.session = None
        self._pending = None
        self._deadline = None
        try:
            self.act.shut()
            self.act.show_idle(self.faults)
        except Exception:
            log.exception("cannot reset the actuators")

