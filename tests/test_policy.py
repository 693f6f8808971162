"""The policy table: every reason code and the combinations that matter."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from checkpoint.reasons import Reason
from kiosk.config import CategoryPolicy, HouseholdPolicy, PolicyConfig
from kiosk.credentials.verdict import HealthFacts, PassFacts, PersonFacts, Verdict
from kiosk.policy import Facts, decide, in_window

TZ = "Asia/Shanghai"
NOON = datetime(2026, 11, 23, 4, 0, tzinfo=UTC)  # 12:00 in Shanghai
EVENING = datetime(2026, 11, 23, 12, 1, tzinfo=UTC)  # 20:01 in Shanghai
IDH = "a" * 64
OTHER = "b" * 64


HPR = "platform-ref-0001"
HPR_OTHER = "platform-ref-0002"


def a_pass(cat: str = "green", *, reasons: tuple[Reason, ...] = (), valid: bool = True, hh: str = "9-23-301",
           idh: str = IDH, hpr: str | None = None) -> Verdict:
    facts = PassFacts(pid="P-1", cat=cat, kid="k", hh=hh, name="张*", idh=idh, nbf=0, exp=2**31,  # type: ignore[arg-type]
                      hpr=hpr)
    return Verdict("pass", valid=valid, status="valid" if valid else "invalid", reasons=reasons, pass_=facts)


def health(status: str | None = "green", *, reasons: tuple[Reason, ...] = (), valid: bool = True,
           idh: str | None = IDH, kind: str = "health_token", travel: str | None = None,
           star: bool | None = None, hpr: str | None = None) -> Verdict:
    scheme = {"health_token": "token", "dcc": "dcc", "health_http": "http"}[kind]
    return Verdict(kind, valid=valid, status=status or "invalid", reasons=reasons,  # type: ignore[arg-type]
                   health=HealthFacts(scheme=scheme, status=status, idh=idh,  # type: ignore[arg-type]
                                      travel=travel, star=star, hpr=hpr))  # type: ignore[arg-type]


def v2(status: str = "green", travel: str = "green", *, star: bool = False, hpr: str | None = HPR,
       reasons: tuple[Reason, ...] = (), kind: str = "health_token") -> Verdict:
    """A v2 health code (两码合一): a travel card and the platform's holder reference, no site idh."""
    return health(status, idh=None, travel=travel, star=star, hpr=hpr, reasons=reasons, kind=kind)


def id_number(*, registered: bool = True, household: str | None = "9-23-301") -> Verdict:
    person = PersonFacts(ref=IDH, masked="1101**************", registered=registered, household=household)
    if registered:
        return Verdict("id_number", valid=True, status="registered", person=person)
    return Verdict("id_number", valid=False, status="not_registered", reasons=(Reason.NO_PASS,),
                   person=person)


UNKNOWN = Verdict("unknown", valid=False, status="unknown", reasons=(Reason.UNKNOWN_CODE,))
POLICY = PolicyConfig()


def facts(*credentials: Verdict, body_c: float | None = 36.6, **kw: object) -> Facts:
    return Facts(credentials=credentials, body_c=body_c, **kw)  # type: ignore[arg-type]


