"""The gate policy: a pure function from facts, config and time to a decision with reason codes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time
from typing import Literal
from zoneinfo import ZoneInfo

from checkpoint.reasons import Colour, Reason
from kiosk.config import PolicyConfig
from kiosk.credentials.verdict import Verdict

Decision = Literal["allow", "deny", "attention"]
PASS_KINDS = frozenset({"pass", "id_number"})
HEALTH_KINDS = frozenset({"health_token", "dcc", "health_http"})

# Reasons that need a person's help rather than a plain no; every other reason denies.
_ATTENTION = frozenset({Reason.FEVER, Reason.SENSOR_FAULT, Reason.HEALTH_CODE_YELLOW})
_ORDER = {reason: index for index, reason in enumerate(Reason)}


@dataclass(frozen=True)
class Facts:
    """Everything one session learned about a person."""

    credentials: tuple[Verdict, ...] = ()
    body_c: float | None = None
    sensor_fault: bool = False
    household_exits_today: int = 0  # allowed passages of this pass's household today


@dataclass(frozen=True)
class Outcome:
    """The decision, its reasons (contract codes, in contract order) and the facts it rests on."""

    decision: Decision
    reasons: tuple[Reason, ...]
    pass_verdict: Verdict | None
    health_verdict: Verdict | None
    category: Colour | None
    household: str | None


def _best(verdicts: list[Verdict]) -> Verdict | None:
    """The one to judge by: a clean verdict first, then a valid one, then the latest."""
    for verdict in reversed(verdicts):
        if verdict.valid and not verdict.reasons:
            return verdict
    for verdict in reversed(verdicts):
        if verdict.valid:
            return verdict
    return verdicts[-1] if verdicts else None


def in_window(window: str, moment: time) -> bool:
    """True when `moment` falls in 'HH:MM-HH:MM'; a window that crosses midnight wraps."""
    start_text, end_text = window.split("-")
    start, end = time.fromisoformat(start_text), time.fromisoformat(end_text)
    if start <= end:
        return start <= moment < end
    return moment >= start or moment < end


def decide(facts: Facts, policy: PolicyConfig, now: datetime, *, timezone: str) -> Outcome:
    """Decide one entry; `now` is aware, `timezone` is the site's zone for opening hours."""
    reasons: set[Reason] = set()
    attention_by_policy = False
    deny_by_policy = False

    if facts.sensor_fault or facts.body_c is None:
        reasons.add(Reason.SENSOR_FAULT)
    elif facts.body_c >= policy.fever_threshold_c:
        reasons.add(Reason.FEVER)

    pass_verdict = _best([v for v in facts.credentials if v.kind in PASS_KINDS])
    health_verdict = _best([v for v in facts.credentials if v.kind in HEALTH_KINDS or _has_health(v)])
    unknown_seen = any(v.kind == "unknown" for v in facts.credentials)

    if "health" in policy.require:
        if health_verdict is None:
            reasons.add(Reason.NO_HEALTH_CODE)
        else:
            status = health_verdict.health.status if health_verdict.health else None
            health_reasons = set(health_verdict.reasons) & _BROKEN_HEALTH
            if not health_reasons and status is None:
                health_reasons.add(Reason.HEALTH_CODE_INVALID)
            elif not health_reasons and status not in policy.health_ok:
                health_reasons.add(_STATUS_REASON.get(str(status), Reason.HEALTH_CODE_INVALID))
            if not health_reasons & _BROKEN_HEALTH and not_holder(
                pass_verdict, health_verdict, require_bound=policy.require_bound_health
            ):
                health_reasons.add(Reason.HEALTH_CODE_NOT_HOLDER)
            if Reason.PLATFORM_DOWN in health_reasons:
                attention_by_policy |= policy.on_platform_down == "attention"
                deny_by_policy |= policy.on_platform_down == "deny"
            reasons |= health_reasons

    soft: set[Reason] = {Reason.PLATFORM_DOWN}
    if "travel" in policy.require:
        travel = _travel(health_verdict, policy, health_required="health" in policy.require)
        if travel is not None:
            reason, starred_only = travel
            reasons.add(reason)
            if starred_only:
                soft.add(reason)
                attention_by_policy |= policy.travel_star == "attention"
                deny_by_policy |= policy.travel_star == "deny"

    category: Colour | None = None
    household: str | None = None
    if pass_verdict is not None and pass_verdict.pass_ is not None:
        category, household = pass_verdict.pass_.cat, pass_verdict.pass_.hh
    elif pass_verdict is not None and pass_verdict.person is not None and pass_verdict.valid:
        category, household = "green", pass_verdict.person.household  # a registered resident

    if "pass" in policy.require:
        if pass_verdict is None:
            reasons.add(Reason.NO_PASS)
        elif not pass_verdict.valid or set(pass_verdict.reasons) & _PASS_REASONS:
            reasons |= (set(pass_verdict.reasons) & _PASS_REASONS) or {Reason.PASS_INVALID}
        elif category is not None:
            rule = policy.category.get(category)
            if rule is not None and rule.hours is not None:
                local = now.astimezone(ZoneInfo(timezone)).time()
                if not in_window(rule.hours, local):
                    reasons.add(Reason.OUTSIDE_HOURS)
            if rule is not None and rule.action is not None:
                attention_by_policy |= rule.action == "attention"
                deny_by_policy |= rule.action == "deny"
            limit = policy.household.max_exits_per_day
            if limit and household is not None and facts.household_exits_today >= limit:
                reasons.add(Reason.QUOTA_EXCEEDED)

    missing = {Reason.NO_PASS, Reason.NO_HEALTH_CODE, Reason.PASS_INVALID, Reason.HEALTH_CODE_INVALID}
    if unknown_seen and reasons & missing:
        reasons.add(Reason.UNKNOWN_CODE)  # say the code shown was not one we read

    ordered = tuple(sorted(reasons, key=_ORDER.__getitem__))
    return Outcome(
        _decision(reasons, soft, attention_by_policy=attention_by_policy, deny_by_policy=deny_by_policy),
        ordered, pass_verdict, health_verdict, category, household,
    )


