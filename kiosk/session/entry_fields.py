"""The entry a session or a manual opening records: facts in, the `EntryDraft` fields out."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from checkpoint.entry import format_ts
from kiosk.credentials.verdict import HealthFacts
from kiosk.policy import Outcome
from kiosk.session.temperature import Measurement


@dataclass(frozen=True)
class Stamp:
    """When and which way an entry was made, and whether the kiosk's clock could be trusted then."""

    ts: datetime
    direction: Literal["in", "out", "both"]
    clock_unsynced: bool

    def fields(self) -> dict[str, Any]:
        # A two-way lane cannot tell which way a person went; "in" is what the contract can carry.
        direction = "out" if self.direction == "out" else "in"
        return {"ts": format_ts(self.ts), "direction": direction, "clock_unsynced": self.clock_unsynced}


UNNAMED = "*"  # the display form of a pass issued without a name (the contract allows one)


def session_entry(outcome: Outcome, measurement: Measurement | None, *, decode_ms: float, decide_ms: float,
                  session_ms: float, stamp: Stamp) -> dict[str, Any]:
    """The fields of one person's entry, override not yet known."""
    pass_facts = outcome.pass_verdict.pass_ if outcome.pass_verdict else None
    person = outcome.pass_verdict.person if outcome.pass_verdict else None
    health = outcome.health_verdict.health if outcome.health_verdict else None
    person_fields = None
    if person is not None:
        person_fields = {"ref": person.ref, "masked": person.masked}
    elif pass_facts is not None:
        person_fields = {"ref": pass_facts.idh, "masked": pass_facts.name or UNNAMED}
    m = measurement
    return {
        **stamp.fields(),
        "decision": outcome.decision,
        "reasons": [str(r) for r in outcome.reasons],
        "override": None,
        "temperature": None if m is None else {
            "skin_c": round(m.skin_c, 2), "body_c": round(m.body_c, 2),
            "ambient_c": round(m.ambient_c, 2), "samples": m.samples,
        },
        "health": None if health is None else _health(health),
        "pass": None if pass_facts is None else {
            "pid": pass_facts.pid, "cat": pass_facts.cat, "hh": pass_facts.hh,
        },
        "person": person_fields,
        "timing_ms": {
            "decode": round(decode_ms, 2), "decide": round(decide_ms, 3), "session": round(session_ms, 1),
        },
    }


def _health(health: HealthFacts) -> dict[str, Any]:
    """The entry's health object: the travel card's colour and star only when the code carried one."""
    fields: dict[str, Any] = {"scheme": health.scheme, "status": health.status}
    if health.travel is not None:
        fields |= {"travel": health.travel, "star": bool(health.star)}
    return fields


def manual_entry(override: Literal["staff", "remote"], stamp: Stamp) -> dict[str, Any]:
    """The entry of a gate opened by staff or remotely with nobody's codes read."""
    return {
        **stamp.fields(),
        "decision": "allow", "reasons": [], "override": override, "temperature": None,
        "health": None, "pass": None, "person": None,
        "timing_ms": {"decode": 0.0, "decide": 0.0, "session": 0.0},
    }


def fever_alert_detail(fields: dict[str, Any]) -> str:
    """The fever alert's text: what staff need at a glance (the entry itself carries the rest)."""
    temperature, pass_ = fields.get("temperature") or {}, fields.get("pass") or {}
    parts = [f"body {temperature['body_c']:.1f} °C" if temperature else "body not measured"]
    if pass_:
        household = f", household {pass_['hh']}" if pass_["hh"] else ""
        parts.append(f"pass {pass_['pid']} {pass_['cat']}{household}")
    return "; ".join(parts)