CASES = [
    # name, facts, now, decision, reasons
    ("resident", facts(a_pass(), health()), NOON, "allow", ()),
    ("fever with a green code", facts(a_pass(), health(), body_c=38.2), NOON, "attention", (Reason.FEVER,)),
    ("at the threshold is fever", facts(a_pass(), health(), body_c=37.3), NOON, "attention", (Reason.FEVER,)),
    ("just under the threshold", facts(a_pass(), health(), body_c=37.29), NOON, "allow", ()),
    ("sensor fault", facts(a_pass(), health(), sensor_fault=True), NOON, "attention", (Reason.SENSOR_FAULT,)),
    ("no reading is a fault", facts(a_pass(), health(), body_c=None), NOON, "attention",
     (Reason.SENSOR_FAULT,)),
    ("no health code", facts(a_pass()), NOON, "deny", (Reason.NO_HEALTH_CODE,)),
    ("red health code", facts(a_pass(), health("red", reasons=(Reason.HEALTH_CODE_RED,))), NOON, "deny",
     (Reason.HEALTH_CODE_RED,)),
    ("yellow health code", facts(a_pass(), health("yellow", reasons=(Reason.HEALTH_CODE_YELLOW,))), NOON,
     "attention", (Reason.HEALTH_CODE_YELLOW,)),
    ("stale screenshot", facts(a_pass(), health("green", valid=False, reasons=(Reason.HEALTH_CODE_EXPIRED,))),
     NOON, "deny", (Reason.HEALTH_CODE_EXPIRED,)),
    ("forged health code", facts(a_pass(), health(None, valid=False, reasons=(Reason.HEALTH_CODE_INVALID,))),
     NOON, "deny", (Reason.HEALTH_CODE_INVALID,)),
    ("someone else's health code (v1, site idh)", facts(a_pass(), health(idh=OTHER)), NOON, "deny",
     (Reason.HEALTH_CODE_NOT_HOLDER,)),
    ("borrowed v2 code: platform refs differ", facts(a_pass(hpr=HPR), v2(hpr=HPR_OTHER)), NOON, "deny",
     (Reason.HEALTH_CODE_NOT_HOLDER,)),
    ("borrowed and yellow: both said", facts(a_pass(hpr=HPR), v2("yellow", hpr=HPR_OTHER,
                                                                 reasons=(Reason.HEALTH_CODE_YELLOW,))),
     NOON, "deny", (Reason.HEALTH_CODE_YELLOW, Reason.HEALTH_CODE_NOT_HOLDER)),
    ("v2 pass and the holder's v2 code", facts(a_pass(hpr=HPR), v2()), NOON, "allow", ()),
    ("v2 pass, v1 unbound token, binding not required", facts(a_pass(hpr=HPR), health(idh=None)), NOON,
     "allow", ()),
    ("v1 pass, v2 code", facts(a_pass(), v2(hpr=HPR_OTHER)), NOON, "allow", ()),
    ("v2 code without travel required: star ignored", facts(a_pass(), v2(travel="red", star=True)), NOON,
     "allow", ()),
    ("no pass", facts(health()), NOON, "deny", (Reason.NO_PASS,)),
    ("forged pass", facts(a_pass(valid=False, reasons=(Reason.PASS_INVALID,)), health()), NOON, "deny",
     (Reason.PASS_INVALID,)),
    ("expired pass", facts(a_pass(valid=False, reasons=(Reason.PASS_EXPIRED,)), health()), NOON, "deny",
     (Reason.PASS_EXPIRED,)),
    ("pass not yet valid", facts(a_pass(valid=False, reasons=(Reason.PASS_NOT_YET_VALID,)), health()), NOON,
     "deny", (Reason.PASS_NOT_YET_VALID,)),
    ("revoked pass", facts(a_pass(valid=False, reasons=(Reason.PASS_REVOKED,)), health()), NOON, "deny",
     (Reason.PASS_REVOKED,)),
    ("red pass with a normal temperature", facts(a_pass("red"), health()), NOON, "attention", ()),
    ("visitor in hours", facts(a_pass("pink"), health()), NOON, "allow", ()),
    ("visitor at 20:01", facts(a_pass("pink"), health()), EVENING, "deny", (Reason.OUTSIDE_HOURS,)),
    ("resident at 20:01", facts(a_pass("green"), health()), EVENING, "allow", ()),
    ("unknown code instead of a pass", facts(UNKNOWN, health()), NOON, "deny",
     (Reason.NO_PASS, Reason.UNKNOWN_CODE)),
    ("unknown code beside good ones is ignored", facts(UNKNOWN, a_pass(), health()), NOON, "allow", ()),
    ("registered ID number", facts(id_number(), health()), NOON, "allow", ()),
    ("unregistered ID number", facts(id_number(registered=False), health()), NOON, "deny", (Reason.NO_PASS,)),
    ("fever and a red code: staff first", facts(a_pass(), health("red", reasons=(Reason.HEALTH_CODE_RED,)),
                                                 body_c=38.5), NOON, "attention",
     (Reason.FEVER, Reason.HEALTH_CODE_RED)),
    ("platform down: attention by default",
     facts(a_pass(), health(None, valid=False, reasons=(Reason.PLATFORM_DOWN,), kind="health_http")), NOON,
     "attention", (Reason.PLATFORM_DOWN,)),
    ("a valid DCC", facts(a_pass(), health(idh=None, kind="dcc")), NOON, "allow", ()),
]


