"""The lane: one person's session after another, as a state machine.

States: `idle` (waiting; motion or a code starts a session) → `collecting` (codes are verified as they
come, the thermometer is polled for someone present, and the policy decides once the required codes and
a reading are in) → `cooldown` (the gate stands open for `relay_pulse_s`, or a denial shows for
`deny_hold_s`) → `idle`. An attention is recorded at once; the person is asked to step aside, and after
`attention_hold_s` in `hold` the lane serves the next person. The attention stays open (amber blinking
while the lane is idle) until staff hold the button (the gate opens), acknowledge it, the office opens
it remotely by naming its entry, or `attention_timeout_s` passes; each ending is recorded as its
resolution. Codes shown while the lane is busy are dropped, and the person is asked to wait.

One lane thread calls `step()`; other threads only `submit()` events. Time comes from an injected clock,
so the simulator runs sessions in virtual time.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, Literal

from checkpoint.entry import ResolvedBy
from checkpoint.reasons import Reason
from drivers.leds import FaultClass
from kiosk.actuators import Actuators
from kiosk.clock import Clock
from kiosk.config import KioskConfig
from kiosk.credentials.verify import CredentialVerifier
from kiosk.policy import Outcome
from kiosk.session.attentions import OpenAttention, OpenAttentions
from kiosk.session.entry_fields import Stamp, fever_alert_detail, manual_entry, session_entry
from kiosk.session.events import (
    CodesSeen,
    DeviceState,
    Event,
    Motion,
    Override,
    Recorder,
    Reload,
    RemoteOpen,
    Resolved,
    Result,
    StaffAck,
    StaffHold,
)
from kiosk.session.forgery import FORGERY_OUTCOMES, ForgeryWatch
from kiosk.session.loop import EventLoop
from kiosk.session.temperature import Measurement, SensorFault, take_reading
from kiosk.session.visit import Session, codes_complete, judge

log = logging.getLogger(__name__)

State = Literal["idle", "collecting", "hold", "cooldown"]
PRESENCE_POLL_S = 0.25
HEALTH_POLL_S = 5.0
WAIT_PROMPT_INTERVAL_S = 5.0


class Lane(EventLoop):
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
        on_resolution: Callable[[Resolved], None] | None = None,
    ) -> None:
        super().__init__(clock)
        self.config = config
        self.act = actuators
        self._read = read_thermometer
        self.verifier = verifier
        self.recorder = recorder
        self.on_result = on_result
        self.on_resolution = on_resolution
        self.state: State = "idle"
        self.session: Session | None = None
        self.faults: dict[FaultClass, str] = {}
        self.abandoned = 0
        self.sessions = 0
        self._deadline: float | None = None
        self.attentions = OpenAttentions(config.gate.max_open_attentions)
        for entry_id in recorder.open_attentions():  # recorded before a restart: the timeout starts anew
            self.attentions.add(entry_id, clock.monotonic() + config.gate.attention_timeout_s)
        self._last_wait = float("-inf")
        self._last_greet = float("-inf")
        self._forgery = ForgeryWatch(limit=config.gate.forgery_limit, window_s=config.gate.forgery_window_s)
        self._next_health_poll = 0.0
        self._show_idle()

    def next_deadline(self) -> float | None:
        """The monotonic time of the next timer, if any."""
        times = [t for t in (self._deadline, self._presence_due(), self.attentions.next_deadline())
                 if t is not None]
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
            case RemoteOpen(by=by, entry_id=entry_id):
                log.info("remote open by %s%s", by, f" for entry {entry_id}" if entry_id else "")
                self._manual_open("remote", entry_id=entry_id, operator=by)
            case StaffAck():
                self._resolve(self.attentions.take(), "ack", opened=False)
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
            self._show_idle()

    def _start_session(self) -> bool:
        if self.attentions.full:
            self._ask_to_wait()
            return False
        now = self.clock.monotonic()
        self.session = Session(number=self.sessions + 1, started=now, next_presence_poll=now)
        self.state = "collecting"
        self._deadline = now + self.config.policy.session_timeout_s
        self.sessions += 1
        if now - self._last_greet >= self.config.voice.greet_interval_s:
            self._last_greet = now
            self.act.say("greet")
        return True

    def _ask_to_wait(self) -> None:
        """Codes or a person while the lane cannot serve them: "please wait", at most every few seconds."""
        now = self.clock.monotonic()
        if now - self._last_wait >= WAIT_PROMPT_INTERVAL_S:
            self._last_wait = now
            self.act.say("wait")

    def _codes(self, event: CodesSeen) -> None:
        if self.state in ("hold", "cooldown"):
            self._ask_to_wait()  # these codes are dropped: they never enter the next person's session
            return
        if self.state == "idle" and not self._start_session():
            return
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
        if codes_complete(session, self.config.policy.require):
            self._measure_and_decide()

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
                if codes_complete(self.session, self.config.policy.require):
                    self._decide()
                    return
        if self.state == "idle" and self._read is not None and now >= self._next_health_poll:
            self._next_health_poll = now + HEALTH_POLL_S
            self._someone_at_thermometer()  # a read that works clears a thermometer fault
        for attention in self.attentions.take_due(now):
            self._resolve(attention, "timeout", opened=False)
        if self._deadline is None or now < self._deadline:
            return
        self._deadline = None
        if self.state == "collecting":
            self._session_timeout()
        elif self.state in ("hold", "cooldown"):
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
        outcome = judge(session, self.config, self.clock.now(), self.recorder.household_allowed_since)
        fields = session_entry(
            outcome, session.measurement, decode_ms=session.decode_ms,
            decide_ms=(time.perf_counter() - started) * 1000,
            session_ms=(self.clock.monotonic() - session.started) * 1000, stamp=self._stamp(),
        )
        if outcome.decision == "attention":
            self._attention(outcome, fields)
            return
        self._commit_and_act(outcome, fields, override=None)

    def _attention(self, outcome: Outcome, fields: dict[str, Any]) -> None:
        """Record it now, ask the person to step aside, and serve the next one after a short hold."""
        entry_id = self.recorder.record(fields, attention=True)  # durable before the amber light
        now = self.clock.monotonic()
        self.attentions.add(entry_id, now + self.config.gate.attention_timeout_s)
        self.act.attention(outcome.reasons)
        if Reason.FEVER in outcome.reasons:
            self.recorder.alert("fever", fever_alert_detail(fields), entry_id)
        self._alert_forgery(outcome, entry_id)
        self._report(outcome, fields, None, entry_id)
        self.state = "hold"
        self.session = None
        self._deadline = now + self.config.gate.attention_hold_s

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
        self._alert_forgery(outcome, entry_id)
        if outcome.decision == "deny":
            self._slow_down_if_attacked()
        self._report(outcome, fields, override, entry_id)
        self.state = "cooldown"
        self.session = None
        self._deadline = self.clock.monotonic() + (
            self.config.gate.relay_pulse_s if opened else self.config.gate.deny_hold_s
        )

    def _alert_forgery(self, outcome: Outcome, entry_id: str) -> None:
        """A borrowed health code is a forgery sign at once: the office alerts page shows it."""
        signs = [str(reason) for reason in outcome.reasons if reason in FORGERY_OUTCOMES]
        if signs:
            shown = outcome.pass_verdict.pass_ if outcome.pass_verdict is not None else None
            pid = shown.pid if shown is not None else None
            self.recorder.alert("forgery", f"{','.join(signs)}: the health code is not the pass holder's"
                                + (f" (pass {pid})" if pid else ""), entry_id)

    def _slow_down_if_attacked(self) -> None:
        if self._forgery.under_attack:
            self.clock.sleep(self.config.gate.forgery_delay_s)  # slows brute force at this kiosk

    def _report(self, outcome: Outcome, fields: dict[str, Any], override: Override, entry_id: str) -> None:
        if self.on_result is None:
            return
        body = fields["temperature"]["body_c"] if fields.get("temperature") else None
        number = self.session.number if self.session is not None else None
        self.on_result(Result(outcome.decision, outcome.reasons, override, entry_id, body, number))

    def _manual_open(self, override: Literal["staff", "remote"], *, entry_id: str | None = None,
                     operator: str | None = None) -> None:
        """Open for the latest open attention (staff) or the one named (remote), else a manual entry."""
        if override == "staff" or entry_id is not None:
            attention = self.attentions.take(entry_id)
            if attention is None and entry_id is not None:
                log.warning("remote open for entry %s refused: no such open attention", entry_id)
                return
            if attention is not None:
                self._resolve(attention, override, opened=True, operator=operator)
                return
        if self.state == "collecting":
            self.session = None
        fields = manual_entry(override, self._stamp())
        outcome = Outcome("allow", (), None, None, None, None)
        self._commit_and_act(outcome, fields, override=override)

    def _resolve(self, attention: OpenAttention | None, by: ResolvedBy, *, opened: bool,
                 operator: str | None = None) -> None:
        """Record how an attention ended (durably, before the gate moves), then open the gate if so."""
        if attention is None:
            return
        self.recorder.resolve(attention.entry_id, by=by, opened=opened, operator=operator,
                              ts=self.clock.now())
        log.info("attention %s resolved: %s, gate %s", attention.entry_id, by, "opened" if opened else "shut")
        if self.on_resolution is not None:
            self.on_resolution(Resolved(attention.entry_id, by, opened))
        if opened:
            self.session = None
            self.act.open_gate(override="staff" if by == "staff" else "remote")
            self.state = "cooldown"
            self._deadline = self.clock.monotonic() + self.config.gate.relay_pulse_s
        elif self.state == "idle":
            self._show_idle()

    def _stamp(self) -> Stamp:
        return Stamp(self.clock.now(), self.config.site.direction, not self.clock.synced())

    def _show_idle(self) -> None:
        self.act.show_idle(self.faults, attention=bool(self.attentions))

    def _reset_to_idle(self) -> None:
        self.state = "idle"
        self.session = None
        self._deadline = None
        try:
            self.act.shut()
            self._show_idle()
        except Exception:
            log.exception("cannot reset the actuators")