def _decision(reasons: set[Reason], soft: set[Reason], *, attention_by_policy: bool,
              deny_by_policy: bool) -> Decision:
    """`soft` reasons decide nothing themselves: the policy flags say what they mean."""
    if Reason.FEVER in reasons:
        return "attention"  # a febrile person needs staff, whatever else is wrong
    denying = reasons - _ATTENTION - soft
    if denying or deny_by_policy:
        return "deny"
    if reasons & _ATTENTION or attention_by_policy:
        return "attention"
    return "allow"


def _travel(health_verdict: Verdict | None, policy: PolicyConfig, *,
            health_required: bool) -> tuple[Reason, bool] | None:
    """The travel card's reason, if any, and whether it is only the star (which `travel_star` decides).

    A broken health code (expired, invalid, platform down) tells nothing about travel: when health is
    required its own reason already decides, otherwise the travel card counts as not shown.
    """
    health = health_verdict.health if health_verdict is not None else None
    if health_verdict is not None and set(health_verdict.reasons) & _BROKEN_HEALTH:
        return None if health_required else (Reason.NO_TRAVEL_CODE, False)
    if health is None or health.travel is None:
        return Reason.NO_TRAVEL_CODE, False  # v1 tokens and DCCs carry no travel card
    if health.travel not in policy.travel_ok:
        return Reason.TRAVEL_RISK, False
    if health.star and policy.travel_star != "allow":
        return Reason.TRAVEL_RISK, True
    return None


def not_holder(pass_verdict: Verdict | None, health_verdict: Verdict, *, require_bound: bool) -> bool:
    """True when the health code is not the pass holder's.

    The platform reference `hpr` decides when pass (v2) and code (v2) both carry one; a v1 token's
    site-keyed `idh` is compared with the pass's or the ID number's. With `require_bound`, a v2 pass shown
    with a code that names no holder counts as someone else's.
    """
    health = health_verdict.health
    if pass_verdict is None or health is None:
        return False
    pass_hpr = pass_verdict.pass_.hpr if pass_verdict.pass_ is not None else None
    if pass_hpr is not None and health.hpr is not None:
        return pass_hpr != health.hpr
    if pass_verdict.pass_ is not None:
        holder = pass_verdict.pass_.idh
    elif pass_verdict.person is not None:
        holder = pass_verdict.person.ref
    else:
        return False
    if health.idh is not None:
        return holder != health.idh
    return require_bound and pass_hpr is not None


def _has_health(verdict: Verdict) -> bool:
    return verdict.kind == "id_number" and verdict.health is not None


_STATUS_REASON = {"red": Reason.HEALTH_CODE_RED, "yellow": Reason.HEALTH_CODE_YELLOW}
_BROKEN_HEALTH = frozenset({Reason.HEALTH_CODE_EXPIRED, Reason.HEALTH_CODE_INVALID, Reason.PLATFORM_DOWN})
_PASS_REASONS = frozenset({
    Reason.PASS_INVALID, Reason.PASS_EXPIRED, Reason.PASS_NOT_YET_VALID, Reason.PASS_REVOKED, Reason.NO_PASS,
})