@pytest.mark.parametrize(("name", "given", "now", "decision", "reasons"), CASES, ids=[c[0] for c in CASES])
def test_policy_table(
    name: str, given: Facts, now: datetime, decision: str, reasons: tuple[Reason, ...]
) -> None:
    outcome = decide(given, POLICY, now, timezone=TZ)
    assert (outcome.decision, outcome.reasons) == (decision, reasons)


TRAVEL = POLICY.model_copy(update={"require": ["health", "pass", "travel"]})
TRAVEL_CASES = [
    # name, facts, decision, reasons; the policy requires the travel card (travel_ok green, star attention)
    ("green travel card", facts(a_pass(), v2()), "allow", ()),
    ("starred travel card: attention", facts(a_pass(), v2(star=True)), "attention", (Reason.TRAVEL_RISK,)),
    ("yellow travel card", facts(a_pass(), v2(travel="yellow")), "deny", (Reason.TRAVEL_RISK,)),
    ("red travel card, starred", facts(a_pass(), v2(travel="red", star=True)), "deny", (Reason.TRAVEL_RISK,)),
    ("v1 token: no travel card", facts(a_pass(), health()), "deny", (Reason.NO_TRAVEL_CODE,)),
    ("a DCC alone has no travel card", facts(a_pass(), health(idh=None, kind="dcc")), "deny",
     (Reason.NO_TRAVEL_CODE,)),
    ("no code at all", facts(a_pass()), "deny", (Reason.NO_HEALTH_CODE, Reason.NO_TRAVEL_CODE)),
    ("expired code: its own reason only",
     facts(a_pass(), health("green", valid=False, reasons=(Reason.HEALTH_CODE_EXPIRED,), travel="green",
                            star=False)), "deny", (Reason.HEALTH_CODE_EXPIRED,)),
    ("platform lookup with a travel card", facts(id_number(), v2(kind="health_http", hpr=None)), "allow", ()),
    ("fever and a starred card: staff", facts(a_pass(), v2(star=True), body_c=38.0), "attention",
     (Reason.FEVER, Reason.TRAVEL_RISK)),
    ("starred and borrowed", facts(a_pass(hpr=HPR), v2(star=True, hpr=HPR_OTHER)), "deny",
     (Reason.TRAVEL_RISK, Reason.HEALTH_CODE_NOT_HOLDER)),
]


@pytest.mark.parametrize(("name", "given", "decision", "reasons"), TRAVEL_CASES,
                         ids=[c[0] for c in TRAVEL_CASES])
def test_travel_table(name: str, given: Facts, decision: str, reasons: tuple[Reason, ...]) -> None:
    outcome = decide(given, TRAVEL, NOON, timezone=TZ)
    assert (outcome.decision, outcome.reasons) == (decision, reasons)


@pytest.mark.parametrize(("setting", "decision"), [("allow", "allow"), ("deny", "deny"),
                                                   ("attention", "attention")])
def test_travel_star_follows_config(setting: str, decision: str) -> None:
    policy = TRAVEL.model_copy(update={"travel_star": setting})
    outcome = decide(facts(a_pass(), v2(star=True)), policy, NOON, timezone=TZ)
    assert outcome.decision == decision
    assert outcome.reasons == (() if setting == "allow" else (Reason.TRAVEL_RISK,))


def test_travel_ok_widened_and_travel_alone() -> None:
    yellow_ok = TRAVEL.model_copy(update={"travel_ok": ["green", "yellow"]})
    assert decide(facts(a_pass(), v2(travel="yellow")), yellow_ok, NOON, timezone=TZ).decision == "allow"
    travel_only = POLICY.model_copy(update={"require": ["pass", "travel"]})
    expired = health("green", valid=False, reasons=(Reason.HEALTH_CODE_EXPIRED,), travel="green", star=False)
    outcome = decide(facts(a_pass(), expired), travel_only, NOON, timezone=TZ)
    assert (outcome.decision, outcome.reasons) == ("deny", (Reason.NO_TRAVEL_CODE,))


