"""One person's visit: what the lane has seen and measured, when it is complete, and what the policy says."""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

from kiosk.config import KioskConfig
from kiosk.credentials.verdict import Verdict
from kiosk.policy import HEALTH_KINDS, PASS_KINDS, Facts, Outcome, decide
from kiosk.session.temperature import Measurement


@dataclass
class Session:
    """One person's visit; `number` counts the lane's sessions from 1."""

    number: int
    started: float
    verdicts: list[Verdict] = field(default_factory=list)
    seen: set[bytes] = field(default_factory=set)
    decode_ms: float = 0.0
    measurement: Measurement | None = None
    sensor_fault: str | None = None
    measured_at: float | None = None
    next_presence_poll: float = 0.0
    asked_to_measure: bool = False


def codes_complete(session: Session, require: Collection[str]) -> bool:
    """Every code the policy requires has been shown (an ID number's lookup can stand for the health code).

    The travel card comes with the health code (两码合一): requiring it waits for a health code too.
    """
    kinds = {v.kind for v in session.verdicts}
    has_health = bool(kinds & HEALTH_KINDS) or any(
        v.kind == "id_number" and v.health is not None for v in session.verdicts
    )
    needs_health = "health" in require or "travel" in require
    return ("pass" not in require or bool(kinds & PASS_KINDS)) and (not needs_health or has_health)


def judge(session: Session, config: KioskConfig, now: datetime,
          household_exits_since: Callable[[str, datetime], int]) -> Outcome:
    """The policy's decision on this visit, counting the household's passages today when a quota is set."""
    facts = Facts(
        credentials=tuple(session.verdicts),
        body_c=session.measurement.body_c if session.measurement else None,
        sensor_fault=session.sensor_fault is not None,
    )
    outcome = decide(facts, config.policy, now, timezone=config.site.timezone)
    if outcome.household is not None and config.policy.household.max_exits_per_day:
        midnight = now.astimezone(ZoneInfo(config.site.timezone)).replace(hour=0, minute=0, second=0,
                                                                           microsecond=0)
        used = household_exits_since(outcome.household, midnight)
        facts = Facts(facts.credentials, facts.body_c, facts.sensor_fault, household_exits_today=used)
        outcome = decide(facts, config.policy, now, timezone=config.site.timezone)
    return outcome