def test_require_bound_health() -> None:
    bound = POLICY.model_copy(update={"require_bound_health": True})
    unbound_v1 = health(idh=None)
    unbound_v2 = v2(hpr=None)
    for code in (unbound_v1, unbound_v2, health(idh=None, kind="dcc")):
        outcome = decide(facts(a_pass(hpr=HPR), code), bound, NOON, timezone=TZ)
        assert (outcome.decision, outcome.reasons) == ("deny", (Reason.HEALTH_CODE_NOT_HOLDER,))
        assert decide(facts(a_pass(hpr=HPR), code), POLICY, NOON, timezone=TZ).decision == "allow"
        # a v1 pass names no platform holder, so binding cannot be asked of its codes
        assert decide(facts(a_pass(), code), bound, NOON, timezone=TZ).decision == "allow"
    assert decide(facts(a_pass(hpr=HPR), v2()), bound, NOON, timezone=TZ).decision == "allow"
    idh_matches = health()
    assert decide(facts(a_pass(hpr=HPR), idh_matches), bound, NOON, timezone=TZ).decision == "allow"


def test_household_quota() -> None:
    policy = POLICY.model_copy(update={"household": HouseholdPolicy(max_exits_per_day=2)})
    ok = decide(facts(a_pass(), health(), household_exits_today=1), policy, NOON, timezone=TZ)
    over = decide(facts(a_pass(), health(), household_exits_today=2), policy, NOON, timezone=TZ)
    assert ok.decision == "allow" and ok.household == "9-23-301"
    assert (over.decision, over.reasons) == ("deny", (Reason.QUOTA_EXCEEDED,))
    unlimited = decide(facts(a_pass(), health(), household_exits_today=99), POLICY, NOON, timezone=TZ)
    assert unlimited.decision == "allow"


@pytest.mark.parametrize("setting", ["allow", "deny", "attention"])
def test_platform_down_follows_config(setting: str) -> None:
    decision = setting
    policy = POLICY.model_copy(update={"on_platform_down": setting})
    down = health(None, valid=False, reasons=(Reason.PLATFORM_DOWN,), kind="health_http")
    outcome = decide(facts(a_pass(), down), policy, NOON, timezone=TZ)
    assert outcome.decision == decision and outcome.reasons == (Reason.PLATFORM_DOWN,)


def test_requirements_subset_and_accepted_colours() -> None:
    health_only = POLICY.model_copy(update={"require": ["health"]})
    assert decide(facts(health()), health_only, NOON, timezone=TZ).decision == "allow"
    yellow_ok = POLICY.model_copy(update={"health_ok": ["green", "yellow"]})
    yellow = health("yellow", reasons=(Reason.HEALTH_CODE_YELLOW,))
    assert decide(facts(a_pass(), yellow), yellow_ok, NOON, timezone=TZ).decision == "allow"


def test_category_actions_from_config() -> None:
    categories = {"blue": CategoryPolicy(action="deny"), "pink": CategoryPolicy(hours="22:00-06:00")}
    policy = POLICY.model_copy(update={"category": categories})
    assert decide(facts(a_pass("blue"), health()), policy, NOON, timezone=TZ).decision == "deny"
    assert decide(facts(a_pass("red"), health()), policy, NOON, timezone=TZ).decision == "allow"
    night = datetime(2026, 11, 23, 15, 0, tzinfo=UTC)  # 23:00 in Shanghai
    assert decide(facts(a_pass("pink"), health()), policy, night, timezone=TZ).decision == "allow"
    daytime = decide(facts(a_pass("pink"), health()), policy, NOON, timezone=TZ)
    assert daytime.reasons == (Reason.OUTSIDE_HOURS,)


def test_every_reason_code_is_produced_by_some_case() -> None:
    produced = ({r for case in CASES for r in case[4]} | {r for case in TRAVEL_CASES for r in case[3]}
                | {Reason.QUOTA_EXCEEDED})
    assert produced == set(Reason)


def test_window_edges() -> None:
    from datetime import time

    assert in_window("08:00-20:00", time(8, 0)) and not in_window("08:00-20:00", time(20, 0))
    assert in_window("22:00-06:00", time(5, 59)) and not in_window("22:00-06:00", time(6, 0))


def test_policy_is_pure() -> None:
    given = facts(a_pass(), health())
    first = decide(given, POLICY, NOON, timezone=TZ)
    assert decide(replace(given), POLICY, NOON, timezone=TZ) == first
